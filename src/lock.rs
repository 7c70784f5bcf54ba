//! A mutex's guard even after a holder panicked: camsync's mutexes guard caches, counters and
//! handles whose every state is usable, so one panicking task does not take the others down.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

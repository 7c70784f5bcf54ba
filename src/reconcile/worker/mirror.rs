//! A worker's copy of its target's ledger rows.

use std::sync::{Arc, Mutex};

use crate::ledger::{Fingerprint, Owned};
use crate::lock::lock;

/// A worker's copy of its ledger rows. A change costs O(log n); a reader gets a snapshot that
/// is copied once per change, not once per write of a long sync.
pub(super) struct OwnedMirror(Mutex<MirrorInner>);

struct MirrorInner {
    rows: Owned,
    snapshot: Option<Arc<Owned>>,
}

impl OwnedMirror {
    pub(super) fn new(rows: Owned) -> Self {
        OwnedMirror(Mutex::new(MirrorInner {
            rows,
            snapshot: None,
        }))
    }

    pub(super) fn snapshot(&self) -> Arc<Owned> {
        let mut inner = lock(&self.0);
        let MirrorInner { rows, snapshot } = &mut *inner;
        snapshot
            .get_or_insert_with(|| Arc::new(rows.clone()))
            .clone()
    }

    pub(super) fn get(&self, stream: &str) -> Option<Option<Fingerprint>> {
        lock(&self.0).rows.get(stream).cloned()
    }

    pub(super) fn read<R>(&self, f: impl FnOnce(&Owned) -> R) -> R {
        f(&lock(&self.0).rows)
    }

    pub(super) fn set(&self, stream: &str, entry: Option<Option<&Fingerprint>>) {
        let mut inner = lock(&self.0);
        match entry {
            None => inner.rows.remove(stream),
            Some(fp) => inner.rows.insert(stream.to_owned(), fp.cloned()),
        };
        inner.snapshot = None;
    }
}

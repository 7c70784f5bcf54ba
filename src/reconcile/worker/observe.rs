//! What a worker tells the rest of camsync: each step, degraded streams, a server lost or
//! restarted, and its queue at a glance.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::reconcile::queue::Priority;
use crate::reconcile::report::StepReport;

/// Where a worker reports what it does (the daemon's activity, or nothing for a one-shot sync).
pub trait Observer: Send + Sync {
    /// A step is over (a write, or a decision to write nothing).
    /// `sync`: the daemon's sync the step is part of (none for a recovery).
    fn step(&self, _target: &str, _step: &StepReport, _sync: Option<u64>) {}
    /// A stream became degraded (`true`) or recovered from it.
    fn degraded(&self, _target: &str, _stream: &str, _degraded: bool, _detail: &str) {}
    /// The server lost what camsync wrote (restart or reload); everything is re-applied.
    fn server_lost(&self, _target: &str) {}
    /// The opt-in escalation restarted the server.
    fn server_restarted(&self, _target: &str) {}
    /// The queue changed; `waited` is set when an item left it to run.
    fn queue(&self, _target: &str, _stats: &QueueStats, _waited: Option<(Priority, Duration)>) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// A worker's queue at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Waiting items by priority: recover, change, resync (an object with those keys in JSON).
    #[serde(serialize_with = "by_priority")]
    pub waiting: [usize; 3],
    pub in_flight: usize,
    pub done: u64,
    pub failed: u64,
    /// Items that merged into one already waiting.
    pub merged: u64,
    /// Streams failing `degraded_after` times or more in a row.
    pub degraded: BTreeSet<String>,
}

fn by_priority<S: serde::Serializer>(waiting: &[usize; 3], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(3))?;
    for (priority, n) in Priority::ALL.into_iter().zip(waiting) {
        map.serialize_entry(priority.name(), n)?;
    }
    map.end()
}

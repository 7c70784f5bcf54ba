//! How the rest of camsync asks a target's worker for work, and sees what it owns.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::mirror::OwnedMirror;
use super::observe::QueueStats;
use crate::ledger::Owned;
use crate::queue::Merge;
use crate::reconcile::fingerprints::Fingerprints;
use crate::reconcile::queue::{Key, Priority};
use crate::reconcile::ticket::{Ticket, Tickets};
use crate::source::Inventory;

/// What an item does; merging two takes the union.
#[derive(Default)]
pub(super) struct Work {
    /// Write the stream even if the ledger says it is up to date (the server lost it).
    pub(super) force: bool,
    /// Delete and add the stream (it is stuck, or a reconnect was asked for).
    pub(super) restart: bool,
    /// Why a recovery was asked for, for the report.
    pub(super) reason: Option<&'static str>,
    /// Tries so far.
    pub(super) failures: u32,
    pub(super) tickets: Tickets,
}

impl Merge for Work {
    fn merge(&mut self, other: Work) {
        self.force |= other.force;
        self.restart |= other.restart;
        self.reason = self.reason.or(other.reason);
        self.failures = self.failures.max(other.failures);
        self.tickets.absorb(other.tickets);
    }
}

pub(super) struct Request {
    pub(super) key: Key,
    pub(super) priority: Priority,
    pub(super) due: Option<Instant>,
    pub(super) work: Work,
}

/// How to ask a worker for work, and see what it owns; cheap to clone.
#[derive(Clone)]
pub struct WorkerHandle {
    pub(super) name: Arc<str>,
    pub(super) batch: bool,
    pub(super) requests: mpsc::UnboundedSender<Request>,
    pub(super) owned: Arc<OwnedMirror>,
    pub(super) fingerprints: Arc<Fingerprints>,
    pub(super) stats: watch::Receiver<QueueStats>,
}

impl WorkerHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    fn send(&self, key: Key, priority: Priority, work: Work) {
        let request = Request {
            key,
            priority,
            due: None,
            work,
        };
        if let Err(refused) = self.requests.send(request) {
            // The worker has stopped (shutdown): the request is over.
            refused.0.work.tickets.release();
        }
    }

    /// Converges one stream (on a file target: the whole file, which costs the same).
    pub fn converge(&self, stream: &str, priority: Priority, tickets: &[Ticket]) {
        let key = if self.batch {
            Key::All
        } else {
            Key::Stream(stream.to_owned())
        };
        self.send(
            key,
            priority,
            Work {
                tickets: Tickets::carrying(tickets),
                ..Work::default()
            },
        );
    }

    /// Lists the server once, plans, and converges every stream that needs it.
    pub fn converge_all(&self, priority: Priority, tickets: &[Ticket]) {
        self.send(
            Key::All,
            priority,
            Work {
                tickets: Tickets::carrying(tickets),
                ..Work::default()
            },
        );
    }

    /// Re-adds a stream camsync owns (`restart`: deletes it first), ahead of other work.
    pub fn recover(&self, stream: &str, restart: bool, reason: &'static str, tickets: &[Ticket]) {
        let work = Work {
            force: true,
            restart,
            reason: Some(reason),
            tickets: Tickets::carrying(tickets),
            ..Work::default()
        };
        self.send(Key::Stream(stream.to_owned()), Priority::Recover, work);
    }

    /// Restarts the whole server (the opt-in escalation), then re-applies everything.
    pub fn restart_server(&self, tickets: &[Ticket]) {
        self.send(
            Key::Server,
            Priority::Recover,
            Work {
                tickets: Tickets::carrying(tickets),
                ..Work::default()
            },
        );
    }

    /// The streams camsync owns there: `Some(fingerprint)` once the last write is confirmed.
    pub fn owned(&self) -> Arc<Owned> {
        self.owned.snapshot()
    }

    /// The owned streams whose last write was confirmed: what the health monitor judges.
    pub fn confirmed(&self) -> BTreeSet<String> {
        self.owned()
            .iter()
            .filter(|(_, fp)| fp.is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn stats(&self) -> QueueStats {
        self.stats.borrow().clone()
    }

    /// Fingerprints what `inventory` changed, before any item works from it, and keeps its map
    /// for the next whole-target item.
    pub fn prepare(&self, inventory: &Arc<Inventory>) {
        self.fingerprints.prepare(inventory);
    }
}

//! A request's claim on the work it caused: it resolves when every item it caused has
//! finished on every target, and collects what each did into one [`SyncReport`].
//!
//! Whoever makes the request holds one count until everything is enqueued ([`Ticket::new`]
//! and [`Ticket::release`]), so a fast worker cannot resolve it half-way. Each item carrying
//! the ticket holds one more count; an item that merges into one already carrying it gives its
//! count back, and a whole-target item hands counts on to the per-stream items it enqueues.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::report::{Convergence, StepReport, SyncReport, TargetReport};
use crate::source::Rejection;

#[derive(Clone)]
pub struct Ticket(Arc<Inner>);

struct Inner {
    /// The daemon's number for the sync this ticket is, if any.
    sync: Option<u64>,
    progress: Mutex<Progress>,
    done: watch::Sender<bool>,
}

#[derive(Default)]
struct Progress {
    outstanding: usize,
    targets: BTreeMap<String, TargetProgress>,
}

#[derive(Default)]
struct TargetProgress {
    steps: Vec<StepReport>,
    /// The target could not be read or written at all.
    error: Option<String>,
    /// The mass-deletion guard stopped the plan.
    refused: Option<String>,
}

impl Default for Ticket {
    fn default() -> Ticket {
        Ticket::new()
    }
}

impl Ticket {
    /// A ticket held by its maker until [`Ticket::release`].
    pub fn new() -> Ticket {
        Ticket::numbered(None)
    }

    /// A ticket for the daemon's sync number `sync` (shown with each step it causes).
    pub fn numbered(sync: Option<u64>) -> Ticket {
        Ticket(Arc::new(Inner {
            sync,
            progress: Mutex::new(Progress {
                outstanding: 1,
                ..Progress::default()
            }),
            done: watch::channel(false).0,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        crate::lock::lock(&self.0.progress)
    }

    pub fn sync(&self) -> Option<u64> {
        self.0.sync
    }

    pub fn same(&self, other: &Ticket) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// One more item carries this ticket.
    pub fn hold(&self) {
        self.lock().outstanding += 1;
    }

    /// An item carrying this ticket is over (or its maker is done enqueueing).
    pub fn release(&self) {
        let done = {
            let mut progress = self.lock();
            progress.outstanding = progress.outstanding.saturating_sub(1);
            progress.outstanding == 0
        };
        if done {
            self.0.done.send_replace(true);
        }
    }

    /// Makes `target` appear in the report even if nothing is done there.
    pub fn touch(&self, target: &str) {
        self.lock().targets.entry(target.to_owned()).or_default();
    }

    pub fn step(&self, target: &str, step: StepReport) {
        self.lock()
            .targets
            .entry(target.to_owned())
            .or_default()
            .steps
            .push(step);
    }

    pub fn target_failed(&self, target: &str, error: String) {
        self.lock()
            .targets
            .entry(target.to_owned())
            .or_default()
            .error = Some(error);
    }

    pub fn target_refused(&self, target: &str, explanation: String, steps: Vec<StepReport>) {
        let mut progress = self.lock();
        let entry = progress.targets.entry(target.to_owned()).or_default();
        entry.refused = Some(explanation);
        entry.steps.extend(steps);
    }

    pub fn is_done(&self) -> bool {
        *self.0.done.borrow()
    }

    /// Waits until every item is over.
    pub async fn wait(&self) {
        let mut done = self.0.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    /// What was done, target by target in `order` (targets the request never reached are
    /// left out).
    pub fn report(&self, order: &[String], rejected: Vec<Rejection>) -> SyncReport {
        let mut progress = self.lock();
        let targets = order
            .iter()
            .filter_map(|name| {
                let t = progress.targets.remove(name)?;
                Some(match (t.refused, t.error) {
                    (Some(why), _) => {
                        TargetReport::build(name.clone(), Convergence::Refused, Some(why), t.steps)
                    }
                    (None, Some(error)) => {
                        TargetReport::build(name.clone(), Convergence::Failed, Some(error), t.steps)
                    }
                    (None, None) => TargetReport::applied(name.clone(), t.steps),
                })
            })
            .collect();
        SyncReport {
            applied: true,
            targets,
            rejected,
        }
    }
}

/// The tickets an item carries.
#[derive(Default)]
pub struct Tickets(Vec<Ticket>);

impl Tickets {
    /// Takes `tickets` on: each holds one count for this item.
    pub fn carrying(tickets: &[Ticket]) -> Tickets {
        let mut own = Tickets::default();
        for t in tickets {
            own.add(t.clone());
        }
        own
    }

    fn add(&mut self, ticket: Ticket) {
        if self.0.iter().any(|t| t.same(&ticket)) {
            return;
        }
        ticket.hold();
        self.0.push(ticket);
    }

    /// Absorbs another item's tickets; one this item already carries gives its count back.
    pub fn absorb(&mut self, other: Tickets) {
        for ticket in other.0 {
            if self.0.iter().any(|t| t.same(&ticket)) {
                ticket.release();
            } else {
                self.0.push(ticket);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Ticket> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sync number of the first numbered ticket.
    pub fn sync(&self) -> Option<u64> {
        self.0.iter().find_map(Ticket::sync)
    }

    /// Records `step` on every ticket.
    pub fn step(&self, target: &str, step: &StepReport) {
        for t in &self.0 {
            t.step(target, step.clone());
        }
    }

    /// The item is over for these tickets.
    pub fn release(self) {
        for t in self.0 {
            t.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_resolves_when_its_maker_and_every_item_are_done() {
        let ticket = Ticket::new();
        let a = Tickets::carrying(std::slice::from_ref(&ticket));
        let mut b = Tickets::carrying(std::slice::from_ref(&ticket));
        ticket.release();
        assert!(!ticket.is_done());
        // b merges into a: one count less, not two.
        let mut merged = a;
        merged.absorb(std::mem::take(&mut b));
        assert!(!ticket.is_done());
        merged.release();
        assert!(ticket.is_done());
    }
}

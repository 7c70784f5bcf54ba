//! What one item does on the server: converge a stream, converge the whole target (list,
//! plan, then per-stream items, or one batch for a file target), recover a stream, restart the
//! server. Every write is bracketed by the ledger.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

use super::handle::Work;
use super::mirror::OwnedMirror;
use super::observe::Observer;
use crate::camera::Camera;
use crate::ledger::{Fingerprint, Ledger};
use crate::lock::lock;
use crate::queue::RateLimit;
use crate::reconcile::fingerprints::Fingerprints;
use crate::reconcile::plan::{
    Action, DeletePolicy, Step, held, mass_delete, plan_target, step_for,
};
use crate::reconcile::queue::Key;
use crate::reconcile::report::{Outcome, StepReport};
use crate::source::Inventory;
use crate::target::{Applied, BatchTarget, Change, Target, TargetError};

/// What the worker's items share.
pub(super) struct Shared {
    pub(super) target: Arc<dyn Target>,
    pub(super) ledger: Arc<Ledger>,
    /// This target's ledger rows; every change goes to the ledger first.
    pub(super) owned: Arc<OwnedMirror>,
    /// What the server listed last, kept current by the worker's own writes; `None` before the
    /// first list.
    pub(super) observed: Mutex<Option<BTreeSet<String>>>,
    pub(super) fingerprints: Arc<Fingerprints>,
    pub(super) limiter: Mutex<RateLimit>,
    pub(super) inventory: watch::Receiver<Arc<Inventory>>,
    pub(super) allow_mass_delete: bool,
    pub(super) observer: Arc<dyn Observer>,
}

/// How one run of an item ended.
pub(super) enum Ended {
    /// Over, successfully or with a failure not worth retrying on its own.
    Done,
    /// A whole-target item planned these stream items.
    Expand(Vec<String>),
    /// The server was restarted: everything is to be applied again.
    Restarted,
    /// Failed; retried on its own if `retryable`.
    Failed {
        retryable: bool,
        /// The stream's desired fingerprint when it failed (a change resets the count).
        fingerprint: Option<Fingerprint>,
        detail: String,
        /// What the requests are told once they get their answer.
        reports: Vec<StepReport>,
        /// The whole target failed (it could not be listed or restarted).
        target_error: bool,
    },
}

/// Why a write did not happen.
struct Failure {
    detail: String,
    retryable: bool,
}

impl From<TargetError> for Failure {
    fn from(e: TargetError) -> Failure {
        Failure {
            retryable: e.is_retryable(),
            detail: e.to_string(),
        }
    }
}

impl From<crate::ledger::LedgerError> for Failure {
    fn from(e: crate::ledger::LedgerError) -> Failure {
        // A full disk or a locked file may pass.
        Failure {
            detail: e.to_string(),
            retryable: true,
        }
    }
}

type Attempt = Result<Outcome, Failure>;

impl Shared {
    pub(super) fn name(&self) -> &str {
        self.target.name()
    }

    fn inventory(&self) -> Arc<Inventory> {
        self.inventory.borrow().clone()
    }

    pub(super) async fn run(&self, key: &Key, work: &Work) -> Ended {
        match key {
            Key::Stream(stream) => self.run_stream(stream, work).await,
            Key::All => self.run_all(work).await,
            Key::Server => self.run_restart().await,
        }
    }

    fn owned_entry(&self, stream: &str) -> Option<Option<Fingerprint>> {
        self.owned.get(stream)
    }

    /// Whether the server had `stream` at the last list (before any list, an owned stream
    /// counts as there: deleting a missing one is harmless).
    fn on_server(&self, stream: &str, owned: bool) -> bool {
        lock(&self.observed)
            .as_ref()
            .map_or(owned, |o| o.contains(stream))
    }

    fn set_observed(&self, stream: &str, present: bool) {
        if let Some(observed) = lock(&self.observed).as_mut() {
            if present {
                observed.insert(stream.to_owned());
            } else {
                observed.remove(stream);
            }
        }
    }

    /// Changes this target's ledger rows: the file first, then the mirror.
    fn own(&self, stream: &str, entry: Option<Option<&Fingerprint>>) -> Result<(), Failure> {
        let name = self.name();
        match entry {
            None => self.ledger.forget(name, stream)?,
            Some(None) => self.ledger.intend(name, stream)?,
            Some(Some(fp)) => self.ledger.record(name, stream, fp)?,
        }
        self.owned.set(stream, entry);
        Ok(())
    }

    /// Waits until the rate limit lets one more write through, and counts it.
    async fn write_slot(&self) {
        loop {
            let now = Instant::now();
            let ready = {
                let mut limiter = lock(&self.limiter);
                let ready = limiter.ready_at(now, 0);
                if ready.is_none() {
                    limiter.record(now);
                }
                ready
            };
            match ready {
                None => return,
                Some(at) => tokio::time::sleep_until(at).await,
            }
        }
    }

    /// Reports a step that is over to the observer and the item's tickets.
    fn report(&self, work: &Work, step: &Step, outcome: Outcome) {
        let report = StepReport::new(step, outcome);
        self.observer
            .step(self.name(), &report, work.tickets.sync());
        work.tickets.step(self.name(), &report);
    }

    /// How the item ended after `step` had `attempt`.
    fn ended(&self, work: &Work, step: &Step, attempt: Attempt) -> Ended {
        match attempt {
            Ok(outcome) => {
                self.report(work, step, outcome);
                Ended::Done
            }
            Err(failure) => {
                let report = StepReport::new(step, Outcome::Failed(failure.detail.clone()));
                self.observer
                    .step(self.name(), &report, work.tickets.sync());
                Ended::Failed {
                    retryable: failure.retryable,
                    fingerprint: step.fingerprint.clone(),
                    detail: failure.detail,
                    reports: vec![report],
                    target_error: false,
                }
            }
        }
    }

    async fn run_stream(&self, stream: &str, work: &Work) -> Ended {
        let inventory = self.inventory();
        let camera = inventory
            .cameras
            .get(stream)
            .filter(|c| c.wants_target(self.name()));
        let owned = self.owned_entry(stream);
        let fingerprint = camera.map(|c| self.fingerprints.of(c));
        // An owned stream whose last write is unconfirmed (a recovery that failed half-way) is
        // still camsync's to recover.
        if let (Some(camera), Some(_), true) = (camera, &owned, work.force) {
            let step = recover_step(stream, work, fingerprint);
            let attempt = self.recover(camera, &step, work.restart).await;
            return self.ended(work, &step, attempt);
        }
        if work.restart {
            let step = recover_step(stream, work, fingerprint);
            let why = "camsync does not own this stream here (yet); a sync will create it";
            self.report(work, &step, Outcome::Skipped(why.into()));
            return Ended::Done;
        }
        let on_server = self.on_server(stream, owned.is_some());
        let awaiting = inventory
            .cameras
            .get(stream)
            .is_some_and(|c| c.awaits_source(self.name()));
        let hold = held(!inventory.rejected.is_empty(), awaiting);
        let step = step_for(
            stream,
            fingerprint.as_ref(),
            owned.as_ref(),
            on_server,
            hold,
        );
        let attempt = match (step.action, camera) {
            (Action::Unchanged | Action::Hold, _) => Ok(Outcome::Unchanged),
            (Action::Forget, _) => self.own(stream, None).map(|()| Outcome::Done),
            (Action::Delete, _) => match self.delete_guard(&inventory) {
                Some(refusal) => Err(Failure {
                    detail: refusal,
                    retryable: false,
                }),
                None => self.delete(stream).await,
            },
            (_, Some(camera)) => self.upsert(camera, &step).await,
            (_, None) => Err(vanished()),
        };
        self.ended(work, &step, attempt)
    }

    async fn upsert(&self, camera: &Camera, step: &Step) -> Attempt {
        let fingerprint = step.fingerprint.as_ref().ok_or_else(vanished)?;
        self.own(&camera.name, Some(None))?;
        self.write_slot().await;
        let write = match step.action {
            Action::Create => self.target.create(camera),
            _ => self.target.upsert(camera),
        };
        let applied = write.await.map_err(|e| write_failed(step, e))?;
        self.set_observed(&camera.name, true);
        self.confirm(&camera.name, fingerprint, step, applied)
    }

    async fn delete(&self, stream: &str) -> Attempt {
        self.write_slot().await;
        let applied = self.target.delete(stream).await.map_err(Failure::from)?;
        self.set_observed(stream, false);
        self.own(stream, None)?;
        tracing::info!(stream, action = "delete", "applied");
        Ok(applied_outcome(applied))
    }

    async fn recover(&self, camera: &Camera, step: &Step, restart: bool) -> Attempt {
        let fingerprint = step.fingerprint.as_ref().ok_or_else(vanished)?;
        self.own(&camera.name, Some(None))?;
        self.write_slot().await;
        if restart {
            self.write_slot().await;
        }
        let applied = self
            .target
            .recover(camera, restart)
            .await
            .map_err(|e| write_failed(step, e))?;
        self.set_observed(&camera.name, true);
        self.confirm(&camera.name, fingerprint, step, applied)
    }

    fn confirm(
        &self,
        stream: &str,
        fingerprint: &Fingerprint,
        step: &Step,
        applied: Applied,
    ) -> Attempt {
        self.own(stream, Some(Some(fingerprint)))?;
        tracing::info!(
            stream,
            action = step.action.name(),
            reason = step.reason,
            "applied"
        );
        Ok(applied_outcome(applied))
    }

    /// Refuses a deletion that would take more than half of what camsync owns here.
    fn delete_guard(&self, inventory: &Inventory) -> Option<String> {
        if self.allow_mass_delete {
            return None; // nothing to count: an allowed mass delete costs O(1) per delete
        }
        let observed = lock(&self.observed);
        let on_server = |name: &String| observed.as_ref().is_none_or(|o| o.contains(name));
        let desired = |name: &String| {
            inventory
                .cameras
                .get(name)
                .is_some_and(|c| c.wants_target(self.name()))
        };
        let (owned_here, deletes) = self.owned.read(|owned| {
            (
                owned.keys().filter(|n| on_server(n)).count(),
                owned.keys().filter(|n| on_server(n) && !desired(n)).count(),
            )
        });
        mass_delete(deletes, owned_here, self.allow_mass_delete).map(|m| m.explain(self.name()))
    }

    async fn run_all(&self, work: &Work) -> Ended {
        for ticket in work.tickets.iter() {
            ticket.touch(self.name());
        }
        let inventory = self.inventory();
        let desired = self.fingerprints.desired(&inventory);
        let observed = match self.target.list().await {
            Ok(observed) => observed,
            Err(e) => {
                let failure = Failure::from(e);
                tracing::warn!(error = %failure.detail, "cannot list the server");
                return Ended::Failed {
                    retryable: failure.retryable,
                    fingerprint: None,
                    detail: failure.detail,
                    reports: Vec::new(),
                    target_error: true,
                };
            }
        };
        *lock(&self.observed) = Some(observed.clone());
        let owned = self.owned.snapshot();
        let awaiting = inventory.awaiting_source(self.name());
        let policy = DeletePolicy {
            allow_mass_delete: self.allow_mass_delete,
            hold: !inventory.rejected.is_empty(),
            awaiting: &awaiting,
        };
        let plan = plan_target(self.name(), &desired, &owned, &observed, policy);
        if let Some(refusal) = plan.refused {
            let explanation = refusal.explain(self.name());
            tracing::error!("{explanation}");
            let steps: Vec<StepReport> = plan
                .steps
                .iter()
                .map(|s| StepReport::new(s, Outcome::Planned))
                .collect();
            for ticket in work.tickets.iter() {
                ticket.target_refused(self.name(), explanation.clone(), steps.clone());
            }
            return Ended::Done;
        }
        if let Some(batch) = self.target.as_batch() {
            return self.apply_batch(batch, &inventory, &plan.steps, work).await;
        }
        let mut streams = Vec::new();
        for step in &plan.steps {
            match step.action {
                Action::Unchanged | Action::Hold => self.report(work, step, Outcome::Unchanged),
                Action::Forget => {
                    let outcome = match self.own(&step.name, None) {
                        Ok(()) => Outcome::Done,
                        Err(f) => Outcome::Failed(f.detail),
                    };
                    self.report(work, step, outcome);
                }
                _ => streams.push(step.name.clone()),
            }
        }
        Ended::Expand(streams)
    }

    /// Every write of a file target in one go: intents first, then the file, then each result.
    async fn apply_batch(
        &self,
        batch: &dyn BatchTarget,
        inventory: &Inventory,
        steps: &[Step],
        work: &Work,
    ) -> Ended {
        let mut writes: Vec<(&Step, Change<'_>)> = Vec::new();
        for step in steps {
            let change = match (step.action, inventory.cameras.get(&step.name)) {
                (Action::Unchanged | Action::Hold, _) => {
                    self.report(work, step, Outcome::Unchanged);
                    continue;
                }
                (Action::Forget, _) => {
                    let outcome = match self.own(&step.name, None) {
                        Ok(()) => Outcome::Done,
                        Err(f) => Outcome::Failed(f.detail),
                    };
                    self.report(work, step, outcome);
                    continue;
                }
                (Action::Delete, _) => Change::Delete(&step.name),
                (_, Some(camera)) => Change::Upsert(camera),
                (_, None) => {
                    self.report(work, step, Outcome::Failed(VANISHED.into()));
                    continue;
                }
            };
            if matches!(change, Change::Upsert(_))
                && let Err(f) = self.own(&step.name, Some(None))
            {
                self.report(work, step, Outcome::Failed(f.detail));
                continue;
            }
            writes.push((step, change));
        }
        if writes.is_empty() {
            return Ended::Done;
        }
        let changes: Vec<Change<'_>> = writes.iter().map(|(_, c)| *c).collect();
        self.write_slot().await;
        let results = match batch.write_batch(&changes).await {
            Ok(results) => results,
            Err(e) => {
                let failure = Failure::from(e);
                tracing::error!(error = %failure.detail, "file write failed");
                let reports = writes
                    .iter()
                    .map(|(step, _)| StepReport::new(step, Outcome::Failed(failure.detail.clone())))
                    .collect();
                return Ended::Failed {
                    retryable: failure.retryable,
                    fingerprint: None,
                    detail: failure.detail,
                    reports,
                    target_error: false,
                };
            }
        };
        for ((step, _), result) in writes.iter().zip(results) {
            let attempt = match (result, step.action, &step.fingerprint) {
                (Err(e), ..) => Err(Failure::from(e)),
                (Ok(applied), Action::Delete, _) => self
                    .own(&step.name, None)
                    .map(|()| applied_outcome(applied)),
                (Ok(applied), _, Some(fp)) => self.confirm(&step.name, fp, step, applied),
                (Ok(_), _, None) => Err(vanished()),
            };
            let outcome = attempt.unwrap_or_else(|f| Outcome::Failed(f.detail));
            self.report(work, step, outcome);
        }
        Ended::Done
    }

    async fn run_restart(&self) -> Ended {
        let Some(restart) = self.target.restart_server() else {
            return Ended::Done;
        };
        self.write_slot().await;
        match restart.await {
            Ok(()) => {
                self.observer.server_restarted(self.name());
                // What the server holds now is known at the next list.
                *lock(&self.observed) = None;
                Ended::Restarted
            }
            Err(e) => {
                let failure = Failure::from(e);
                tracing::error!(error = %failure.detail, "server restart failed");
                Ended::Failed {
                    retryable: false,
                    fingerprint: None,
                    detail: failure.detail,
                    reports: Vec::new(),
                    target_error: true,
                }
            }
        }
    }
}

fn write_failed(step: &Step, error: TargetError) -> Failure {
    tracing::warn!(stream = %step.name, action = step.action.name(), error = %error, "write failed");
    Failure::from(error)
}

fn vanished() -> Failure {
    Failure {
        detail: VANISHED.into(),
        retryable: false,
    }
}

fn recover_step(stream: &str, work: &Work, fingerprint: Option<Fingerprint>) -> Step {
    Step {
        name: stream.to_owned(),
        action: Action::Recover,
        reason: work.reason.unwrap_or(if work.restart {
            "deleted and added again"
        } else {
            "added again"
        }),
        fingerprint,
    }
}

fn applied_outcome(applied: Applied) -> Outcome {
    match applied {
        Applied::Done => Outcome::Done,
        Applied::Partial { detail } => Outcome::Partial(detail),
    }
}

const VANISHED: &str = "camera vanished from the inventory mid-sync";

//! The reconciler: desired + ledger + observed ⇒ plan ⇒ applied, by one worker per target.
//!
//! - [`plan`]: the pure decision, for a whole target or one stream.
//! - [`queue`]: a target's work queue (keys, priorities, rate limit, backoff), pure.
//! - [`worker`]: the only code that writes to a server; it runs the queue's items.
//! - [`ticket`]: how a request learns that every item it caused is over, and what they did.
//! - [`Workers`]: the running workers of a daemon; triggers only enqueue through it.
//! - [`Reconciler`]: the same machinery for one-shot commands: `sync` (start the workers,
//!   converge everything, stop), `plan` and `render` (read-only).
//!
//! Level-triggered: an item is never told why it runs; it compares the latest inventory with
//! what the ledger owns and what the server lists. A second run with nothing changed makes no
//! write call. Targets never wait for each other.

mod fingerprints;
pub mod plan;
mod preview;
pub mod queue;
pub mod report;
pub mod ticket;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ledger::{Fingerprint, Ledger, LedgerError, Owned};
use crate::source::Inventory;
use crate::target::{BatchTarget, Change, Preview, Target, TargetError};
use plan::{Action, DeletePolicy, Step, TargetPlan, plan_target};
use queue::Priority;
use report::{Convergence, SyncReport, TargetReport};
use ticket::Ticket;
use worker::{Observer, Quiet, WorkerHandle, WorkerParts, WorkerSettings};

/// The running workers, one per target, and the inventory they work from.
pub struct Workers {
    handles: Vec<WorkerHandle>,
    /// Whether each target can re-register a stream (in `handles`' order).
    recovers: Vec<bool>,
    /// Targets that cannot check what the server loaded (file targets without `api:`).
    unobserved: Vec<String>,
    inventory: watch::Sender<Arc<Inventory>>,
}

/// What [`Workers::start`] needs.
pub struct WorkersParts {
    pub targets: Vec<(Arc<dyn Target>, WorkerSettings)>,
    pub ledger: Arc<Ledger>,
    pub observer: Arc<dyn Observer>,
    pub jitter: fn() -> f64,
}

impl Workers {
    /// Starts a worker per target; each stops at `shutdown`, in `tasks`.
    pub fn start(
        parts: WorkersParts,
        shutdown: &CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<Workers, LedgerError> {
        let (inventory, inventory_rx) = watch::channel(Arc::new(Inventory::default()));
        let recovers = parts.targets.iter().map(|(t, _)| t.can_recover()).collect();
        let unobserved = parts
            .targets
            .iter()
            .filter(|(t, _)| !t.observes())
            .map(|(t, _)| t.name().to_owned())
            .collect();
        let handles = parts
            .targets
            .into_iter()
            .map(|(target, settings)| {
                let parts = WorkerParts {
                    target,
                    ledger: parts.ledger.clone(),
                    inventory: inventory_rx.clone(),
                    settings,
                    observer: parts.observer.clone(),
                    jitter: parts.jitter,
                };
                worker::spawn(parts, shutdown.clone(), tasks)
            })
            .collect::<Result<_, _>>()?;
        Ok(Workers {
            handles,
            recovers,
            unobserved,
            inventory,
        })
    }

    /// The inventory every later item works from. Its fingerprints are computed here, in the
    /// caller's task (off the runtime's other tasks), not in a worker's loop.
    pub fn publish(&self, inventory: Arc<Inventory>) {
        crate::blocking::run(|| {
            for handle in &self.handles {
                handle.prepare(&inventory);
            }
        });
        self.inventory.send_replace(inventory);
    }

    pub fn inventory(&self) -> Arc<Inventory> {
        self.inventory.borrow().clone()
    }

    pub fn handles(&self) -> &[WorkerHandle] {
        &self.handles
    }

    pub fn get(&self, target: &str) -> Option<&WorkerHandle> {
        self.handles.iter().find(|h| h.name() == target)
    }

    /// Whether the worker of `target` can re-register a stream there.
    pub fn can_recover(&self, target: &str) -> bool {
        self.handles
            .iter()
            .zip(&self.recovers)
            .any(|(h, r)| *r && h.name() == target)
    }

    /// The targets whose writes camsync cannot verify (file targets without `api:`).
    pub fn unobserved(&self) -> &[String] {
        &self.unobserved
    }

    pub fn names(&self) -> Vec<String> {
        self.handles.iter().map(|h| h.name().to_owned()).collect()
    }

    /// The inventory as the workers see it, to follow its changes.
    pub fn inventory_watch(&self) -> watch::Receiver<Arc<Inventory>> {
        self.inventory.subscribe()
    }

    /// Converges every target as a whole; the ticket (numbered `sync`) resolves when all of it
    /// is over.
    pub fn converge_all(&self, priority: Priority, sync: Option<u64>) -> Ticket {
        let ticket = Ticket::numbered(sync);
        for handle in &self.handles {
            handle.converge_all(priority, std::slice::from_ref(&ticket));
        }
        ticket.release();
        ticket
    }

    /// Converges the streams `names` on every target that wants or holds them.
    pub fn converge(
        &self,
        names: &BTreeSet<String>,
        priority: Priority,
        sync: Option<u64>,
    ) -> Ticket {
        let ticket = Ticket::numbered(sync);
        let inventory = self.inventory();
        for handle in &self.handles {
            let owned = handle.owned();
            let concerned = names.iter().filter(|name| {
                owned.contains_key(*name)
                    || inventory
                        .cameras
                        .get(*name)
                        .is_some_and(|c| c.wants_target(handle.name()))
            });
            for name in concerned {
                handle.converge(name, priority, std::slice::from_ref(&ticket));
            }
        }
        ticket.release();
        ticket
    }

    /// The report of a resolved ticket, targets in config order.
    pub fn report(&self, ticket: &Ticket, rejected: Vec<crate::source::Rejection>) -> SyncReport {
        ticket.report(&self.names(), rejected)
    }
}

/// The names whose cameras differ between two inventories (added, removed or changed).
pub fn changed(before: &Inventory, after: &Inventory) -> BTreeSet<String> {
    let names: BTreeSet<&String> = before.cameras.keys().chain(after.cameras.keys()).collect();
    names
        .into_iter()
        .filter(|n| before.cameras.get(*n) != after.cameras.get(*n))
        .cloned()
        .collect()
}

/// The reconciler of a one-shot command.
pub struct Reconciler {
    targets: Vec<(Arc<dyn Target>, WorkerSettings)>,
    ledger: Arc<Ledger>,
    allow_mass_delete: bool,
}

impl Reconciler {
    pub fn new(
        targets: Vec<Arc<dyn Target>>,
        ledger: Arc<Ledger>,
        allow_mass_delete: bool,
    ) -> Self {
        let settings = WorkerSettings {
            allow_mass_delete,
            ..WorkerSettings::default()
        };
        Reconciler {
            targets: targets.into_iter().map(|t| (t, settings)).collect(),
            ledger,
            allow_mass_delete,
        }
    }

    /// Each target with its own worker settings (config `targets[]`).
    pub fn with_settings(
        targets: Vec<(Arc<dyn Target>, WorkerSettings)>,
        ledger: Arc<Ledger>,
        allow_mass_delete: bool,
    ) -> Self {
        Reconciler {
            targets,
            ledger,
            allow_mass_delete,
        }
    }

    /// Each worker checks every `every` whether its server lost what camsync wrote.
    pub fn watching_restarts(mut self, every: std::time::Duration) -> Self {
        for (_, settings) in &mut self.targets {
            settings.restart_check = Some(every);
        }
        self
    }

    pub fn targets(&self) -> Vec<Arc<dyn Target>> {
        self.targets.iter().map(|(t, _)| t.clone()).collect()
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Starts the workers for a daemon.
    pub fn start(
        &self,
        observer: Arc<dyn Observer>,
        shutdown: &CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<Workers, LedgerError> {
        let parts = WorkersParts {
            targets: self.targets.clone(),
            ledger: self.ledger.clone(),
            observer,
            jitter: crate::queue::random_jitter,
        };
        Workers::start(parts, shutdown, tasks)
    }

    /// Converges every target once: the daemon's machinery, started and stopped around it.
    pub async fn sync(&self, inventory: &Inventory) -> SyncReport {
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let workers = match self.start(Arc::new(Quiet), &shutdown, &tasks) {
            Ok(workers) => workers,
            Err(e) => return self.failed_everywhere(&e.to_string(), inventory),
        };
        workers.publish(Arc::new(inventory.clone()));
        let ticket = workers.converge_all(Priority::Change, None);
        ticket.wait().await;
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        workers.report(&ticket, inventory.rejected.clone())
    }

    fn failed_everywhere(&self, error: &str, inventory: &Inventory) -> SyncReport {
        SyncReport {
            applied: true,
            targets: self
                .targets
                .iter()
                .map(|(t, _)| TargetReport::failed(t.name().to_owned(), error.to_owned()))
                .collect(),
            rejected: inventory.rejected.clone(),
        }
    }

    /// What a sync would do, per target, without writing anything.
    pub async fn plan(&self, inventory: &Inventory) -> SyncReport {
        let mut targets = Vec::with_capacity(self.targets.len());
        for (target, _) in &self.targets {
            targets.push(self.plan_one(target, inventory).await);
        }
        SyncReport {
            applied: false,
            targets,
            rejected: inventory.rejected.clone(),
        }
    }

    async fn plan_one(&self, target: &Arc<dyn Target>, inventory: &Inventory) -> TargetReport {
        let name = target.name().to_owned();
        let plan = match self.make_plan(target, inventory).await {
            Ok(plan) => plan,
            Err(e) => return TargetReport::failed(name, e.to_string()),
        };
        if let Some(refusal) = plan.refused {
            let explanation = refusal.explain(&name);
            return TargetReport::from_plan(&plan, Convergence::Refused, Some(explanation));
        }
        let mut report = TargetReport::from_plan(&plan, Convergence::Planned, None);
        if let Some(batch) = target.as_batch() {
            match preview(batch, inventory, &plan.steps).await {
                Ok(preview) => report.diff = Some(preview::unified_diff(&preview)),
                Err(e) => {
                    report.status = Convergence::Failed;
                    report.error = Some(e.to_string());
                }
            }
        }
        report
    }

    /// The file target `target` would hold after a sync of `inventory` (`None`: no such file
    /// target). The mass-deletion guard does not apply: this writes nothing.
    pub async fn preview(
        &self,
        target: &str,
        inventory: &Inventory,
    ) -> Option<Result<Preview, TargetError>> {
        let (target, _) = self.targets.iter().find(|(t, _)| t.name() == target)?;
        let batch = target.as_batch()?;
        Some(match self.make_plan(target, inventory).await {
            Ok(plan) => preview(batch, inventory, &plan.steps).await,
            Err(e) => Err(e),
        })
    }

    async fn make_plan(
        &self,
        target: &Arc<dyn Target>,
        inventory: &Inventory,
    ) -> Result<TargetPlan, TargetError> {
        let name = target.name();
        let desired: BTreeMap<String, Fingerprint> = inventory
            .cameras
            .values()
            .filter(|c| c.wants_target(name))
            .map(|c| (c.name.clone(), self.ledger.fingerprint(&target.render(c))))
            .collect();
        let owned: Owned = self
            .ledger
            .owned(name)
            .map_err(|source| TargetError::Ledger {
                target: name.to_owned(),
                source,
            })?;
        let observed = target.list().await?;
        let awaiting = inventory.awaiting_source(name);
        let policy = DeletePolicy {
            allow_mass_delete: self.allow_mass_delete,
            hold: !inventory.rejected.is_empty(),
            awaiting: &awaiting,
        };
        Ok(plan_target(name, &desired, &owned, &observed, policy))
    }
}

/// The file a batch target would write for `steps`.
async fn preview(
    batch: &dyn BatchTarget,
    inventory: &Inventory,
    steps: &[Step],
) -> Result<Preview, TargetError> {
    let changes: Vec<Change<'_>> = steps
        .iter()
        .filter_map(|step| match step.action {
            Action::Delete => Some(Change::Delete(&step.name)),
            Action::Create | Action::Adopt | Action::Update | Action::Recover => {
                inventory.cameras.get(&step.name).map(|c| Change::Upsert(c))
            }
            Action::Unchanged | Action::Hold | Action::Forget => None,
        })
        .collect();
    batch.preview(&changes).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::camera::Camera;
    use crate::target::{Applied, BoxFuture};

    /// A target in memory whose upserts fail with `failure` the first `failures` times.
    struct FakeTarget {
        streams: Mutex<BTreeSet<String>>,
        failures: AtomicUsize,
        failure: fn() -> TargetError,
        upserts: AtomicUsize,
    }

    impl FakeTarget {
        fn new(failures: usize, failure: fn() -> TargetError) -> Arc<FakeTarget> {
            Arc::new(FakeTarget {
                streams: Mutex::new(BTreeSet::new()),
                failures: AtomicUsize::new(failures),
                failure,
                upserts: AtomicUsize::new(0),
            })
        }
    }

    impl Target for FakeTarget {
        fn name(&self) -> &str {
            "fake"
        }
        fn render(&self, camera: &Camera) -> String {
            camera.sources[0].expose()
        }
        fn list(&self) -> BoxFuture<'_, Result<BTreeSet<String>, TargetError>> {
            Box::pin(async { Ok(self.streams.lock().unwrap().clone()) })
        }
        fn observe(
            &self,
        ) -> BoxFuture<'_, Result<BTreeMap<String, crate::target::StreamObservation>, TargetError>>
        {
            unreachable!("the reconciler reads no health")
        }
        fn upsert<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
            Box::pin(async move {
                self.upserts.fetch_add(1, Ordering::SeqCst);
                let left = self.failures.load(Ordering::SeqCst);
                if left > 0 {
                    self.failures.store(left - 1, Ordering::SeqCst);
                    return Err((self.failure)());
                }
                self.streams.lock().unwrap().insert(camera.name.clone());
                Ok(Applied::Done)
            })
        }
        fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Applied, TargetError>> {
            Box::pin(async move {
                self.streams.lock().unwrap().remove(name);
                Ok(Applied::Done)
            })
        }
        fn run_check<'a>(
            &'a self,
            _: Option<&'a str>,
        ) -> BoxFuture<'a, Result<crate::target::RunCheck, TargetError>> {
            Box::pin(async { Ok(Default::default()) })
        }
    }

    fn inventory() -> Inventory {
        let camera = Camera::example("cam", "rtsp://192.0.2.1/x");
        Inventory {
            cameras: [("cam".to_string(), Arc::new(camera))].into(),
            rejected: Vec::new(),
        }
    }

    fn reconciler(target: Arc<FakeTarget>) -> (Reconciler, Arc<Ledger>) {
        let ledger = Arc::new(Ledger::in_memory().unwrap());
        (Reconciler::new(vec![target], ledger.clone(), false), ledger)
    }

    fn server_error() -> TargetError {
        TargetError::Http {
            target: "fake".into(),
            op: "put".into(),
            status: 503,
            detail: String::new(),
        }
    }

    fn rejected() -> TargetError {
        TargetError::Rejected {
            target: "fake".into(),
            op: "put".into(),
            detail: "bad source".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_are_retried_with_backoff_until_success() {
        let target = FakeTarget::new(2, server_error);
        let (reconciler, ledger) = reconciler(target.clone());
        let started = tokio::time::Instant::now();
        let report = reconciler.sync(&inventory()).await;
        assert!(report.ok(), "{}", report.render_text());
        assert_eq!(target.upserts.load(Ordering::SeqCst), 3);
        assert!(
            started.elapsed() >= WorkerSettings::default().backoff.min,
            "it waited between tries"
        );
        assert!(
            ledger.owned("fake").unwrap()["cam"].is_some(),
            "the write is confirmed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_after_the_last_attempt_and_leave_an_unconfirmed_intent() {
        let target = FakeTarget::new(10, server_error);
        let (reconciler, ledger) = reconciler(target.clone());
        let report = reconciler.sync(&inventory()).await;
        assert!(!report.ok());
        assert_eq!(
            target.upserts.load(Ordering::SeqCst),
            WorkerSettings::default().attempts as usize
        );
        assert_eq!(
            ledger.owned("fake").unwrap()["cam"],
            None,
            "owned, but the write is unconfirmed"
        );
        // The next sync tries again (and the fake has given up failing by then).
        target.failures.store(0, Ordering::SeqCst);
        assert!(reconciler.sync(&inventory()).await.ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejection_is_not_retried() {
        let target = FakeTarget::new(1, rejected);
        let (reconciler, _) = reconciler(target.clone());
        let report = reconciler.sync(&inventory()).await;
        assert_eq!(target.upserts.load(Ordering::SeqCst), 1);
        let step = &report.targets[0].steps[0];
        assert_eq!(step.outcome, report::OutcomeKind::Failed);
        assert!(step.detail.as_deref().unwrap().contains("bad source"));
    }

    /// A target that takes all writes in one call and cannot represent the camera named `bad`.
    #[derive(Default)]
    struct FakeBatchTarget {
        streams: Mutex<BTreeSet<String>>,
        batches: AtomicUsize,
    }

    impl Target for FakeBatchTarget {
        fn name(&self) -> &str {
            "file"
        }
        fn render(&self, camera: &Camera) -> String {
            camera.sources[0].expose()
        }
        fn list(&self) -> BoxFuture<'_, Result<BTreeSet<String>, TargetError>> {
            Box::pin(async { Ok(self.streams.lock().unwrap().clone()) })
        }
        fn observe(
            &self,
        ) -> BoxFuture<'_, Result<BTreeMap<String, crate::target::StreamObservation>, TargetError>>
        {
            unreachable!("the reconciler reads no health")
        }
        fn upsert<'a>(&'a self, _: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
            unreachable!("a batch target gets batches")
        }
        fn delete<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Applied, TargetError>> {
            unreachable!("a batch target gets batches")
        }
        fn run_check<'a>(
            &'a self,
            _: Option<&'a str>,
        ) -> BoxFuture<'a, Result<crate::target::RunCheck, TargetError>> {
            Box::pin(async { Ok(Default::default()) })
        }
        fn as_batch(&self) -> Option<&dyn BatchTarget> {
            Some(self)
        }
    }

    impl BatchTarget for FakeBatchTarget {
        fn preview<'a>(
            &'a self,
            _: &'a [Change<'a>],
        ) -> BoxFuture<'a, Result<Preview, TargetError>> {
            unreachable!("only plans preview")
        }

        fn write_batch<'a>(
            &'a self,
            changes: &'a [Change<'a>],
        ) -> BoxFuture<'a, Result<Vec<Result<Applied, TargetError>>, TargetError>> {
            Box::pin(async move {
                self.batches.fetch_add(1, Ordering::SeqCst);
                let mut streams = self.streams.lock().unwrap();
                Ok(changes
                    .iter()
                    .map(|change| match change {
                        Change::Upsert(c) if c.name == "bad" => Err(rejected()),
                        Change::Upsert(c) => {
                            streams.insert(c.name.clone());
                            Ok(Applied::Done)
                        }
                        Change::Delete(name) => {
                            streams.remove(*name);
                            Ok(Applied::Done)
                        }
                    })
                    .collect())
            })
        }
    }

    fn cameras(names: &[&str]) -> Inventory {
        let base = inventory().cameras["cam"].clone();
        Inventory {
            cameras: names
                .iter()
                .map(|n| {
                    (
                        n.to_string(),
                        Arc::new(Camera {
                            name: n.to_string(),
                            ..(*base).clone()
                        }),
                    )
                })
                .collect(),
            rejected: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_batch_target_gets_every_write_in_one_call_and_failures_stay_per_camera() {
        let target = Arc::new(FakeBatchTarget::default());
        let ledger = Arc::new(Ledger::in_memory().unwrap());
        let reconciler = Reconciler::new(vec![target.clone()], ledger.clone(), false);
        let report = reconciler.sync(&cameras(&["a", "b", "bad", "c"])).await;
        assert_eq!(target.batches.load(Ordering::SeqCst), 1);
        assert_eq!(report.targets[0].counts.create, 3);
        assert_eq!(report.targets[0].counts.failed, 1);
        let owned = ledger.owned("file").unwrap();
        assert!(owned["a"].is_some() && owned["c"].is_some());
        assert_eq!(
            owned["bad"], None,
            "a failed write stays an unconfirmed intent"
        );

        // Deletes and creates of one sync travel together too; nothing to do, no call.
        reconciler.sync(&cameras(&["a", "b", "c", "d"])).await;
        assert_eq!(target.batches.load(Ordering::SeqCst), 2);
        reconciler.sync(&cameras(&["a", "b", "c", "d"])).await;
        assert_eq!(target.batches.load(Ordering::SeqCst), 2);
        assert_eq!(
            *target.streams.lock().unwrap(),
            ["a", "b", "c", "d"].map(String::from).into()
        );
    }
}

//! The reconciler: desired + ledger + observed ⇒ plan ⇒ apply, per target.
//!
//! Level-triggered: it is never told why it runs; every run compares the whole inventory with
//! what the ledger owns and what the server lists. Targets are reconciled concurrently, the
//! steps of one target one after another (a target's client also serializes its own calls).
//! A second run with nothing changed makes no write call.
//!
//! Each target has a write gate ([`Reconciler::write_gate`]): a sync holds it for writing
//! during one step (intent, server call, record), never across the whole run, so a health
//! recovery that takes it for reading waits for at most the step in flight, not for a
//! 1,000-camera resync, and still never interleaves with a step on the same target.

pub mod plan;
mod preview;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::RwLock;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::camera::Camera;
use crate::ledger::{Fingerprint, Ledger, Owned};
use crate::source::Inventory;
use crate::target::{Applied, BatchTarget, Change, Preview, Target, TargetError};
use plan::{Action, DeletePolicy, Step, TargetPlan, plan_target};
use report::{Outcome, StepReport, SyncReport, TargetReport, TargetStatus};

/// Retries for one server call: exponential with jitter, only for retryable errors.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

pub struct Reconciler {
    targets: Vec<Arc<dyn Target>>,
    gates: BTreeMap<String, Arc<RwLock<()>>>,
    ledger: Arc<Ledger>,
    allow_mass_delete: bool,
    retry: RetryPolicy,
    shutdown: CancellationToken,
}

impl Reconciler {
    pub fn new(
        targets: Vec<Arc<dyn Target>>,
        ledger: Arc<Ledger>,
        allow_mass_delete: bool,
    ) -> Self {
        let gates = targets
            .iter()
            .map(|t| (t.name().to_owned(), Arc::default()))
            .collect();
        Reconciler {
            targets,
            gates,
            ledger,
            allow_mass_delete,
            retry: RetryPolicy::default(),
            shutdown: CancellationToken::new(),
        }
    }

    /// Stops applying further steps once `shutdown` is cancelled; the step in flight finishes.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn targets(&self) -> &[Arc<dyn Target>] {
        &self.targets
    }

    /// `target`'s write gate: held for writing by a sync during each of its steps there. A
    /// write outside a sync (a health recovery) holds it for reading, after checking the
    /// stream is still [`Reconciler::confirmed`].
    pub fn write_gate(&self, target: &str) -> Arc<RwLock<()>> {
        self.gates.get(target).cloned().unwrap_or_default()
    }

    /// The streams camsync owns on `target`, each with the fingerprint of its last confirmed
    /// write (`None`: written, not yet confirmed). Empty if the ledger cannot be read.
    pub fn owned(&self, target: &str) -> Owned {
        self.ledger.owned(target).unwrap_or_default()
    }

    /// The streams camsync wrote on `target` and confirmed: what the health monitor judges.
    pub fn confirmed(&self, target: &str) -> BTreeSet<String> {
        self.owned(target)
            .into_iter()
            .filter(|(_, fp)| fp.is_some())
            .map(|(name, _)| name)
            .collect()
    }

    /// A stream camsync wrote on `target` and confirmed: if the server no longer has it, the
    /// server lost what camsync put there.
    pub fn canary(&self, target: &str) -> Option<String> {
        let owned = self.ledger.owned(target).ok()?;
        owned
            .into_iter()
            .find(|(_, fp)| fp.is_some())
            .map(|(name, _)| name)
    }

    /// What a sync would do, per target, without writing anything.
    pub async fn plan(&self, inventory: &Inventory) -> SyncReport {
        self.run(inventory, false).await
    }

    /// Converges every target once.
    pub async fn sync(&self, inventory: &Inventory) -> SyncReport {
        self.run(inventory, true).await
    }

    /// The file target `target` would hold after a sync of `inventory` (`None`: no such file
    /// target). The mass-deletion guard does not apply: this writes nothing.
    pub async fn preview(
        &self,
        target: &str,
        inventory: &Inventory,
    ) -> Option<Result<Preview, TargetError>> {
        let target = self.targets.iter().find(|t| t.name() == target)?;
        let batch = target.as_batch()?;
        let work = self.work(
            target.clone(),
            Arc::new(inventory.cameras.clone()),
            inventory,
        );
        Some(match work.make_plan().await {
            Ok(plan) => work.preview(batch, &plan.steps).await,
            Err(e) => Err(e),
        })
    }

    /// `cameras` is `inventory`'s, shared by the targets of one run.
    fn work(
        &self,
        target: Arc<dyn Target>,
        cameras: Arc<BTreeMap<String, Camera>>,
        inventory: &Inventory,
    ) -> TargetWork {
        TargetWork {
            gate: self.write_gate(target.name()),
            target,
            ledger: self.ledger.clone(),
            cameras,
            deletes: DeletePolicy {
                allow_mass_delete: self.allow_mass_delete,
                hold: !inventory.rejected.is_empty(),
            },
            retry: self.retry,
            shutdown: self.shutdown.clone(),
        }
    }

    async fn run(&self, inventory: &Inventory, apply: bool) -> SyncReport {
        let cameras = Arc::new(inventory.cameras.clone());
        let mut tasks = JoinSet::new();
        for (index, target) in self.targets.iter().enumerate() {
            let work = self.work(target.clone(), cameras.clone(), inventory);
            tasks.spawn(async move { (index, work.run(apply).await) });
        }
        let mut targets: Vec<Option<TargetReport>> = vec![None; self.targets.len()];
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((index, report)) => targets[index] = Some(report),
                Err(e) => tracing::error!(error = %e, "a target task failed"),
            }
        }
        SyncReport {
            applied: apply,
            targets: targets.into_iter().flatten().collect(),
            rejected: inventory.rejected.clone(),
        }
    }
}

struct TargetWork {
    target: Arc<dyn Target>,
    gate: Arc<RwLock<()>>,
    ledger: Arc<Ledger>,
    cameras: Arc<BTreeMap<String, Camera>>,
    deletes: DeletePolicy,
    retry: RetryPolicy,
    shutdown: CancellationToken,
}

impl TargetWork {
    async fn run(self, apply: bool) -> TargetReport {
        let name = self.target.name().to_owned();
        let plan = match self.make_plan().await {
            Ok(plan) => plan,
            Err(e) => return TargetReport::failed(name, e.to_string()),
        };
        if let Some(refusal) = plan.refused {
            let explanation = refusal.explain(&name);
            tracing::error!(target_name = %name, "{explanation}");
            return TargetReport::from_plan(&plan, TargetStatus::Refused, Some(explanation));
        }
        if !apply {
            let mut report = TargetReport::from_plan(&plan, TargetStatus::Planned, None);
            if let Some(batch) = self.target.as_batch() {
                match self.preview(batch, &plan.steps).await {
                    Ok(preview) => report.diff = Some(preview::unified_diff(&preview)),
                    Err(e) => {
                        report.status = TargetStatus::Failed;
                        report.error = Some(e.to_string());
                    }
                }
            }
            return report;
        }
        let steps = match self.target.as_batch() {
            Some(batch) => self.apply_batch(batch, &plan.steps).await,
            None => self.apply_steps(&plan.steps).await,
        };
        TargetReport::applied(name, steps)
    }

    async fn apply_steps(&self, steps: &[Step]) -> Vec<StepReport> {
        let mut reports = Vec::with_capacity(steps.len());
        for step in steps {
            if self.shutdown.is_cancelled() {
                break;
            }
            let outcome = self.apply_step(step).await;
            reports.push(StepReport::new(step, outcome));
        }
        reports
    }

    /// The file a batch target would write for `steps`.
    async fn preview(
        &self,
        batch: &dyn BatchTarget,
        steps: &[Step],
    ) -> Result<Preview, TargetError> {
        let changes: Vec<Change<'_>> = steps.iter().filter_map(|s| self.change(s)).collect();
        batch.preview(&changes).await
    }

    /// The write a step makes, if any.
    fn change<'a>(&'a self, step: &'a Step) -> Option<Change<'a>> {
        match step.action {
            Action::Unchanged | Action::Hold | Action::Forget => None,
            Action::Delete => Some(Change::Delete(&step.name)),
            Action::Create | Action::Adopt | Action::Update => {
                self.cameras.get(&step.name).map(Change::Upsert)
            }
        }
    }

    /// All writes in one call: intents first, then the batch, then each result is recorded.
    async fn apply_batch(&self, batch: &dyn BatchTarget, steps: &[Step]) -> Vec<StepReport> {
        let target = self.target.name();
        let mut reports = Vec::with_capacity(steps.len());
        let mut writes: Vec<(&Step, Change<'_>)> = Vec::new();
        for step in steps {
            let change = match step.action {
                Action::Unchanged | Action::Hold | Action::Forget => {
                    reports.push(StepReport::new(step, self.apply_step(step).await));
                    continue;
                }
                Action::Delete => Change::Delete(&step.name),
                Action::Create | Action::Adopt | Action::Update => {
                    match self.cameras.get(&step.name) {
                        Some(camera) => Change::Upsert(camera),
                        None => {
                            reports.push(StepReport::new(step, Outcome::Failed(VANISHED.into())));
                            continue;
                        }
                    }
                }
            };
            if matches!(change, Change::Upsert(_))
                && let Err(e) = self.ledger.intend(target, &step.name)
            {
                reports.push(StepReport::new(step, Outcome::Failed(e.to_string())));
                continue;
            }
            writes.push((step, change));
        }
        if writes.is_empty() {
            return reports;
        }
        let changes: Vec<Change<'_>> = writes.iter().map(|(_, c)| *c).collect();
        let _exclusive = self.gate.write().await;
        match self.with_retry(|| batch.write_batch(&changes)).await {
            Err(e) => {
                let error = e.to_string();
                tracing::error!(target_name = target, error = %error, "batch write failed");
                reports.extend(
                    writes
                        .iter()
                        .map(|(step, _)| StepReport::new(step, Outcome::Failed(error.clone()))),
                );
            }
            Ok(results) => {
                for ((step, _), result) in writes.iter().zip(results) {
                    reports.push(StepReport::new(step, self.record(step, result)));
                }
            }
        }
        reports
    }

    /// Records the result of one write in the ledger.
    fn record(&self, step: &Step, result: Result<Applied, TargetError>) -> Outcome {
        let target = self.target.name();
        let applied = match result {
            Ok(applied) => applied,
            Err(e) => return log_failed(target, step, e),
        };
        let recorded = match (&step.action, &step.fingerprint) {
            (Action::Delete, _) => self.ledger.forget(target, &step.name),
            (_, Some(fingerprint)) => self.ledger.record(target, &step.name, fingerprint),
            (_, None) => return Outcome::Failed(VANISHED.into()),
        };
        match recorded {
            Ok(()) => log_applied(target, step, applied),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    async fn make_plan(&self) -> Result<TargetPlan, TargetError> {
        let name = self.target.name();
        let desired: BTreeMap<String, Fingerprint> = self
            .cameras
            .values()
            .filter(|c| c.wants_target(name))
            .map(|c| {
                (
                    c.name.clone(),
                    self.ledger.fingerprint(&self.target.render(c)),
                )
            })
            .collect();
        let owned = self.ledger.owned(name).map_err(|e| TargetError::Client {
            target: name.to_owned(),
            detail: e.to_string(),
        })?;
        let observed = self.with_retry(|| self.target.list()).await?;
        Ok(plan_target(name, &desired, &owned, &observed, self.deletes))
    }

    async fn with_retry<T, F, Fut>(&self, call: F) -> Result<T, TargetError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, TargetError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.attempts.saturating_sub(1))
            .with_jitter();
        call.retry(backoff)
            .when(TargetError::is_retryable)
            .notify(|e, wait| tracing::warn!(error = %e, ?wait, "retrying"))
            .await
    }

    async fn apply_step(&self, step: &Step) -> Outcome {
        let target = self.target.name();
        match step.action {
            Action::Unchanged | Action::Hold => Outcome::Unchanged,
            Action::Forget => match self.ledger.forget(target, &step.name) {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::Failed(e.to_string()),
            },
            Action::Delete => {
                let _exclusive = self.gate.write().await;
                let result = self.with_retry(|| self.target.delete(&step.name)).await;
                self.record(step, result)
            }
            Action::Create | Action::Adopt | Action::Update => {
                let Some(camera) = self.cameras.get(&step.name) else {
                    return Outcome::Failed(VANISHED.into());
                };
                let _exclusive = self.gate.write().await;
                if let Err(e) = self.ledger.intend(target, &step.name) {
                    return Outcome::Failed(e.to_string());
                }
                let result = self.with_retry(|| self.target.upsert(camera)).await;
                self.record(step, result)
            }
        }
    }
}

const VANISHED: &str = "camera vanished from the inventory mid-sync";

fn log_applied(target: &str, step: &Step, applied: Applied) -> Outcome {
    match applied {
        Applied::Done => {
            tracing::info!(target_name = target, stream = %step.name, action = ?step.action, reason = step.reason, "applied");
            Outcome::Done
        }
        Applied::Partial { detail } => {
            tracing::info!(target_name = target, stream = %step.name, action = ?step.action, %detail,
                "applied in memory, but the server could not save its config file; camsync restores it after a restart");
            Outcome::Partial(detail)
        }
    }
}

fn log_failed(target: &str, step: &Step, error: TargetError) -> Outcome {
    tracing::error!(target_name = target, stream = %step.name, action = ?step.action, error = %error, "failed");
    Outcome::Failed(error.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::camera::SourceUrl;
    use crate::target::BoxFuture;

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
        fn status(
            &self,
        ) -> BoxFuture<'_, Result<BTreeMap<String, crate::target::StreamStatus>, TargetError>>
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
        let camera = Camera {
            name: "cam".into(),
            sources: vec![SourceUrl::parse("rtsp://192.0.2.1/x").unwrap()],
            profile: "viewing".into(),
            targets: None,
            enabled: true,
            preload: false,
            mediamtx: Default::default(),
            shard: None,
        };
        Inventory {
            cameras: [("cam".to_string(), camera)].into(),
            rejected: Vec::new(),
        }
    }

    fn reconciler(target: Arc<FakeTarget>) -> (Reconciler, Arc<Ledger>) {
        let ledger = Arc::new(Ledger::in_memory().unwrap());
        (Reconciler::new(vec![target], ledger.clone(), false), ledger)
    }

    fn server_error() -> TargetError {
        TargetError::Status {
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
            started.elapsed() >= RetryPolicy::default().min_delay,
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
            RetryPolicy::default().attempts
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
        fn status(
            &self,
        ) -> BoxFuture<'_, Result<BTreeMap<String, crate::target::StreamStatus>, TargetError>>
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
                        Camera {
                            name: n.to_string(),
                            ..base.clone()
                        },
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

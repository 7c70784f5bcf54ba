//! `camsync run`: the workers, the triggers that feed them, the health monitor and the API.
//!
//! One worker per target is the only writer to its server ([`crate::reconcile::worker`]).
//! Everything here only enqueues: start-up and `POST /v1/sync` converge every target; a
//! source change or a webhook converges the cameras that changed (or were named); the resync
//! timer converges everything at low priority; the workers' restart checks and the health
//! monitor's verdicts go to the workers directly. An inventory that cannot be read keeps the
//! last good one in force and deletes nothing. Nest cameras get their stream URL from the
//! [`Resolver`]: the inventory the workers see is the source's with each resolved URL in, and
//! a new stream from Google converges that camera. What happens is recorded in [`Activity`]
//! (events, metrics, per-camera status) for the API.
//!
//! Shutdown: the loop stops enqueueing, each worker finishes the write in flight, the API
//! stops accepting and ends event streams, and the tasks get [`SHUTDOWN_GRACE`] to finish.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::activity::{Activity, Asked};
use crate::api::{self, ApiParts, ApiState};
use crate::app::{AppError, LedgerMode, reconciler_wrapping};
use crate::config::Config;
use crate::health::monitor::{RoundOutcome, Settings, TargetMonitor};
use crate::health::runner::{HealthLoop, HealthObserver};
use crate::health::state::State;
use crate::ledger::LedgerLock;
use crate::metrics::Metrics;
use crate::reconcile::queue::Priority;
use crate::reconcile::report::StepReport;
use crate::reconcile::worker::{Observer, QueueStats};
use crate::reconcile::{Workers, changed};
use crate::resolve::Resolver;
use crate::resolve::account::StreamState;
use crate::source::{Changes, Inventory, Source};

/// How long the daemon's tasks get to finish after shutdown is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a requested sync waits for the last one to finish before it starts anyway.
pub const COALESCE: Duration = Duration::from_millis(25);

/// What the daemon has done so far; readable while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Inventory reads that succeeded.
    pub inventory_loads: u64,
    /// Inventory reads that failed (the last good inventory stayed in force).
    pub source_errors: u64,
    pub last_source_error: Option<String>,
    /// Completed syncs.
    pub syncs: u64,
    /// Whether the last sync converged every target.
    pub last_sync_ok: bool,
    /// Server restarts or reloads noticed between resyncs (each triggered a sync at once).
    pub restarts_seen: u64,
    /// Health state changes of (camera, target) pairs.
    pub health_events: u64,
    /// Pairs that went from failing back to healthy.
    pub recoveries: u64,
    /// Servers restarted by the opt-in escalation (`health.restart_server`).
    pub server_restarts: u64,
    /// Streams written by a recovery or a reconnect.
    pub recovery_writes: u64,
}

/// How [`run_with`] is wired.
pub struct Wiring {
    /// Progress, readable while the daemon runs.
    pub progress: watch::Sender<Progress>,
    /// Where the HTTP API listens; `None` runs without it.
    pub api: Option<TcpListener>,
}

/// Runs until `shutdown` is cancelled, serving the HTTP API on `api.listen`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    // Before the listener: a second daemon is told about the first, not about a busy port.
    let lock = LedgerLock::acquire(&config.state)?;
    let addr = config.api.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Listen { addr, source })?;
    let wiring = Wiring {
        progress: watch::channel(Progress::default()).0,
        api: Some(listener),
    };
    run_locked(config, shutdown, wiring, lock).await
}

/// [`run`] without the HTTP API, publishing its progress on `progress`.
pub async fn run_with_progress(
    config: Config,
    shutdown: CancellationToken,
    progress: watch::Sender<Progress>,
) -> Result<(), AppError> {
    let wiring = Wiring {
        progress,
        api: None,
    };
    run_with(config, shutdown, wiring).await
}

/// [`run`], wired as `wiring` says.
pub async fn run_with(
    config: Config,
    shutdown: CancellationToken,
    wiring: Wiring,
) -> Result<(), AppError> {
    let lock = LedgerLock::acquire(&config.state)?;
    run_locked(config, shutdown, wiring, lock).await
}

/// Runs while holding `lock`, the daemon's hold on its ledger, released when it ends.
async fn run_locked(
    config: Config,
    shutdown: CancellationToken,
    wiring: Wiring,
    lock: LedgerLock,
) -> Result<(), AppError> {
    let result = run_loop(config, shutdown, wiring)
        .instrument(tracing::info_span!("daemon"))
        .await;
    drop(lock);
    result
}

/// Where the workers and the health monitor report: the activity and the daemon's progress.
struct Report {
    activity: Arc<Activity>,
    progress: watch::Sender<Progress>,
}

impl Observer for Report {
    fn step(&self, target: &str, step: &StepReport, sync: Option<u64>) {
        if step.action == crate::reconcile::plan::Action::Recover {
            self.progress.send_modify(|s| s.recovery_writes += 1);
        }
        self.activity.step(target, step, sync);
    }

    fn degraded(&self, target: &str, stream: &str, degraded: bool, detail: &str) {
        self.activity.degraded(target, stream, degraded, detail);
    }

    fn server_lost(&self, target: &str) {
        self.progress.send_modify(|s| s.restarts_seen += 1);
        self.activity.server_restarted(target);
    }

    fn server_restarted(&self, target: &str) {
        self.progress.send_modify(|s| s.server_restarts += 1);
        self.activity.server_restarted(target);
    }

    fn queue(&self, target: &str, stats: &QueueStats, waited: Option<(Priority, Duration)>) {
        self.activity.metrics().queue(target, stats, waited);
    }
}

impl HealthObserver for Report {
    fn round(&self, target: &str, outcome: &RoundOutcome, states: &[(String, State)]) {
        let recoveries = outcome
            .events
            .iter()
            .filter(|e| e.transition.recovered_after.is_some())
            .count();
        self.progress.send_modify(|s| {
            s.health_events += outcome.events.len() as u64;
            s.recoveries += recoveries as u64;
        });
        self.activity
            .health_round(target, &outcome.events, states, &outcome.probes);
    }
}

async fn run_loop(
    config: Config,
    shutdown: CancellationToken,
    wiring: Wiring,
) -> Result<(), AppError> {
    let Wiring { progress, api } = wiring;
    let metrics = Arc::new(Metrics::new());
    let activity = Arc::new(Activity::new(metrics.clone()));
    let report = Arc::new(Report {
        activity: activity.clone(),
        progress: progress.clone(),
    });
    let reconciler = reconciler_wrapping(&config, LedgerMode::ReadWrite, |t| metrics.timed(t))?
        .watching_restarts(config.restart_check);
    let tasks = TaskTracker::new();
    let workers = Arc::new(reconciler.start(report.clone(), &shutdown, &tasks)?);
    let resolver = Arc::new(Resolver::start(&config)?);
    if let Some(settings) = config.health.as_ref().map(Settings::from_config) {
        let monitors = reconciler
            .targets()
            .into_iter()
            .zip(&config.targets)
            .zip(workers.handles())
            // A file target without `api:` has nothing to observe or recover through.
            .filter(|((_, c), _)| !c.kind.is_file() || c.api.is_some())
            .map(|((target, c), worker)| {
                (
                    TargetMonitor::new(target, c.rtsp.clone(), settings),
                    worker.clone(),
                )
            })
            .collect();
        let health = HealthLoop {
            monitors,
            inventory: workers.inventory_watch(),
            observer: report.clone(),
            resolver: resolver.clone(),
        };
        let mut synced = progress.subscribe();
        let first_sync = async move {
            let _ = synced.wait_for(|s| s.syncs > 0).await;
        };
        tasks.spawn(
            health
                .run(settings, first_sync, shutdown.clone())
                .instrument(tracing::info_span!("health")),
        );
    }
    let source = Arc::new(Source::new(&config));
    if let Some(listener) = api {
        let state = ApiState::new(ApiParts {
            config: config.api.clone(),
            activity: activity.clone(),
            workers: workers.clone(),
            targets: config.targets.iter().map(api::TargetInfo::new).collect(),
            plan: Arc::new(reconciler),
            source: source.clone(),
            resolver: resolver.clone(),
            shutdown: shutdown.clone(),
        });
        let server = api::serve(listener, state, shutdown.clone());
        tasks.spawn(
            async move {
                if let Err(e) = server.await {
                    tracing::error!(error = %e, "the HTTP API failed");
                }
            }
            .instrument(tracing::info_span!("api_server")),
        );
    }
    let mut changes = Some(source.changes()?);
    let mut resync = tokio::time::interval(config.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await; // the first tick is immediate; start-up converges anyway
    let mut daemon = Daemon {
        source,
        workers,
        activity,
        progress,
        resolver: resolver.clone(),
        stream_states: HashMap::new(),
        read: None,
        loaded: None,
        finishing: None,
        started: 0,
        last_start: None,
        written: watch::Sender::new(0),
    };
    tracing::info!(config = %config.path.display(), targets = config.targets.len(), resync = ?config.resync, "camsync running");
    daemon
        .reload_and_sync(
            Asked {
                everything: true,
                ..Asked::default()
            },
            Priority::Change,
        )
        .await;
    loop {
        tokio::select! {
            // A shutdown wins over work that became due at the same time.
            biased;
            _ = shutdown.cancelled() => break,
            changed = next_change(&mut changes) => if changed {
                daemon.reload_and_sync(Asked::default(), Priority::Change).await;
            },
            () = resolver.changed() => daemon.apply_resolutions(),
            _ = daemon.activity.sync_requested() => {
                daemon.gather_requests().await;
                daemon.reload_and_sync(Asked::default(), Priority::Change).await;
            }
            _ = resync.tick() => {
                let everything = Asked { everything: true, ..Asked::default() };
                daemon.reload_and_sync(everything, Priority::Resync).await;
            }
        }
    }
    tasks.close();
    // The last sync reports what it did (the items the workers did not start are released).
    let finishing = daemon.finishing.take();
    let stopped = async {
        tasks.wait().await;
        if let Some(finishing) = finishing {
            let _ = finishing.await;
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, stopped).await.is_err() {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "tasks still busy at shutdown; stopping anyway");
    }
    tracing::info!("camsync stopped");
    Ok(())
}

/// The daemon loop's state: the last good inventory, and where work goes.
struct Daemon {
    source: Arc<Source>,
    workers: Arc<Workers>,
    activity: Arc<Activity>,
    progress: watch::Sender<Progress>,
    resolver: Arc<Resolver>,
    /// Each resolved camera's stream state and generation, as last told.
    stream_states: HashMap<String, (StreamState, u64)>,
    /// The last inventory read successfully, as the source gave it.
    read: Option<Arc<Inventory>>,
    /// It with the resolved URLs in: what the workers see.
    loaded: Option<Arc<Inventory>>,
    /// The last sync started, until it has finished.
    finishing: Option<tokio::task::JoinHandle<()>>,
    /// Syncs started, when the last one started, and the latest whose writes are done.
    started: u64,
    last_start: Option<tokio::time::Instant>,
    written: watch::Sender<u64>,
}

impl Daemon {
    /// While the last sync is still writing, lets requests gather until its writes are done or
    /// [`COALESCE`] has passed since it started. A burst of webhooks then costs a re-read of the
    /// source every `COALESCE` at most, a webhook after a quiet spell starts at once, and a hung
    /// server holds back the others' changes by no more than `COALESCE`.
    async fn gather_requests(&self) {
        let Some(last_start) = self.last_start else {
            return;
        };
        let started = self.started;
        let mut written = self.written.subscribe();
        let done = written.wait_for(|&w| w >= started);
        let _ = tokio::time::timeout_at(last_start + COALESCE, done).await;
    }

    /// Reads the inventory again and enqueues a sync (see [`Daemon::sync`]).
    async fn reload_and_sync(&mut self, asked: Asked, priority: Priority) {
        let before = self.loaded.clone();
        self.reload().await;
        self.sync(before, asked, priority);
    }

    /// Puts the resolvers' new streams into the inventory and converges the cameras whose
    /// stream changed; tells each change of a stream's state as an event.
    fn apply_resolutions(&mut self) {
        let resolutions = self.resolver.resolutions();
        self.stream_states
            .retain(|camera, _| resolutions.contains_key(camera));
        for (camera, (resolver, r)) in resolutions {
            let now = (r.state, r.generation);
            if self.stream_states.insert(camera.clone(), now) == Some(now) {
                continue;
            }
            let state = r.state.name();
            if r.state == StreamState::Degraded {
                tracing::warn!(camera = %camera, resolver = %resolver, "stream degraded: {}", r.error.as_deref().unwrap_or_default());
            }
            self.activity
                .stream_state(&camera, &resolver, state, r.generation, r.error.as_deref());
        }
        let Some(read) = self.read.clone() else {
            return;
        };
        let before = self.loaded.clone();
        let resolved = self.resolver.apply(&read);
        if before
            .as_ref()
            .is_some_and(|b| changed(b, &resolved).is_empty())
        {
            return;
        }
        self.publish(resolved);
        self.sync(before, Asked::default(), Priority::Change);
    }

    /// Enqueues a sync of the inventory in force: of everything when `asked` (or a pending
    /// request) says so, else of the cameras that changed since `before` or were named.
    fn sync(&mut self, before: Option<Arc<Inventory>>, asked: Asked, priority: Priority) {
        let Some(current) = self.loaded.clone() else {
            tracing::warn!("no valid inventory yet; nothing synced");
            return;
        };
        let (ticket, requested) = self.activity.sync_started();
        self.started += 1;
        self.last_start = Some(tokio::time::Instant::now());
        let everything = asked.everything || requested.everything || before.is_none();
        let mut names: BTreeSet<String> = asked.cameras;
        names.extend(requested.cameras);
        if let Some(before) = &before {
            names.extend(changed(before, &current));
        }
        let work = if everything {
            self.workers.converge_all(priority, Some(ticket.sync()))
        } else {
            self.workers.converge(&names, priority, Some(ticket.sync()))
        };
        let covered = (!everything).then_some(names);
        let (activity, progress, workers, written, index) = (
            self.activity.clone(),
            self.progress.clone(),
            self.workers.clone(),
            self.written.clone(),
            self.started,
        );
        // Syncs finish in the order they started: one with nothing to do does not count as done
        // before the start-up sync still writing ahead of it.
        let earlier = self.finishing.take();
        self.finishing = Some(tokio::spawn(async move {
            work.wait().await;
            written.send_modify(|w| *w = (*w).max(index));
            if let Some(earlier) = earlier {
                let _ = earlier.await;
            }
            let report = workers.report(&work, current.rejected.clone());
            for t in &report.targets {
                let c = &t.counts;
                tracing::info!(target_name = %t.target, status = ?t.status, created = c.create + c.adopt, updated = c.update,
                    deleted = c.delete, held = c.hold, failed = c.failed, unchanged = c.unchanged, "sync done");
            }
            activity.sync_finished(ticket, &current, covered.as_ref(), &report);
            progress.send_modify(|s| {
                s.syncs += 1;
                s.last_sync_ok = report.ok();
            });
        }));
    }

    async fn reload(&mut self) {
        match self.source.load().await {
            Ok(fresh) => {
                for r in &fresh.rejected {
                    tracing::error!(camera = %r.camera, location = %r.location, "rejected camera: {}", r.reason);
                }
                tracing::info!(
                    cameras = fresh.cameras.len(),
                    rejected = fresh.rejected.len(),
                    "inventory loaded"
                );
                self.resolver.want(&fresh);
                let resolved = self.resolver.apply(&fresh);
                self.read = Some(fresh);
                self.publish(resolved);
                self.progress.send_modify(|s| s.inventory_loads += 1);
            }
            Err(e) => {
                tracing::error!("{e}");
                self.activity.source_error(&e.to_string());
                self.progress.send_modify(|s| {
                    s.source_errors += 1;
                    s.last_source_error = Some(e.to_string());
                });
            }
        }
    }
}

impl Daemon {
    fn publish(&mut self, inventory: Arc<Inventory>) {
        self.activity.inventory_loaded(inventory.clone());
        self.workers.publish(inventory.clone());
        self.loaded = Some(inventory);
    }
}

/// Waits for the next change; if the watch dies, says so once and waits forever (the periodic
/// resync still runs).
async fn next_change(changes: &mut Option<Changes>) -> bool {
    let Some(rx) = changes else {
        return std::future::pending().await;
    };
    if rx.next().await.is_some() {
        return true;
    }
    tracing::error!("the inventory watch stopped; relying on the periodic resync");
    *changes = None;
    false
}

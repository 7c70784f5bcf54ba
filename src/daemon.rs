//! `camsync run`: watch the source, resync periodically, apply changes, serve the HTTP API.
//!
//! One task owns the reconciler, so two syncs never run at once. Start-up, a source change, the
//! resync timer, a sync requested through the API (webhook, `POST /v1/sync`) and a server seen
//! to have lost camsync's streams (checked every `restart_check`: a new run identifier, or a
//! stream camsync owns gone) only mark a sync due; the loop then converges everything
//! (level-triggered). An inventory that cannot be read keeps the last good one in force and
//! deletes nothing. What the loop and the health monitor do is recorded in [`Activity`]
//! (events, metrics, per-camera status) for the API.
//!
//! Shutdown: the loop stops between syncs (a sync in progress finishes its current write
//! first), the API stops accepting and ends event streams, and the tasks get
//! [`SHUTDOWN_GRACE`] to finish.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::activity::Activity;
use crate::api::{self, ApiParts, ApiState};
use crate::app::{AppError, LedgerMode, reconciler_wrapping};
use crate::camera::Camera;
use crate::config::Config;
use crate::health::monitor::{ActGuard, Settings, TargetMonitor};
use crate::health::state::State;
use crate::metrics::Metrics;
use crate::reconcile::Reconciler;
use crate::source::{Changes, Inventory, Source};

/// How long the daemon's tasks get to finish after shutdown is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the daemon has done so far; readable while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
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
}

/// The last run identifier each server reported ([`crate::target::Target::run_check`]).
#[derive(Default)]
struct Epochs(BTreeMap<String, String>);

impl Epochs {
    /// The targets that lost what camsync wrote since the last call: a new run identifier, or a
    /// canary stream gone. A server that does not answer keeps its last known identifier:
    /// being down is not a restart (yet).
    async fn lost(&mut self, reconciler: &Reconciler) -> Vec<String> {
        let mut lost = Vec::new();
        for target in reconciler.targets() {
            let name = target.name().to_owned();
            let canary = reconciler.canary(&name);
            let Ok(check) = target.run_check(canary.as_deref()).await else {
                continue;
            };
            let restarted = match check.epoch {
                Some(epoch) => self
                    .0
                    .insert(name.clone(), epoch.clone())
                    .is_some_and(|p| p != epoch),
                None => false,
            };
            if restarted || check.canary_missing {
                lost.push(name);
            }
        }
        lost
    }
}

/// How [`run_with`] is wired.
pub struct Wiring {
    /// Progress, readable while the daemon runs.
    pub status: watch::Sender<Status>,
    /// Where the HTTP API listens; `None` runs without it.
    pub api: Option<TcpListener>,
}

/// Runs until `shutdown` is cancelled, serving the HTTP API on `api.listen`. A sync in
/// progress finishes its current step first.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    let addr = config.api.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Listen { addr, source })?;
    let wiring = Wiring {
        status: watch::channel(Status::default()).0,
        api: Some(listener),
    };
    run_with(config, shutdown, wiring).await
}

/// [`run`] without the HTTP API, publishing progress on `status`.
pub async fn run_with_status(
    config: Config,
    shutdown: CancellationToken,
    status: watch::Sender<Status>,
) -> Result<(), AppError> {
    let wiring = Wiring { status, api: None };
    run_with(config, shutdown, wiring).await
}

/// [`run`], wired as `wiring` says.
pub async fn run_with(
    config: Config,
    shutdown: CancellationToken,
    wiring: Wiring,
) -> Result<(), AppError> {
    run_loop(config, shutdown, wiring)
        .instrument(tracing::info_span!("daemon"))
        .await
}

async fn run_loop(
    config: Config,
    shutdown: CancellationToken,
    wiring: Wiring,
) -> Result<(), AppError> {
    let Wiring { status, api } = wiring;
    let metrics = Arc::new(Metrics::new());
    let activity = Arc::new(Activity::new(metrics.clone()));
    let reconciler = Arc::new(
        reconciler_wrapping(&config, LedgerMode::ReadWrite, |t| metrics.timed(t))?
            .with_shutdown(shutdown.clone()),
    );
    let (cameras_tx, cameras_rx) = watch::channel(Arc::new(BTreeMap::new()));
    let (resync_tx, mut resync_rx) = mpsc::channel(1);
    let health = config.health.map(|settings| {
        let monitors = reconciler
            .targets()
            .iter()
            .zip(&config.targets)
            // A file target without `api:` has nothing to observe or recover through.
            .filter(|(_, c)| !c.kind.is_file() || c.api.is_some())
            .map(|(target, c)| TargetMonitor::new(target.clone(), c.rtsp.clone(), settings))
            .collect();
        let work = HealthLoop {
            monitors,
            reconciler: reconciler.clone(),
            cameras: cameras_rx,
            resync: resync_tx,
            status: status.clone(),
            activity: activity.clone(),
        };
        tokio::spawn(
            work.run(settings, shutdown.clone())
                .instrument(tracing::info_span!("health")),
        )
    });
    let source = Arc::new(Source::new(&config));
    let server = api.map(|listener| {
        let state = ApiState::new(ApiParts {
            config: config.api.clone(),
            activity: activity.clone(),
            reconciler: reconciler.clone(),
            source: source.clone(),
            shutdown: shutdown.clone(),
        });
        tokio::spawn(
            api::serve(listener, state, shutdown.clone())
                .instrument(tracing::info_span!("api_server")),
        )
    });
    let changes = source.changes()?;
    let mut inventory: Option<Inventory> = None;
    let mut resync = tokio::time::interval(config.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await; // the first tick is immediate; start-up syncs anyway
    let mut changes = Some(changes);
    let mut restart_check = tokio::time::interval(config.restart_check);
    restart_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut epochs = Epochs::default();
    let (mut reload, mut sync_due) = (true, true);
    tracing::info!(config = %config.path.display(), targets = config.targets.len(), resync = ?config.resync, "camsync running");
    loop {
        if std::mem::take(&mut reload) {
            match source.load().await {
                Ok(fresh) => {
                    for r in &fresh.rejected {
                        tracing::error!(camera = %r.camera, location = %r.location, "rejected camera: {}", r.reason);
                    }
                    tracing::info!(
                        cameras = fresh.cameras.len(),
                        rejected = fresh.rejected.len(),
                        "inventory loaded"
                    );
                    cameras_tx.send_replace(Arc::new(fresh.cameras.clone()));
                    activity.inventory_loaded(&fresh);
                    inventory = Some(fresh);
                    status.send_modify(|s| s.inventory_loads += 1);
                }
                Err(e) => {
                    tracing::error!("{e}");
                    activity.source_error(&e.to_string());
                    status.send_modify(|s| {
                        s.source_errors += 1;
                        s.last_source_error = Some(e.to_string());
                    });
                }
            }
        }
        match (std::mem::take(&mut sync_due), &inventory) {
            (false, _) => {}
            (true, None) => tracing::warn!("no valid inventory yet; nothing synced"),
            (true, Some(current)) => {
                let ticket = activity.sync_started();
                let span = tracing::info_span!("sync", sync = ticket.sync());
                let report = reconciler.sync(current).instrument(span).await;
                activity.sync_finished(ticket, current, &report);
                status.send_modify(|s| {
                    s.syncs += 1;
                    s.last_sync_ok = report.ok();
                });
                for t in &report.targets {
                    let c = &t.counts;
                    tracing::info!(target_name = %t.target, status = ?t.status, created = c.create + c.adopt, updated = c.update,
                    deleted = c.delete, failed = c.failed, unchanged = c.unchanged, "sync done");
                }
            }
        }
        tokio::select! {
            // A shutdown wins over work that became due at the same time.
            biased;
            _ = shutdown.cancelled() => break,
            changed = next_change(&mut changes) => (reload, sync_due) = (changed, changed),
            _ = resync.tick() => (reload, sync_due) = (true, true),
            Some(()) = resync_rx.recv() => sync_due = true,
            _ = activity.sync_requested() => (reload, sync_due) = (true, true),
            _ = restart_check.tick() => {
                let lost = epochs.lost(&reconciler).await;
                if !lost.is_empty() {
                    tracing::warn!(targets = ?lost, "server restarted or reloaded; re-applying what camsync owns there");
                    status.send_modify(|s| s.restarts_seen += lost.len() as u64);
                    for target in &lost {
                        activity.server_restarted(target);
                    }
                    sync_due = true;
                }
            }
        }
    }
    let stopping = async {
        if let Some(health) = health {
            let _ = health.await;
        }
        if let Some(Ok(Err(e))) = match server {
            Some(server) => Some(server.await),
            None => None,
        } {
            tracing::error!(error = %e, "the HTTP API failed");
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, stopping)
        .await
        .is_err()
    {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "tasks still busy at shutdown; stopping anyway");
    }
    tracing::info!("camsync stopped");
    Ok(())
}

/// The health monitor's task: a round over every target each `interval`, judging only the
/// streams the ledger confirms camsync owns.
struct HealthLoop {
    monitors: Vec<TargetMonitor>,
    reconciler: Arc<Reconciler>,
    cameras: watch::Receiver<Arc<BTreeMap<String, Camera>>>,
    resync: mpsc::Sender<()>,
    status: watch::Sender<Status>,
    activity: Arc<Activity>,
}

impl HealthLoop {
    async fn run(mut self, settings: Settings, shutdown: CancellationToken) {
        // Judge nothing before the first sync: until then the ledger may be behind the servers.
        let mut synced = self.status.subscribe();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = synced.wait_for(|s| s.syncs > 0) => {}
        }
        let mut tick = tokio::time::interval(settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch = tokio::time::interval(settings.camera_watch);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.round(&vec![true; self.monitors.len()]).await,
                _ = watch.tick() => {
                    let back = self.offline_cameras_back().await;
                    if back.contains(&true) {
                        self.round(&back).await;
                    }
                }
            }
        }
    }

    /// Per monitor: whether the camera of one of its `camera-offline` streams answers now.
    async fn offline_cameras_back(&self) -> Vec<bool> {
        let cameras = self.cameras.borrow().clone();
        let mut back = Vec::with_capacity(self.monitors.len());
        for monitor in &self.monitors {
            back.push(monitor.offline_camera_answers(&cameras).await);
        }
        back
    }

    /// A round over each monitor whose entry in `selected` is true.
    async fn round(&mut self, selected: &[bool]) {
        let cameras = self.cameras.borrow().clone();
        let monitors = self.monitors.iter_mut().zip(selected).filter(|(_, s)| **s);
        for (monitor, _) in monitors {
            let confirmed = self.reconciler.confirmed(monitor.target_name());
            let judged: BTreeMap<String, Camera> = cameras
                .iter()
                .filter(|(name, _)| confirmed.contains(*name))
                .map(|(name, camera)| (name.clone(), camera.clone()))
                .collect();
            let target = monitor.target_name().to_owned();
            let reconciler = &self.reconciler;
            let gate = reconciler.write_gate(&target);
            let owned = move |camera: &str| reconciler.confirmed(&target).contains(camera);
            let guard = ActGuard {
                gate: &gate,
                owned: &owned,
            };
            let outcome = monitor
                .round_guarded(&judged, Instant::now(), Some(&guard))
                .await;
            let recoveries = outcome
                .events
                .iter()
                .filter(|e| e.transition.recovered_after.is_some())
                .count();
            self.status.send_modify(|s| {
                s.health_events += outcome.events.len() as u64;
                s.recoveries += recoveries as u64;
                s.server_restarts += u64::from(outcome.restarted_server);
            });
            let states: Vec<(String, State)> = judged
                .keys()
                .filter_map(|c| monitor.state(c).map(|s| (c.clone(), s)))
                .collect();
            self.activity.health_round(
                monitor.target_name(),
                &outcome.events,
                &states,
                &outcome.probes,
            );
            if outcome.restarted_server {
                self.activity.server_restarted(monitor.target_name());
            }
            if outcome.resync {
                let _ = self.resync.try_send(());
            }
        }
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

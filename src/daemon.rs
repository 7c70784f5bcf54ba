//! `camsync run`: watch the source, resync periodically, apply changes.
//!
//! One task owns the reconciler, so two syncs never run at once. Start-up, a source change, the
//! resync timer and a server seen to have lost camsync's streams (checked every
//! `restart_check`: a new run identifier, or a stream camsync owns gone) only mark a sync due; the loop then converges everything (level-triggered).
//! An inventory that cannot be read keeps the last good one in force and deletes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::{AppError, LedgerMode, reconciler};
use crate::camera::Camera;
use crate::config::Config;
use crate::health::monitor::{ActGuard, Settings, TargetMonitor};
use crate::reconcile::Reconciler;
use crate::source::{Changes, Inventory, Source};

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

/// Runs until `shutdown` is cancelled. A sync in progress finishes its current step first.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    run_with_status(config, shutdown, watch::channel(Status::default()).0).await
}

/// [`run`], publishing progress on `status`.
pub async fn run_with_status(
    config: Config,
    shutdown: CancellationToken,
    status: watch::Sender<Status>,
) -> Result<(), AppError> {
    let reconciler =
        Arc::new(reconciler(&config, LedgerMode::ReadWrite)?.with_shutdown(shutdown.clone()));
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
        };
        tokio::spawn(work.run(settings, shutdown.clone()))
    });
    let source = Source::new(&config);
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
                    inventory = Some(fresh);
                    status.send_modify(|s| s.inventory_loads += 1);
                }
                Err(e) => {
                    tracing::error!("{e}");
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
                let report = reconciler.sync(current).await;
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
            _ = shutdown.cancelled() => break,
            changed = next_change(&mut changes) => (reload, sync_due) = (changed, changed),
            _ = resync.tick() => (reload, sync_due) = (true, true),
            Some(()) = resync_rx.recv() => sync_due = true,
            _ = restart_check.tick() => {
                let lost = epochs.lost(&reconciler).await;
                if !lost.is_empty() {
                    tracing::warn!(targets = ?lost, "server restarted or reloaded; re-applying what camsync owns there");
                    status.send_modify(|s| s.restarts_seen += lost.len() as u64);
                    sync_due = true;
                }
            }
        }
    }
    if let Some(health) = health {
        let _ = health.await;
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

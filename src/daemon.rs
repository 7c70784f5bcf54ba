//! `camsync run`: watch the source, resync periodically, apply changes.
//!
//! One task owns the reconciler, so two syncs never run at once. A file change, the resync
//! timer and start-up only mark work; the loop then converges everything (level-triggered).
//! An inventory that cannot be read keeps the last good one in force and deletes nothing.

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::app::{AppError, LedgerMode, load_inventory, reconciler};
use crate::config::{Config, SourceConfig};
use crate::source::{Inventory, file};

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
    let reconciler = reconciler(&config, LedgerMode::ReadWrite)?.with_shutdown(shutdown.clone());
    let SourceConfig::File(path) = &config.source;
    let (_watch, changes) = file::watch(path)?;
    let mut inventory: Option<Inventory> = None;
    let mut resync = tokio::time::interval(config.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await; // the first tick is immediate; start-up syncs anyway
    let mut changes = Some(changes);
    let mut reload = true;
    tracing::info!(config = %config.path.display(), targets = config.targets.len(), resync = ?config.resync, "camsync running");
    loop {
        if std::mem::take(&mut reload) {
            match load_inventory(&config) {
                Ok(fresh) => {
                    for r in &fresh.rejected {
                        tracing::error!(camera = %r.camera, location = %r.location, "rejected camera: {}", r.reason);
                    }
                    tracing::info!(
                        cameras = fresh.cameras.len(),
                        rejected = fresh.rejected.len(),
                        "inventory loaded"
                    );
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
        if let Some(current) = &inventory {
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
        } else {
            tracing::warn!("no valid inventory yet; nothing synced");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = next_change(&mut changes) => reload = changed,
            _ = resync.tick() => reload = true,
        }
    }
    tracing::info!("camsync stopped");
    Ok(())
}

/// Waits for the next change; if the watch dies, says so once and waits forever (the periodic
/// resync still runs).
async fn next_change(changes: &mut Option<mpsc::Receiver<()>>) -> bool {
    let Some(rx) = changes else {
        return std::future::pending().await;
    };
    if rx.recv().await.is_some() {
        return true;
    }
    tracing::error!("the inventory watch stopped; relying on the periodic resync");
    *changes = None;
    false
}

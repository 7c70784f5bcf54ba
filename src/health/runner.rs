//! The health monitor's task in the daemon: a round over every target each `interval`,
//! judging only the streams the target's worker confirms camsync owns, and handing every
//! [`Intent`] to that worker, or a new stream's to the resolver. Between rounds, the cameras of
//! `camera-offline` streams are watched (`camera_watch`) so a camera's return is acted on at
//! once.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::monitor::{Intent, RoundOutcome, Settings, TargetMonitor};
use super::state::State;
use crate::camera::Cameras;
use crate::reconcile::queue::Priority;
use crate::reconcile::ticket::Ticket;
use crate::reconcile::worker::WorkerHandle;
use crate::resolve::Resolver;
use crate::source::Inventory;

/// Where the rounds are reported (the daemon's activity and status).
pub trait HealthObserver: Send + Sync {
    /// A round over `target` is over; `states` holds every judged pair's state.
    fn round(&self, target: &str, outcome: &RoundOutcome, states: &[(String, State)]);
}

/// Hands `intents` to the target's worker (each carrying `tickets`), or to the resolver.
pub fn apply(worker: &WorkerHandle, resolver: &Resolver, intents: &[Intent], tickets: &[Ticket]) {
    for intent in intents {
        match intent {
            Intent::NewStream(camera) => {
                resolver.regenerate(camera);
            }
            Intent::Recover {
                camera,
                restart,
                reason,
            } => worker.recover(camera, *restart, reason, tickets),
            Intent::Resync => worker.converge_all(Priority::Change, tickets),
            Intent::RestartServer => worker.restart_server(tickets),
        }
    }
}

pub struct HealthLoop {
    /// Each monitor with the worker of its target.
    pub monitors: Vec<(TargetMonitor, WorkerHandle)>,
    pub inventory: watch::Receiver<Arc<Inventory>>,
    pub observer: Arc<dyn HealthObserver>,
    /// Where a resolved camera's new stream is asked for.
    pub resolver: Arc<Resolver>,
}

impl HealthLoop {
    /// Runs until `shutdown`, starting once `first_sync` completes (until then the ledger may
    /// be behind the servers).
    pub async fn run(
        mut self,
        settings: Settings,
        first_sync: impl Future<Output = ()>,
        shutdown: CancellationToken,
    ) {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = first_sync => {}
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

    fn cameras(&self) -> Arc<Inventory> {
        self.inventory.borrow().clone()
    }

    /// Per monitor: whether the camera of one of its `camera-offline` streams answers now.
    async fn offline_cameras_back(&self) -> Vec<bool> {
        let inventory = self.cameras();
        let mut back = Vec::with_capacity(self.monitors.len());
        for (monitor, _) in &self.monitors {
            back.push(monitor.offline_camera_answers(&inventory.cameras).await);
        }
        back
    }

    /// A round over each monitor whose entry in `selected` is true.
    async fn round(&mut self, selected: &[bool]) {
        let inventory = self.cameras();
        let monitors = self.monitors.iter_mut().zip(selected).filter(|(_, s)| **s);
        for ((monitor, worker), _) in monitors {
            let confirmed = worker.confirmed();
            let judged: Cameras = inventory
                .cameras
                .iter()
                .filter(|(name, _)| confirmed.contains(*name))
                .map(|(name, camera)| (name.clone(), camera.clone()))
                .collect();
            let outcome = monitor.round(&judged, Instant::now()).await;
            apply(worker, &self.resolver, &outcome.intents, &[]);
            let states: Vec<(String, State)> = judged
                .keys()
                .filter_map(|c| monitor.state(c).map(|s| (c.clone(), s)))
                .collect();
            self.observer
                .round(monitor.target_name(), &outcome, &states);
        }
    }
}

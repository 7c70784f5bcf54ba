//! What the daemon has done and seen, for the HTTP API: sync requests and their results, the
//! current inventory, and per (camera, target) the last sync result and health. Every record
//! made here is also published as an [`Event`] and counted in [`Metrics`], so the three views
//! never disagree.
//!
//! Sync requests (webhooks, `POST /v1/sync`) get increasing ids and name the cameras they are
//! about (or everything). A sync that starts serves every id handed out before it started,
//! with the union of their cameras; a request made later is served by a later sync (requesting
//! wakes the daemon, and wake-ups coalesce). So every id resolves to the result of a sync that
//! started after the request was accepted, and a burst of requests costs one or two syncs.
//! Syncs may overlap (each target's worker takes their items in its own order). The results of
//! the last [`KEEP_SYNCS`] syncs are kept, fewer when together they hold more than
//! [`KEEP_STEPS`] steps (a full sync of a large site is large; a webhook's is small).
//!
//! All state is behind one short-held mutex; nothing here awaits or does I/O.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tokio::sync::Notify;

use crate::camera::Camera;
use crate::events::{Envelope, ErrorScope, Event, EventBus, Subscription, TargetSummary};
use crate::health::monitor::{HealthEvent, ProbeSample};
use crate::health::state::State;
use crate::metrics::Metrics;
use crate::reconcile::report::{Convergence, StepReport, SyncReport};
use crate::secret::redact;
use crate::source::{Inventory, Rejection};

/// Sync results kept for `GET /v1/syncs/{id}`, at most.
pub const KEEP_SYNCS: usize = 4096;
/// Steps (one per camera and target) the kept results may hold together; the newest result is
/// kept whatever its size.
pub const KEEP_STEPS: usize = 50_000;

pub struct Activity {
    events: EventBus,
    metrics: Arc<Metrics>,
    wake: Notify,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The last request id handed out.
    requested: u64,
    /// The last request id served by a sync that has started.
    started_up_to: u64,
    syncs_started: u64,
    syncs_done: u64,
    running: Vec<Running>,
    /// What the requests not yet served by a started sync ask for.
    asked: Asked,
    log: VecDeque<Arc<SyncRecord>>,
    /// Steps in `log`.
    log_steps: usize,
    inventory: Option<Arc<Inventory>>,
    last_source_error: Option<String>,
    pairs: BTreeMap<(String, String), PairView>,
}

/// What sync requests ask for: named cameras, or everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    pub everything: bool,
    pub cameras: std::collections::BTreeSet<String>,
}

#[derive(Clone, Copy)]
struct Running {
    sync: u64,
    first: u64,
    last: u64,
}

/// A sync in progress, from [`Activity::sync_started`].
pub struct SyncTicket {
    sync: u64,
    first: u64,
    last: u64,
    started: Instant,
    started_at: SystemTime,
    source_error: Option<String>,
}

impl SyncTicket {
    /// The sync's number (1 for the daemon's first).
    pub fn sync(&self) -> u64 {
        self.sync
    }
}

/// One finished sync, as `GET /v1/syncs/{id}` shows it.
#[derive(Debug, Serialize)]
pub struct SyncRecord {
    pub sync: u64,
    /// The request ids it served, first and last (none for a timer or file-change sync).
    pub requests: Option<[u64; 2]>,
    pub started_at: String,
    pub finished_at: String,
    pub seconds: f64,
    pub ok: bool,
    /// The inventory could not be read just before this sync: it ran on the last good one.
    pub source_error: Option<String>,
    pub report: SyncReport,
}

impl SyncRecord {
    fn steps(&self) -> usize {
        self.report.targets.iter().map(|t| t.steps.len()).sum()
    }
}

/// Where a sync request stands.
#[derive(Debug)]
pub enum Lookup {
    /// No such id was handed out.
    Unknown,
    /// Accepted; no sync has started since.
    Pending,
    Running {
        sync: u64,
    },
    Done(Arc<SyncRecord>),
    /// Served long ago; its result is no longer kept.
    Expired,
}

/// What camsync knows of one (camera, target) pair.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PairView {
    pub last_sync: Option<PairSync>,
    /// The worker failed to write this stream again and again; it still retries.
    pub degraded: bool,
    /// The health monitor's current verdict (absent when health monitoring is off).
    pub health: Option<State>,
    pub last_transition: Option<TransitionView>,
    pub last_recovery: Option<RecoveryView>,
    #[serde(skip)]
    changed: Option<Instant>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairSync {
    /// The sync that made the step; none for a recovery or a re-apply after a restart.
    pub sync: Option<u64>,
    pub at: String,
    pub action: &'static str,
    /// `done`, `partial`, `failed`, `unchanged` or `refused`.
    pub outcome: &'static str,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransitionView {
    pub at: String,
    pub from: &'static str,
    pub to: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecoveryView {
    pub at: String,
    /// From the first failed check to healthy again.
    pub seconds: f64,
}

/// The daemon at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The inventory is loaded and the first sync is done.
    pub ready: bool,
    pub inventory_loaded: bool,
    pub cameras: usize,
    pub rejected: Vec<Rejection>,
    pub syncs: u64,
    pub last_sync_ok: Option<bool>,
    pub last_sync_at: Option<String>,
    pub last_source_error: Option<String>,
    /// Sync requests accepted but not yet served by a started sync.
    pub pending_requests: u64,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl Activity {
    pub fn new(metrics: Arc<Metrics>) -> Activity {
        Activity::with_events(metrics, EventBus::default())
    }

    pub fn with_events(metrics: Arc<Metrics>, events: EventBus) -> Activity {
        Activity {
            events,
            metrics,
            wake: Notify::new(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::lock::lock(&self.inner)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The newest events about `camera`, oldest first.
    pub fn history(&self, camera: &str) -> Vec<Envelope> {
        self.events.history(camera)
    }

    pub fn subscribe(&self) -> Subscription {
        self.events.subscribe()
    }

    pub fn publish(&self, event: Event) {
        self.events.publish(event);
    }

    /// Accepts a sync request for `cameras` (empty: everything): returns its id and wakes the
    /// daemon.
    pub fn request_sync(&self, cameras: &[String]) -> u64 {
        let id = {
            let mut inner = self.lock();
            inner.requested += 1;
            if cameras.is_empty() {
                inner.asked.everything = true;
            } else {
                inner.asked.cameras.extend(cameras.iter().cloned());
            }
            inner.requested
        };
        self.wake.notify_one();
        id
    }

    /// Completes when a sync was requested since the last call (requests coalesce).
    pub async fn sync_requested(&self) {
        self.wake.notified().await
    }

    pub fn lookup(&self, id: u64) -> Lookup {
        let inner = self.lock();
        if id == 0 || id > inner.requested {
            return Lookup::Unknown;
        }
        if id > inner.started_up_to {
            return Lookup::Pending;
        }
        if let Some(r) = inner
            .running
            .iter()
            .find(|r| (r.first..=r.last).contains(&id))
        {
            return Lookup::Running { sync: r.sync };
        }
        inner
            .log
            .iter()
            .find(|s| s.requests.is_some_and(|[a, b]| (a..=b).contains(&id)))
            .map_or(Lookup::Expired, |s| Lookup::Done(s.clone()))
    }

    /// The highest request id handed out so far.
    pub fn last_request(&self) -> u64 {
        self.lock().requested
    }

    pub fn inventory_loaded(&self, inventory: Arc<Inventory>) {
        let (cameras, rejected) = (inventory.cameras.len(), inventory.rejected.len());
        self.events
            .retain_history(|camera| inventory.cameras.contains_key(camera));
        {
            let mut inner = self.lock();
            inner
                .pairs
                .retain(|(camera, _), _| inventory.cameras.contains_key(camera));
            inner.inventory = Some(inventory);
            inner.last_source_error = None;
        }
        self.metrics.inventory_loaded(cameras, rejected);
        self.publish(Event::InventoryLoaded { cameras, rejected });
    }

    pub fn source_error(&self, message: &str) {
        let message = redact(message);
        self.lock().last_source_error = Some(message.clone());
        self.metrics.source_error();
        self.publish(Event::Error {
            scope: ErrorScope::Source,
            target: None,
            camera: None,
            message,
        });
    }

    pub fn inventory(&self) -> Option<Arc<Inventory>> {
        self.lock().inventory.clone()
    }

    pub fn camera(&self, name: &str) -> Option<Arc<Camera>> {
        self.lock()
            .inventory
            .as_ref()
            .and_then(|i| i.cameras.get(name).cloned())
    }

    pub fn pair(&self, camera: &str, target: &str) -> Option<PairView> {
        self.lock()
            .pairs
            .get(&(camera.to_owned(), target.to_owned()))
            .cloned()
    }

    pub fn ready(&self) -> bool {
        let inner = self.lock();
        inner.inventory.is_some() && inner.syncs_done > 0
    }

    pub fn summary(&self) -> Summary {
        let inner = self.lock();
        let last = inner.log.back();
        Summary {
            ready: inner.inventory.is_some() && inner.syncs_done > 0,
            inventory_loaded: inner.inventory.is_some(),
            cameras: inner.inventory.as_ref().map_or(0, |i| i.cameras.len()),
            rejected: inner
                .inventory
                .as_ref()
                .map_or_else(Vec::new, |i| i.rejected.clone()),
            syncs: inner.syncs_done,
            last_sync_ok: last.map(|s| s.ok),
            last_sync_at: last.map(|s| s.finished_at.clone()),
            last_source_error: inner.last_source_error.clone(),
            pending_requests: inner.requested - inner.started_up_to,
        }
    }

    /// A sync begins: it serves every request accepted so far, and does what they asked
    /// (returned).
    pub fn sync_started(&self) -> (SyncTicket, Asked) {
        let (ticket, asked) = {
            let mut inner = self.lock();
            inner.syncs_started += 1;
            let ticket = SyncTicket {
                sync: inner.syncs_started,
                first: inner.started_up_to + 1,
                last: inner.requested,
                started: Instant::now(),
                started_at: SystemTime::now(),
                source_error: inner.last_source_error.clone(),
            };
            inner.started_up_to = inner.requested;
            inner.running.push(Running {
                sync: ticket.sync,
                first: ticket.first,
                last: ticket.last,
            });
            (ticket, std::mem::take(&mut inner.asked))
        };
        self.publish(Event::SyncStarted {
            sync: ticket.sync,
            requests_up_to: ticket.last,
        });
        (ticket, asked)
    }

    /// One step a worker made (a write, or a decision to write nothing), in sync `sync` or on
    /// its own (a recovery, a re-apply after a restart).
    pub fn step(&self, target: &str, step: &StepReport, sync: Option<u64>) {
        self.metrics.step(target, step);
        let detail = step.detail.as_deref().map(redact);
        {
            let mut inner = self.lock();
            let pair = inner
                .pairs
                .entry((step.stream.clone(), target.to_owned()))
                .or_default();
            pair.last_sync = Some(PairSync {
                sync,
                at: rfc3339(SystemTime::now()),
                action: step.action.name(),
                outcome: step.outcome.name(),
                detail: detail.clone(),
            });
        }
        if step.action == crate::reconcile::plan::Action::Unchanged {
            return;
        }
        self.publish(Event::SyncAction {
            sync,
            camera: step.stream.clone(),
            target: target.to_owned(),
            action: step.action.name().into(),
            outcome: step.outcome.name().into(),
            reason: step.reason.into(),
            detail,
        });
    }

    /// A stream became degraded (or no longer is).
    pub fn degraded(&self, target: &str, stream: &str, degraded: bool, detail: &str) {
        self.lock()
            .pairs
            .entry((stream.to_owned(), target.to_owned()))
            .or_default()
            .degraded = degraded;
        self.metrics.degraded(target, degraded);
        self.publish(Event::Degraded {
            camera: stream.to_owned(),
            target: target.to_owned(),
            degraded,
            detail: redact(detail),
        });
    }

    /// A sync of `inventory` ended with `report`; it looked at the cameras `covered` (`None`:
    /// all of them), so a camera it did not mention there is unchanged.
    pub fn sync_finished(
        &self,
        ticket: SyncTicket,
        inventory: &Inventory,
        covered: Option<&std::collections::BTreeSet<String>>,
        report: &SyncReport,
    ) {
        let elapsed = ticket.started.elapsed();
        let finished_at = rfc3339(SystemTime::now());
        self.metrics.sync_done(report, elapsed);
        let mut events = Vec::new();
        {
            let mut inner = self.lock();
            for t in &report.targets {
                let listed: std::collections::BTreeSet<&str> =
                    t.steps.iter().map(|s| s.stream.as_str()).collect();
                let error = t.error.as_deref().map(redact);
                let outcome = match (t.status, &error) {
                    (Convergence::Refused, _) => "refused",
                    (_, Some(_)) => "failed",
                    _ => "unchanged",
                };
                let cameras: Box<dyn Iterator<Item = &Camera>> = match covered {
                    None => Box::new(inventory.cameras.values().map(|c| &**c)),
                    Some(names) => Box::new(
                        names
                            .iter()
                            .filter_map(|n| inventory.cameras.get(n).map(|c| &**c)),
                    ),
                };
                for camera in cameras {
                    if !camera.wants_target(&t.target) || listed.contains(camera.name.as_str()) {
                        continue;
                    }
                    let pair = inner
                        .pairs
                        .entry((camera.name.clone(), t.target.clone()))
                        .or_default();
                    pair.last_sync = Some(PairSync {
                        sync: Some(ticket.sync),
                        at: finished_at.clone(),
                        action: "unchanged",
                        outcome,
                        detail: error.clone(),
                    });
                }
                if let Some(message) = error {
                    events.push(Event::Error {
                        scope: ErrorScope::Sync,
                        target: Some(t.target.clone()),
                        camera: None,
                        message,
                    });
                }
            }
            let record = SyncRecord {
                sync: ticket.sync,
                requests: (ticket.first <= ticket.last).then_some([ticket.first, ticket.last]),
                started_at: rfc3339(ticket.started_at),
                finished_at,
                seconds: elapsed.as_secs_f64(),
                ok: report.ok(),
                source_error: ticket.source_error,
                report: report.clone(),
            };
            inner.log_steps += record.steps();
            inner.log.push_back(Arc::new(record));
            while inner.log.len() > KEEP_SYNCS
                || (inner.log_steps > KEEP_STEPS && inner.log.len() > 1)
            {
                if let Some(old) = inner.log.pop_front() {
                    inner.log_steps -= old.steps();
                }
            }
            inner.syncs_done += 1;
            inner.running.retain(|r| r.sync != ticket.sync);
        }
        events.push(Event::SyncFinished {
            sync: ticket.sync,
            ok: report.ok(),
            seconds: elapsed.as_secs_f64(),
            targets: report
                .targets
                .iter()
                .map(|t| TargetSummary {
                    target: t.target.clone(),
                    status: t.status.name().into(),
                    written: t.counts.create + t.counts.adopt + t.counts.update + t.counts.delete,
                    failed: t.counts.failed,
                    unchanged: t.counts.unchanged,
                })
                .collect(),
        });
        for event in events {
            self.publish(event);
        }
    }

    /// One health round over `target`: its transitions, every judged pair's state now, and the
    /// probes it made.
    pub fn health_round(
        &self,
        target: &str,
        transitions: &[HealthEvent],
        states: &[(String, State)],
        probes: &[ProbeSample],
    ) {
        for p in probes {
            self.metrics.probe(target, p.ok, p.latency);
        }
        let now = Instant::now();
        let at = rfc3339(SystemTime::now());
        let mut events = Vec::new();
        {
            let mut inner = self.lock();
            for e in transitions {
                let t = &e.transition;
                self.metrics.transition(target, &t.to, t.recovered_after);
                let pair = inner
                    .pairs
                    .entry((e.camera.clone(), e.target.clone()))
                    .or_default();
                let in_previous = pair.changed.map(|c| now.duration_since(c).as_secs_f64());
                pair.changed = Some(now);
                pair.last_transition = Some(TransitionView {
                    at: at.clone(),
                    from: t.from.name(),
                    to: t.to.name(),
                    reason: t.reason,
                });
                events.push(Event::Health {
                    camera: e.camera.clone(),
                    target: e.target.clone(),
                    from: t.from.name().into(),
                    to: t.to.name().into(),
                    reason: t.reason.into(),
                    attempt: match t.to {
                        State::Recovering { attempt, .. } => Some(attempt),
                        _ => None,
                    },
                    seconds_in_previous: in_previous,
                });
                if let Some(after) = t.recovered_after {
                    pair.last_recovery = Some(RecoveryView {
                        at: at.clone(),
                        seconds: after.as_secs_f64(),
                    });
                    events.push(Event::Recovery {
                        camera: e.camera.clone(),
                        target: e.target.clone(),
                        recovery_seconds: after.as_secs_f64(),
                    });
                }
            }
            for (camera, state) in states {
                inner
                    .pairs
                    .entry((camera.clone(), target.to_owned()))
                    .or_default()
                    .health = Some(*state);
            }
        }
        let now_states: Vec<State> = states.iter().map(|(_, s)| *s).collect();
        self.metrics.health_states(target, &now_states);
        for event in events {
            self.publish(event);
        }
    }

    /// A resolved camera's stream changed state.
    pub fn stream_state(
        &self,
        camera: &str,
        resolver: &str,
        state: &str,
        generation: u64,
        detail: Option<&str>,
    ) {
        self.publish(Event::Stream {
            camera: camera.to_owned(),
            resolver: resolver.to_owned(),
            state: state.to_owned(),
            generation,
            detail: detail.map(redact),
        });
    }

    /// A forced re-registration on one target ended with `outcome` (`done`, `partial`,
    /// `failed` or `skipped`).
    pub fn reconnected(
        &self,
        camera: &str,
        target: &str,
        outcome: &'static str,
        detail: Option<&str>,
    ) {
        self.metrics.reconnect(target, outcome);
        self.publish(Event::Reconnect {
            camera: camera.to_owned(),
            target: target.to_owned(),
            outcome: outcome.to_owned(),
            detail: detail.map(redact),
        });
    }

    pub fn server_restarted(&self, target: &str) {
        self.metrics.server_restarted(target);
        self.publish(Event::ServerRestarted {
            target: target.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Received;

    fn activity() -> Activity {
        Activity::new(Arc::new(Metrics::new()))
    }

    fn report() -> SyncReport {
        SyncReport {
            applied: true,
            targets: Vec::new(),
            rejected: Vec::new(),
        }
    }

    #[test]
    fn a_request_resolves_to_the_first_sync_that_started_after_it() {
        let a = activity();
        let inventory = Inventory::default();
        let first = a.request_sync(&[]);
        assert!(matches!(a.lookup(first), Lookup::Pending));
        let (ticket, _) = a.sync_started();
        assert!(matches!(a.lookup(first), Lookup::Running { sync: 1 }));
        // Accepted while sync 1 runs: sync 1 started before it, so it waits for sync 2.
        let second = a.request_sync(&[]);
        let third = a.request_sync(&[]);
        a.sync_finished(ticket, &inventory, None, &report());
        assert!(matches!(a.lookup(first), Lookup::Done(ref r) if r.sync == 1));
        assert!(matches!(a.lookup(second), Lookup::Pending));
        let (ticket, _) = a.sync_started();
        a.sync_finished(ticket, &inventory, None, &report());
        for id in [second, third] {
            assert!(
                matches!(a.lookup(id), Lookup::Done(ref r) if r.sync == 2 && r.requests == Some([2, 3]))
            );
        }
        assert!(matches!(a.lookup(4), Lookup::Unknown));
        assert!(matches!(a.lookup(0), Lookup::Unknown));
    }

    #[test]
    fn old_results_expire_and_memory_stays_bounded() {
        let a = activity();
        let first = a.request_sync(&[]);
        for _ in 0..KEEP_SYNCS + 1 {
            let (ticket, _) = a.sync_started();
            a.sync_finished(ticket, &Inventory::default(), None, &report());
            a.request_sync(&[]);
        }
        assert!(matches!(a.lookup(first), Lookup::Expired));
        assert_eq!(a.lock().log.len(), KEEP_SYNCS);
    }

    fn created(stream: &str) -> StepReport {
        use crate::reconcile::plan::{Action, Step};
        let step = Step {
            name: stream.into(),
            action: Action::Create,
            reason: "new camera",
            fingerprint: None,
        };
        StepReport::new(&step, crate::reconcile::report::Outcome::Done)
    }

    #[test]
    fn large_results_are_kept_fewer_and_the_newest_always() {
        use crate::reconcile::report::TargetReport;
        let a = activity();
        let large = |n: usize| SyncReport {
            applied: true,
            targets: vec![TargetReport::applied(
                "go2rtc".into(),
                (0..n).map(|i| created(&format!("c{i}"))).collect(),
            )],
            rejected: Vec::new(),
        };
        for _ in 0..4 {
            let (ticket, _) = a.sync_started();
            a.sync_finished(ticket, &Inventory::default(), None, &large(KEEP_STEPS / 3));
        }
        assert_eq!(
            a.lock().log.len(),
            3,
            "four would hold more than KEEP_STEPS"
        );
        let (ticket, _) = a.sync_started();
        a.sync_finished(ticket, &Inventory::default(), None, &large(KEEP_STEPS + 1));
        assert_eq!(
            a.lock().log.len(),
            1,
            "the newest is kept whatever its size"
        );
        assert_eq!(a.lock().log_steps, KEEP_STEPS + 1);
    }

    #[test]
    fn a_sync_of_some_cameras_says_nothing_of_the_others() {
        let a = activity();
        let inventory = Inventory {
            cameras: ["front", "back"]
                .map(|n| {
                    (
                        n.to_string(),
                        Arc::new(Camera::example(n, "rtsp://192.0.2.1/x")),
                    )
                })
                .into(),
            rejected: Vec::new(),
        };
        let (ticket, _) = a.sync_started();
        a.sync_finished(ticket, &inventory, None, &nothing_written());
        assert_eq!(
            a.pair("back", "go2rtc").unwrap().last_sync.unwrap().sync,
            Some(1)
        );
        let (ticket, _) = a.sync_started();
        let front: std::collections::BTreeSet<String> = ["front".to_string()].into();
        a.sync_finished(ticket, &inventory, Some(&front), &nothing_written());
        let pair = |n: &str| a.pair(n, "go2rtc").unwrap().last_sync.unwrap();
        assert_eq!(pair("front").sync, Some(2));
        assert_eq!(pair("front").action, "unchanged");
        assert_eq!(pair("back").sync, Some(1), "sync 2 did not look at it");
    }

    /// go2rtc converged with nothing to write.
    fn nothing_written() -> SyncReport {
        use crate::reconcile::report::TargetReport;
        SyncReport {
            applied: true,
            targets: vec![TargetReport::applied("go2rtc".into(), Vec::new())],
            rejected: Vec::new(),
        }
    }

    #[test]
    fn a_sync_does_what_its_requests_asked() {
        let a = activity();
        a.request_sync(&["front".to_string()]);
        a.request_sync(&["back".to_string()]);
        let (_, asked) = a.sync_started();
        assert!(!asked.everything);
        assert_eq!(asked.cameras, ["back", "front"].map(String::from).into());
        a.request_sync(&[]);
        assert!(a.sync_started().1.everything);
        assert_eq!(a.sync_started().1, Asked::default(), "asked once");
    }

    #[tokio::test]
    async fn requests_wake_the_daemon_once_per_burst() {
        let a = activity();
        for _ in 0..100 {
            a.request_sync(&[]);
        }
        a.sync_requested().await; // the stored wake-up
        let again = tokio::time::timeout(std::time::Duration::from_millis(20), a.sync_requested());
        assert!(again.await.is_err(), "one wake-up for the whole burst");
    }

    #[tokio::test]
    async fn a_sync_publishes_its_actions_between_start_and_finish() {
        use crate::reconcile::plan::{Action, Step};
        use crate::reconcile::report::{Outcome, StepReport, TargetReport};
        let a = activity();
        let mut events = a.subscribe();
        let step = Step {
            name: "front".into(),
            action: Action::Create,
            reason: "new camera",
            fingerprint: None,
        };
        let report = SyncReport {
            applied: true,
            targets: vec![TargetReport::applied(
                "go2rtc".into(),
                vec![StepReport::new(
                    &step,
                    Outcome::Failed("rtsp://u:pw@h/x refused".into()),
                )],
            )],
            rejected: Vec::new(),
        };
        let (ticket, _) = a.sync_started();
        a.step("go2rtc", &report.targets[0].steps[0], Some(ticket.sync()));
        a.sync_finished(ticket, &Inventory::default(), None, &report);
        let mut kinds = Vec::new();
        for _ in 0..3 {
            let Received::Event(e) = events.next().await else {
                panic!()
            };
            kinds.push(e.event);
        }
        assert!(matches!(kinds[0], Event::SyncStarted { sync: 1, .. }));
        match &kinds[1] {
            Event::SyncAction {
                camera,
                outcome,
                detail,
                ..
            } => {
                assert_eq!((camera.as_str(), outcome.as_str()), ("front", "failed"));
                assert_eq!(detail.as_deref(), Some("rtsp://u:***@h/x refused"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(kinds[2], Event::SyncFinished { ok: false, .. }));
        let pair = a.pair("front", "go2rtc").unwrap();
        assert_eq!(pair.last_sync.unwrap().outcome, "failed");
    }
}

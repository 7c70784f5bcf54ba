//! A target's worker: the only code that writes to its server.
//!
//! It owns the target's client, the target's rows of the ledger (mirrored in memory) and a
//! [`TargetQueue`]. Everything else only asks it for work through a [`WorkerHandle`]: converge a
//! stream, converge everything, recover a stream, restart the server. Invariants:
//! - every write is bracketed by the ledger: intend before, record (or forget) after, so a
//!   crash at any point converges at the next run with no orphan and no duplicate;
//! - a stream is never worked on by two tasks at once (the queue's keys), and at most
//!   `max_in_flight` items run at once (go2rtc: always 1; its client also serializes calls);
//! - a recovery waits for at most the items in flight (and one turn of the loop, which queues
//!   a large plan's writes `QUEUE_PER_TURN` at a time);
//! - at most `max_writes_per_minute` server writes in any minute;
//! - a failed item is requeued on its own with backoff and jitter; after `degraded_after`
//!   failures in a row its stream is degraded (still retried at the longest backoff), until it
//!   succeeds or the camera changes.
//!
//! The worker is never told why it runs: each item reads the latest inventory when it starts
//! (level-triggered). What it does is reported to an [`Observer`] and to the [`Ticket`]s of the
//! requests that caused it.
//!
//! Here: the settings, the loop (queue, rate limit, items in flight, backoff, degraded) and
//! the restart check. `handle`: how to ask for work ([`WorkerHandle`]); `items`: what one
//! item does on the server; `mirror`: the in-memory copy of the target's ledger rows;
//! `observe`: what the worker reports ([`Observer`], [`QueueStats`]).

mod handle;
mod items;
mod mirror;
mod observe;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::fingerprints::Fingerprints;
use super::queue::{Key, Priority, TargetQueue};
use super::ticket::{Ticket, Tickets};
use crate::ledger::{Fingerprint, Ledger};
use crate::lock::lock;
use crate::queue::{Backoff, Pushed, RateLimit, sleep_until};
use crate::source::Inventory;
use crate::target::Target;
pub use handle::WorkerHandle;
use handle::{Request, Work};
use items::{Ended, Shared};
use mirror::OwnedMirror;
pub use observe::{Observer, QueueStats, Quiet};

/// How a worker paces and retries its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Items at once (go2rtc: always 1).
    pub max_in_flight: usize,
    /// Server writes in any minute; `None`: no limit.
    pub max_writes_per_minute: Option<u32>,
    /// Requeue schedule of a failed item.
    pub backoff: Backoff,
    /// Tries a request waits for before it is answered with the failure; the item is still
    /// retried on its own after that.
    pub attempts: u32,
    /// Failures in a row after which a stream is degraded.
    pub degraded_after: u32,
    pub allow_mass_delete: bool,
    /// How often to ask the server whether it lost what camsync wrote (a restart, a file
    /// reload); `None` for never (one-shot commands).
    pub restart_check: Option<Duration>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        let retry = crate::config::RetryConfig::default();
        WorkerSettings {
            max_in_flight: 1,
            max_writes_per_minute: None,
            backoff: Backoff {
                min: retry.min,
                max: retry.max,
            },
            attempts: 3,
            degraded_after: retry.degraded_after,
            allow_mass_delete: false,
            restart_check: None,
        }
    }
}

impl WorkerSettings {
    /// How the worker of `target` paces and retries its work, as `config` says.
    pub fn from_config(
        config: &crate::config::Config,
        target: &crate::config::TargetConfig,
    ) -> Self {
        WorkerSettings {
            max_in_flight: target.max_in_flight,
            max_writes_per_minute: target.max_writes_per_minute,
            backoff: Backoff {
                min: config.retry.min,
                max: config.retry.max,
            },
            degraded_after: config.retry.degraded_after,
            allow_mass_delete: config.allow_mass_delete,
            ..WorkerSettings::default()
        }
    }
}

/// What a worker is built from.
pub struct WorkerParts {
    pub target: Arc<dyn Target>,
    pub ledger: Arc<Ledger>,
    pub inventory: watch::Receiver<Arc<Inventory>>,
    pub settings: WorkerSettings,
    pub observer: Arc<dyn Observer>,
    /// In [0, 1); injected so tests are repeatable.
    pub jitter: fn() -> f64,
}

/// Starts the worker of `parts.target`; it runs until `shutdown`, finishing the items in
/// flight first. The ledger's rows for the target are read once, here.
pub fn spawn(
    parts: WorkerParts,
    shutdown: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> Result<WorkerHandle, crate::ledger::LedgerError> {
    let name: Arc<str> = parts.target.name().into();
    let owned = Arc::new(OwnedMirror::new(parts.ledger.owned(&name)?));
    let (stats_tx, stats_rx) = watch::channel(QueueStats::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let mut settings = parts.settings;
    settings.max_in_flight = settings.max_in_flight.max(1);
    let batch = parts.target.as_batch().is_some();
    let fingerprints = Arc::new(Fingerprints::new(
        parts.target.clone(),
        parts.ledger.clone(),
    ));
    let shared = Arc::new(Shared {
        target: parts.target,
        ledger: parts.ledger,
        owned: owned.clone(),
        observed: Mutex::new(None),
        fingerprints: fingerprints.clone(),
        limiter: Mutex::new(RateLimit::new(settings.max_writes_per_minute)),
        inventory: parts.inventory,
        allow_mass_delete: settings.allow_mass_delete,
        observer: parts.observer,
    });
    let worker = Worker {
        shared,
        settings,
        jitter: parts.jitter,
        queue: TargetQueue::default(),
        requests: rx,
        running: JoinSet::new(),
        failures: HashMap::new(),
        stats: QueueStats::default(),
        stats_tx,
        planned: VecDeque::new(),
    };
    let span = tracing::info_span!("worker", target_name = %name);
    let handle = WorkerHandle {
        name,
        batch,
        requests: tx,
        owned,
        fingerprints,
        stats: stats_rx,
    };
    if let Some(every) = settings.restart_check {
        let watch = watch_restarts(
            worker.shared.clone(),
            handle.clone(),
            every,
            shutdown.clone(),
        );
        tasks.spawn(tracing::Instrument::instrument(watch, span.clone()));
    }
    tasks.spawn(tracing::Instrument::instrument(worker.run(shutdown), span));
    Ok(handle)
}

/// Asks the server every `every` whether it lost what camsync wrote: a new run identifier
/// (MediaMTX's start time), or a stream camsync owns there gone. Then everything is converged
/// again at once, long before the periodic resync. A server that does not answer keeps its
/// last identifier: being down is not a restart (yet).
async fn watch_restarts(
    shared: Arc<Shared>,
    worker: WorkerHandle,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut epoch: Option<String> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let canary = worker.confirmed().into_iter().next();
        let Ok(check) = shared.target.run_check(canary.as_deref()).await else {
            continue;
        };
        let restarted = match check.epoch {
            Some(now) => epoch
                .replace(now.clone())
                .is_some_and(|before| before != now),
            None => false,
        };
        if restarted || check.canary_missing {
            tracing::warn!("server restarted or reloaded; re-applying what camsync owns there");
            shared.observer.server_lost(shared.name());
            worker.converge_all(Priority::Change, &[]);
        }
    }
}

struct Finished {
    key: Key,
    priority: Priority,
    work: Work,
    ended: Ended,
}

struct Worker {
    shared: Arc<Shared>,
    settings: WorkerSettings,
    jitter: fn() -> f64,
    queue: TargetQueue<Work>,
    requests: mpsc::UnboundedReceiver<Request>,
    running: JoinSet<Finished>,
    failures: HashMap<String, Failures>,
    stats: QueueStats,
    stats_tx: watch::Sender<QueueStats>,
    planned: VecDeque<Planned>,
}

/// How many planned stream items the loop queues per turn: a request that arrives while a
/// plan of thousands is queued waits for one turn, not for all of it.
const QUEUE_PER_TURN: usize = 256;

/// The stream items a whole-target item planned, not all queued yet.
struct Planned {
    streams: std::vec::IntoIter<String>,
    priority: Priority,
    /// The whole-target item's: each stream item carries them, and they are released once
    /// the last one is queued.
    tickets: Tickets,
}

struct Failures {
    count: u32,
    fingerprint: Option<Fingerprint>,
}

impl Worker {
    fn name(&self) -> &str {
        self.shared.target.name()
    }

    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let now = Instant::now();
            self.queue_planned(now);
            self.start_due(now);
            let wake = match self.planned.is_empty() {
                true => self.next_wake(now),
                false => Some(now),
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(finished) = self.running.join_next() => match finished {
                    Ok(finished) => self.finish(finished),
                    Err(e) => tracing::error!(error = %e, "a work item failed to run"),
                },
                request = self.requests.recv() => match request {
                    Some(request) => self.enqueue(request),
                    None => break,
                },
                _ = sleep_until(wake) => {}
            }
        }
        // The items in flight finish their write; nothing new starts.
        while let Some(finished) = self.running.join_next().await {
            if let Ok(finished) = finished {
                finished.work.tickets.release();
            }
        }
        for work in self.queue.drain() {
            work.tickets.release();
        }
        for planned in self.planned.drain(..) {
            planned.tickets.release();
        }
        while let Ok(request) = self.requests.try_recv() {
            request.work.tickets.release();
        }
    }

    fn enqueue(&mut self, request: Request) {
        let now = Instant::now();
        let due = request.due.unwrap_or(now);
        if self
            .queue
            .push(request.key, request.priority, due, now, request.work)
            == Pushed::Merged
        {
            self.stats.merged += 1;
        }
        self.publish(None);
    }

    /// Queues up to [`QUEUE_PER_TURN`] planned stream items.
    fn queue_planned(&mut self, now: Instant) {
        let mut budget = QUEUE_PER_TURN;
        while budget > 0
            && let Some(planned) = self.planned.front_mut()
        {
            let carried: Vec<Ticket> = planned.tickets.iter().cloned().collect();
            for stream in planned.streams.by_ref().take(budget) {
                budget -= 1;
                let child = Work {
                    tickets: Tickets::carrying(&carried),
                    ..Work::default()
                };
                let key = Key::Stream(stream);
                if self.queue.push(key, planned.priority, now, now, child) == Pushed::Merged {
                    self.stats.merged += 1;
                }
            }
            if planned.streams.len() == 0
                && let Some(queued) = self.planned.pop_front()
            {
                queued.tickets.release();
            }
        }
        if budget < QUEUE_PER_TURN {
            self.publish(None);
        }
    }

    /// When to look at the queue again (just after `start_due(now)`): the next item falls due,
    /// or the rate limit frees up. An item already due that did not start waits for one in
    /// flight to finish, which wakes the worker anyway: `None`, not a busy loop.
    fn next_wake(&self, now: Instant) -> Option<Instant> {
        let due = self.queue.next_due()?;
        match lock(&self.shared.limiter).ready_at(now, self.queue.in_flight()) {
            Some(at) => Some(at.max(due)),
            None => (due > now).then_some(due),
        }
    }

    fn start_due(&mut self, now: Instant) {
        loop {
            if lock(&self.shared.limiter)
                .ready_at(now, self.queue.in_flight())
                .is_some()
            {
                return;
            }
            let Some(popped) = self.queue.pop(now, self.settings.max_in_flight) else {
                return;
            };
            self.publish(Some((popped.priority, popped.waited)));
            let shared = self.shared.clone();
            self.running.spawn(async move {
                let ended = shared.run(&popped.key, &popped.work).await;
                Finished {
                    key: popped.key,
                    priority: popped.priority,
                    work: popped.work,
                    ended,
                }
            });
        }
    }

    fn finish(&mut self, finished: Finished) {
        let Finished {
            key,
            priority,
            mut work,
            ended,
        } = finished;
        self.queue.done(&key);
        match ended {
            Ended::Done => {
                self.stats.done += 1;
                self.succeeded(&key);
                work.tickets.release();
            }
            Ended::Expand(streams) => {
                self.stats.done += 1;
                self.planned.push_back(Planned {
                    streams: streams.into_iter(),
                    priority,
                    tickets: std::mem::take(&mut work.tickets),
                });
            }
            Ended::Restarted => {
                self.stats.done += 1;
                let now = Instant::now();
                let again = Work {
                    tickets: std::mem::take(&mut work.tickets),
                    ..Work::default()
                };
                self.queue.push(Key::All, Priority::Change, now, now, again);
            }
            Ended::Failed {
                retryable,
                fingerprint,
                detail,
                reports,
                target_error,
            } => {
                self.stats.failed += 1;
                work.failures += 1;
                let failures = self.failed(&key, fingerprint, &detail);
                if !retryable || work.failures >= self.settings.attempts {
                    // The requests get their answer; a retryable item goes on alone.
                    let tickets = std::mem::take(&mut work.tickets);
                    for ticket in tickets.iter() {
                        for report in &reports {
                            ticket.step(self.shared.name(), report.clone());
                        }
                        if target_error {
                            ticket.target_failed(self.shared.name(), detail.clone());
                        }
                    }
                    tickets.release();
                }
                if retryable {
                    let delay = self
                        .settings
                        .backoff
                        .delay(failures.max(work.failures), (self.jitter)());
                    let now = Instant::now();
                    self.queue.push(key, priority, now + delay, now, work);
                }
            }
        }
        self.publish(None);
    }

    /// Counts a failure of `key` in a row; returns the count.
    fn failed(&mut self, key: &Key, fingerprint: Option<Fingerprint>, detail: &str) -> u32 {
        let Key::Stream(stream) = key else {
            return 0;
        };
        let entry = self.failures.entry(stream.clone()).or_insert(Failures {
            count: 0,
            fingerprint: fingerprint.clone(),
        });
        if entry.fingerprint != fingerprint {
            // The camera changed: its failures start over.
            entry.count = 0;
            entry.fingerprint = fingerprint;
            if self.stats.degraded.remove(stream) {
                self.shared.observer.degraded(
                    self.shared.target.name(),
                    stream,
                    false,
                    "the camera changed",
                );
            }
        }
        entry.count += 1;
        let count = entry.count;
        if count >= self.settings.degraded_after && self.stats.degraded.insert(stream.clone()) {
            tracing::warn!(stream = %stream, failures = count, error = %detail, "stream degraded: failing again and again; still retried");
            let name = self.shared.target.name().to_owned();
            self.shared.observer.degraded(&name, stream, true, detail);
        }
        count
    }

    fn succeeded(&mut self, key: &Key) {
        let Key::Stream(stream) = key else {
            return;
        };
        self.failures.remove(stream);
        if self.stats.degraded.remove(stream) {
            tracing::info!(stream = %stream, "stream no longer degraded");
            let name = self.name().to_owned();
            self.shared
                .observer
                .degraded(&name, stream, false, "written again");
        }
    }

    fn publish(&mut self, waited: Option<(Priority, Duration)>) {
        self.stats.waiting = self.queue.depth();
        self.stats.in_flight = self.queue.in_flight();
        self.shared
            .observer
            .queue(self.shared.target.name(), &self.stats, waited);
        self.stats_tx.send_replace(self.stats.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::camera::Camera;
    use crate::target::{Applied, BoxFuture, RunCheck, StreamObservation, TargetError};

    /// A server in memory: each write takes `cost`, and fails while `failing` is set.
    #[derive(Default)]
    struct FakeServer {
        streams: Mutex<BTreeSet<String>>,
        writes: Mutex<Vec<(Instant, String)>>,
        cost: Duration,
        failing: AtomicBool,
        attempts: AtomicUsize,
        renders: AtomicUsize,
    }

    impl FakeServer {
        fn write(&self, name: &str) -> Result<Applied, TargetError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(TargetError::Http {
                    target: "fake".into(),
                    op: "put".into(),
                    status: 503,
                    detail: String::new(),
                });
            }
            lock(&self.writes).push((Instant::now(), name.to_owned()));
            Ok(Applied::Done)
        }

        fn written(&self) -> Vec<String> {
            lock(&self.writes).iter().map(|(_, n)| n.clone()).collect()
        }
    }

    impl Target for FakeServer {
        fn name(&self) -> &str {
            "fake"
        }
        fn render(&self, camera: &Camera) -> String {
            self.renders.fetch_add(1, Ordering::SeqCst);
            camera.sources[0].expose()
        }
        fn list(&self) -> BoxFuture<'_, Result<BTreeSet<String>, TargetError>> {
            Box::pin(async { Ok(lock(&self.streams).clone()) })
        }
        fn observe(
            &self,
        ) -> BoxFuture<'_, Result<BTreeMap<String, StreamObservation>, TargetError>> {
            Box::pin(async { Ok(BTreeMap::new()) })
        }
        fn upsert<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
            Box::pin(async move {
                tokio::time::sleep(self.cost).await;
                let applied = self.write(&camera.name)?;
                lock(&self.streams).insert(camera.name.clone());
                Ok(applied)
            })
        }
        fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Applied, TargetError>> {
            Box::pin(async move {
                tokio::time::sleep(self.cost).await;
                let applied = self.write(name)?;
                lock(&self.streams).remove(name);
                Ok(applied)
            })
        }
        fn run_check<'a>(
            &'a self,
            _: Option<&'a str>,
        ) -> BoxFuture<'a, Result<RunCheck, TargetError>> {
            Box::pin(async { Ok(RunCheck::default()) })
        }
    }

    fn inventory(names: impl IntoIterator<Item = String>) -> Arc<Inventory> {
        Arc::new(Inventory {
            cameras: names
                .into_iter()
                .map(|n| {
                    (
                        n.clone(),
                        Arc::new(Camera::example(&n, "rtsp://192.0.2.1/x")),
                    )
                })
                .collect(),
            rejected: Vec::new(),
        })
    }

    struct Harness {
        server: Arc<FakeServer>,
        worker: WorkerHandle,
        inventory: watch::Sender<Arc<Inventory>>,
        _stop: tokio_util::sync::DropGuard,
    }

    fn harness(server: FakeServer, settings: WorkerSettings) -> Harness {
        let server = Arc::new(server);
        let (inventory, rx) = watch::channel(Arc::new(Inventory::default()));
        let stop = CancellationToken::new();
        let parts = WorkerParts {
            target: server.clone(),
            ledger: Arc::new(Ledger::in_memory().unwrap()),
            inventory: rx,
            settings,
            observer: Arc::new(Quiet),
            jitter: || 0.0,
        };
        let worker = spawn(parts, stop.clone(), &tokio_util::task::TaskTracker::new()).unwrap();
        Harness {
            server,
            worker,
            inventory,
            _stop: stop.drop_guard(),
        }
    }

    impl Harness {
        /// What [`super::super::Workers::publish`] does.
        fn publish(&self, inventory: Arc<Inventory>) {
            self.worker.prepare(&inventory);
            self.inventory.send_replace(inventory);
        }

        fn renders(&self) -> usize {
            self.server.renders.load(Ordering::SeqCst)
        }
    }

    async fn resolved(ticket: &Ticket) {
        ticket.release();
        ticket.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_asked_for_a_thousand_times_at_once_is_written_once() {
        let h = harness(
            FakeServer {
                cost: Duration::from_millis(50),
                ..FakeServer::default()
            },
            WorkerSettings::default(),
        );
        h.inventory
            .send_replace(inventory(["a".to_string(), "b".to_string()]));
        let ticket = Ticket::new();
        for _ in 0..1000 {
            h.worker
                .converge("a", Priority::Change, std::slice::from_ref(&ticket));
        }
        h.worker
            .converge("b", Priority::Change, std::slice::from_ref(&ticket));
        resolved(&ticket).await;
        assert_eq!(h.server.written(), ["a", "b"]);
        assert!(h.worker.stats().merged >= 998, "{:?}", h.worker.stats());
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_holds_for_an_hour_and_urgent_items_go_first() {
        let h = harness(
            FakeServer::default(),
            WorkerSettings {
                max_writes_per_minute: Some(10),
                ..WorkerSettings::default()
            },
        );
        let names: Vec<String> = (0..600).map(|i| format!("c{i:03}")).collect();
        h.inventory.send_replace(inventory(names.clone()));
        let bulk = Ticket::new();
        for name in &names[..590] {
            h.worker
                .converge(name, Priority::Resync, std::slice::from_ref(&bulk));
        }
        // Ten minutes in, urgent work arrives behind 490 waiting items.
        tokio::time::sleep(Duration::from_secs(600)).await;
        let urgent = Ticket::new();
        for name in &names[590..] {
            h.worker
                .converge(name, Priority::Change, std::slice::from_ref(&urgent));
        }
        let asked = Instant::now();
        resolved(&urgent).await;
        assert!(
            asked.elapsed() <= Duration::from_secs(61),
            "ten changes wait at most one window: {:?}",
            asked.elapsed()
        );
        resolved(&bulk).await;
        let writes = lock(&h.server.writes).clone();
        assert_eq!(writes.len(), 600, "every low item finished too");
        for (i, (at, _)) in writes.iter().enumerate() {
            let in_a_minute = writes[i..]
                .iter()
                .take_while(|(t, _)| *t < *at + Duration::from_secs(60))
                .count();
            assert!(in_a_minute <= 10, "{in_a_minute} writes within a minute");
        }
        let span = writes[599].0 - writes[0].0;
        assert!(span >= Duration::from_secs(59 * 60), "{span:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_write_is_retried_on_its_schedule_degrades_and_recovers() {
        let h = harness(FakeServer::default(), WorkerSettings::default());
        h.inventory.send_replace(inventory(["a".to_string()]));
        h.server.failing.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let ticket = Ticket::new();
        h.worker
            .converge("a", Priority::Change, std::slice::from_ref(&ticket));
        resolved(&ticket).await;
        // The request is answered after its three tries (0, 200 ms, 400 ms later).
        assert_eq!(h.server.attempts.load(Ordering::SeqCst), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(600));
        let report = ticket.report(&["fake".to_string()], Vec::new());
        assert_eq!(report.targets[0].counts.failed, 1);

        // It goes on alone: 800 ms, then 1.6 s later it has failed five times: degraded.
        tokio::time::sleep(Duration::from_millis(2_400) + Duration::from_millis(1)).await;
        assert_eq!(h.server.attempts.load(Ordering::SeqCst), 5);
        assert_eq!(h.worker.stats().degraded, ["a".to_string()].into());

        // Still retried at the longest backoff; the server answers again.
        h.server.failing.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(h.server.written(), ["a"]);
        assert!(h.worker.stats().degraded.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_camera_change_resets_a_degraded_stream_and_is_tried_at_once() {
        let h = harness(FakeServer::default(), WorkerSettings::default());
        h.inventory.send_replace(inventory(["a".to_string()]));
        h.server.failing.store(true, Ordering::SeqCst);
        h.worker.converge("a", Priority::Change, &[]);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(h.worker.stats().degraded, ["a".to_string()].into());
        let tries = h.server.attempts.load(Ordering::SeqCst);

        // The camera's URL changes: tried now, not at the end of the backoff.
        let mut changed = (*inventory(["a".to_string()])).clone();
        changed.cameras.insert(
            "a".into(),
            Arc::new(Camera::example("a", "rtsp://192.0.2.2/y")),
        );
        h.inventory.send_replace(Arc::new(changed));
        let ticket = Ticket::new();
        h.worker
            .converge("a", Priority::Change, std::slice::from_ref(&ticket));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(h.server.attempts.load(Ordering::SeqCst), tries + 1);
        assert!(
            h.worker.stats().degraded.is_empty(),
            "the count starts over"
        );
        resolved(&ticket).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_recovery_waits_for_the_write_in_flight_only() {
        let h = harness(
            FakeServer {
                cost: Duration::from_millis(100),
                ..FakeServer::default()
            },
            WorkerSettings::default(),
        );
        let names: Vec<String> = (0..1000).map(|i| format!("c{i:04}")).collect();
        h.inventory.send_replace(inventory(names.clone()));
        let bulk = h_converge_all(&h);
        tokio::time::sleep(Duration::from_millis(1_050)).await;
        let asked = Instant::now();
        let recovery = Ticket::new();
        h.worker
            .recover("c0999", false, "lost", std::slice::from_ref(&recovery));
        resolved(&recovery).await;
        // At most the write in flight, then the recovery's own write.
        assert!(
            asked.elapsed() <= Duration::from_millis(200),
            "{:?}",
            asked.elapsed()
        );
        assert!(!bulk.is_done());
    }

    /// Converges the whole target, as a start-up or resync does.
    fn h_converge_all(h: &Harness) -> Ticket {
        let ticket = Ticket::new();
        h.worker
            .converge_all(Priority::Resync, std::slice::from_ref(&ticket));
        ticket.release();
        ticket
    }

    #[tokio::test(start_paused = true)]
    async fn an_inventory_is_fingerprinted_when_published_and_only_its_changes_after() {
        let h = harness(FakeServer::default(), WorkerSettings::default());
        let names: Vec<String> = (0..100).map(|i| format!("c{i:03}")).collect();
        let first = inventory(names.clone());
        h.publish(first.clone());
        assert_eq!(h.renders(), 100);
        h_converge_all(&h).wait().await;
        assert_eq!(h.server.written().len(), 100);
        assert_eq!(
            h.renders(),
            100,
            "the whole-target item only looked them up"
        );

        // A re-read shares the records of unchanged cameras.
        let mut second = (*first).clone();
        second.cameras.insert(
            "c007".into(),
            Arc::new(Camera::example("c007", "rtsp://192.0.2.7/new")),
        );
        second.cameras.remove("c000");
        h.publish(Arc::new(second));
        assert_eq!(h.renders(), 101);
        h_converge_all(&h).wait().await;
        assert_eq!(h.renders(), 101);
        let after: BTreeSet<String> = h.server.written().split_off(100).into_iter().collect();
        assert_eq!(
            after,
            BTreeSet::from(["c000".into(), "c007".into()]),
            "c000 deleted, c007 written again"
        );

        // A camera that left is forgotten: back, it is fingerprinted again.
        h.publish(first);
        assert_eq!(h.renders(), 103, "c000 (back) and c007 (as it was)");
    }

    #[tokio::test(start_paused = true)]
    async fn a_plan_queued_over_several_turns_is_answered_after_its_last_write() {
        let h = harness(
            FakeServer {
                cost: Duration::from_millis(10),
                ..FakeServer::default()
            },
            WorkerSettings::default(),
        );
        let n = QUEUE_PER_TURN * 2 + 7;
        let names: Vec<String> = (0..n).map(|i| format!("c{i:04}")).collect();
        h.publish(inventory(names));
        let sync = h_converge_all(&h);
        sync.wait().await;
        assert_eq!(h.server.written().len(), n);
        assert_eq!(h.worker.stats().waiting, [0, 0, 0]);
    }
}

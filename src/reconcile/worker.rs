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

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::fingerprints::Fingerprints;
use super::plan::{Action, DeletePolicy, Step, held, mass_delete, plan_target, step_for};
use super::queue::{Key, Priority, TargetQueue};
use super::report::{Outcome, StepReport};
use super::ticket::{Ticket, Tickets};
use crate::camera::Camera;
use crate::ledger::{Fingerprint, Ledger, Owned};
use crate::lock::lock;
use crate::queue::{Backoff, Merge, Pushed, RateLimit};
use crate::source::Inventory;
use crate::target::{Applied, BatchTarget, Change, Target, TargetError};

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

/// Where a worker reports what it does (the daemon's activity, or nothing for a one-shot sync).
pub trait Observer: Send + Sync {
    /// A step is over (a write, or a decision to write nothing).
    /// `sync`: the daemon's sync the step is part of (none for a recovery).
    fn step(&self, _target: &str, _step: &StepReport, _sync: Option<u64>) {}
    /// A stream became degraded (`true`) or recovered from it.
    fn degraded(&self, _target: &str, _stream: &str, _degraded: bool, _detail: &str) {}
    /// The server lost what camsync wrote (restart or reload); everything is re-applied.
    fn server_lost(&self, _target: &str) {}
    /// The opt-in escalation restarted the server.
    fn server_restarted(&self, _target: &str) {}
    /// The queue changed; `waited` is set when an item left it to run.
    fn queue(&self, _target: &str, _stats: &QueueStats, _waited: Option<(Priority, Duration)>) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// A worker's queue at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Waiting items by priority: recover, change, resync (an object with those keys in JSON).
    #[serde(serialize_with = "by_priority")]
    pub waiting: [usize; 3],
    pub in_flight: usize,
    pub done: u64,
    pub failed: u64,
    /// Items that merged into one already waiting.
    pub merged: u64,
    /// Streams failing `degraded_after` times or more in a row.
    pub degraded: BTreeSet<String>,
}

/// What an item does; merging two takes the union.
#[derive(Default)]
struct Work {
    /// Write the stream even if the ledger says it is up to date (the server lost it).
    force: bool,
    /// Delete and add the stream (it is stuck, or a reconnect was asked for).
    restart: bool,
    /// Why a recovery was asked for, for the report.
    reason: Option<&'static str>,
    /// Tries so far.
    failures: u32,
    tickets: Tickets,
}

impl Merge for Work {
    fn merge(&mut self, other: Work) {
        self.force |= other.force;
        self.restart |= other.restart;
        self.reason = self.reason.or(other.reason);
        self.failures = self.failures.max(other.failures);
        self.tickets.absorb(other.tickets);
    }
}

struct Request {
    key: Key,
    priority: Priority,
    due: Option<Instant>,
    work: Work,
}

fn by_priority<S: serde::Serializer>(waiting: &[usize; 3], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(3))?;
    for (priority, n) in Priority::ALL.into_iter().zip(waiting) {
        map.serialize_entry(priority.name(), n)?;
    }
    map.end()
}

/// How to ask a worker for work, and see what it owns; cheap to clone.
#[derive(Clone)]
pub struct WorkerHandle {
    name: Arc<str>,
    batch: bool,
    requests: mpsc::UnboundedSender<Request>,
    owned: Arc<OwnedMirror>,
    fingerprints: Arc<Fingerprints>,
    stats: watch::Receiver<QueueStats>,
}

impl WorkerHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    fn send(&self, key: Key, priority: Priority, work: Work) {
        let request = Request {
            key,
            priority,
            due: None,
            work,
        };
        if let Err(refused) = self.requests.send(request) {
            // The worker has stopped (shutdown): the request is over.
            refused.0.work.tickets.release();
        }
    }

    /// Converges one stream (on a file target: the whole file, which costs the same).
    pub fn converge(&self, stream: &str, priority: Priority, tickets: &[Ticket]) {
        let key = if self.batch {
            Key::All
        } else {
            Key::Stream(stream.to_owned())
        };
        self.send(
            key,
            priority,
            Work {
                tickets: Tickets::carrying(tickets),
                ..Work::default()
            },
        );
    }

    /// Lists the server once, plans, and converges every stream that needs it.
    pub fn converge_all(&self, priority: Priority, tickets: &[Ticket]) {
        self.send(
            Key::All,
            priority,
            Work {
                tickets: Tickets::carrying(tickets),
                ..Work::default()
            },
        );
    }

    /// Re-adds a stream camsync owns (`restart`: deletes it first), ahead of other work.
    pub fn recover(&self, stream: &str, restart: bool, reason: &'static str, tickets: &[Ticket]) {
        let work = Work {
            force: true,
            restart,
            reason: Some(reason),
            tickets: Tickets::carrying(tickets),
            ..Work::default()
        };
        self.send(Key::Stream(stream.to_owned()), Priority::Recover, work);
    }

    /// Restarts the whole server (the opt-in escalation), then re-applies everything.
    pub fn restart_server(&self, tickets: &[Ticket]) {
        self.send(
            Key::Server,
            Priority::Recover,
            Work {
                tickets: Tickets::carrying(tickets),
                ..Work::default()
            },
        );
    }

    /// The streams camsync owns there: `Some(fingerprint)` once the last write is confirmed.
    pub fn owned(&self) -> Arc<Owned> {
        self.owned.snapshot()
    }

    /// The owned streams whose last write was confirmed: what the health monitor judges.
    pub fn confirmed(&self) -> BTreeSet<String> {
        self.owned()
            .iter()
            .filter(|(_, fp)| fp.is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn stats(&self) -> QueueStats {
        self.stats.borrow().clone()
    }

    /// Fingerprints what `inventory` changed, before any item works from it, and keeps its map
    /// for the next whole-target item.
    pub fn prepare(&self, inventory: &Arc<Inventory>) {
        self.fingerprints.prepare(inventory);
    }
}

/// A worker's copy of its ledger rows. A change costs O(log n); a reader gets a snapshot that
/// is copied once per change, not once per write of a long sync.
struct OwnedMirror(Mutex<MirrorInner>);

struct MirrorInner {
    rows: Owned,
    snapshot: Option<Arc<Owned>>,
}

impl OwnedMirror {
    fn new(rows: Owned) -> Self {
        OwnedMirror(Mutex::new(MirrorInner {
            rows,
            snapshot: None,
        }))
    }

    fn snapshot(&self) -> Arc<Owned> {
        let mut inner = lock(&self.0);
        let MirrorInner { rows, snapshot } = &mut *inner;
        snapshot
            .get_or_insert_with(|| Arc::new(rows.clone()))
            .clone()
    }

    fn get(&self, stream: &str) -> Option<Option<Fingerprint>> {
        lock(&self.0).rows.get(stream).cloned()
    }

    fn read<R>(&self, f: impl FnOnce(&Owned) -> R) -> R {
        f(&lock(&self.0).rows)
    }

    fn set(&self, stream: &str, entry: Option<Option<&Fingerprint>>) {
        let mut inner = lock(&self.0);
        match entry {
            None => inner.rows.remove(stream),
            Some(fp) => inner.rows.insert(stream.to_owned(), fp.cloned()),
        };
        inner.snapshot = None;
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

/// What the worker's items share.
struct Shared {
    target: Arc<dyn Target>,
    ledger: Arc<Ledger>,
    /// This target's ledger rows; every change goes to the ledger first.
    owned: Arc<OwnedMirror>,
    /// What the server listed last, kept current by the worker's own writes; `None` before the
    /// first list.
    observed: Mutex<Option<BTreeSet<String>>>,
    fingerprints: Arc<Fingerprints>,
    limiter: Mutex<RateLimit>,
    inventory: watch::Receiver<Arc<Inventory>>,
    allow_mass_delete: bool,
    observer: Arc<dyn Observer>,
}

/// How one run of an item ended.
enum Ended {
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
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
    fn name(&self) -> &str {
        self.target.name()
    }

    fn inventory(&self) -> Arc<Inventory> {
        self.inventory.borrow().clone()
    }

    async fn run(&self, key: &Key, work: &Work) -> Ended {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::target::{BoxFuture, RunCheck, StreamObservation};

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

//! One account's streams kept alive (a Nest account, or an `exec`/`http` resolver): a task
//! that owns the account's command queue and every wanted camera's live stream, and publishes
//! each camera's [`Resolution`].
//!
//! - **One command at a time per account, paced.** Commands go through a [`WorkQueue`] keyed
//!   by camera (one waiting item per camera, never two in flight) with three levels:
//!   extensions first, then generates, then stops. They leave at most `per_minute` in any
//!   60 s and at least `60 s / per_minute` apart, so cameras that start together are
//!   staggered and their later extensions stay spread out.
//! - **Renewal ahead of expiry.** A live stream is extended `renew_before` its expiry (an
//!   `exec`/`http` resolver is asked again). An extension that fails is retried with backoff
//!   while the stream lives; a stream Google no longer extends, or one that expired, is
//!   generated anew. An extension never changes the stream's `generation`, and the servers
//!   see only a new generation (see the parent module).
//! - **Failures.** A 429 pauses the whole account with backoff (nothing is lost: the item
//!   stays, and an extension still goes before a generate). A refused refresh token pauses
//!   the account at the longest backoff and marks every camera `degraded` with the account's
//!   error — one refresh attempt per pause, no storm. Any other failure counts against its
//!   camera; after `degraded_after` in a row the camera is `degraded` and retried at the
//!   longest backoff; a success clears it.
//! - **Capacity.** An account keeps at most [`Settings::capacity`] streams alive (what its
//!   quota can extend with room to spare); wanted cameras beyond it are `over-quota`, taken in
//!   name order after those already admitted, and never generated.
//!
//! Time is tokio's clock, so the whole schedule runs under a paused clock in tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::live::{LiveStreams, ResolveError, StreamGrant};
use crate::queue::{Backoff, Level, Merge, RateLimit, WorkQueue, sleep_until};
use crate::secret::Secret;

/// A Nest stream lives this long (Google: five minutes), until a grant says otherwise.
pub const STREAM_LIFETIME: Duration = Duration::from_secs(300);

/// How an account paces and renews.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Commands in any 60 s (Google allows 10 per project).
    pub per_minute: u32,
    /// A stream is extended this long before it expires.
    pub renew_before: Duration,
    /// The wait after a failure, doubling up to its maximum.
    pub backoff: Backoff,
    /// Failures in a row after which a camera is `degraded`.
    pub degraded_after: u32,
    /// In [0, 1), for the backoff.
    pub jitter: fn() -> f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            per_minute: 10,
            renew_before: Duration::from_secs(60),
            backoff: Backoff {
                min: Duration::from_secs(5),
                max: Duration::from_secs(300),
            },
            degraded_after: 5,
            jitter: crate::queue::random_jitter,
        }
    }
}

impl Settings {
    /// The defaults with this pace and margin.
    pub fn paced(per_minute: u32, renew_before: Duration) -> Settings {
        Settings {
            per_minute,
            renew_before,
            ..Settings::default()
        }
    }

    /// The time between two commands.
    pub fn spacing(&self) -> Duration {
        Duration::from_secs(60) / self.per_minute.max(1)
    }

    /// How many streams the quota keeps alive: each needs one extension per
    /// `lifetime - renew_before`, and a fifth of the quota stays free for generates and
    /// retries.
    pub fn capacity(&self, lifetime: Duration) -> usize {
        let period = lifetime.saturating_sub(self.renew_before).as_secs_f64();
        (0.8 * f64::from(self.per_minute.max(1)) * period / 60.0).floor() as usize
    }
}

/// A command, and its level in the account's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Extend,
    Generate,
    Stop,
}

impl Level for Command {
    const ORDER: [Command; 3] = [Command::Extend, Command::Generate, Command::Stop];

    fn index(self) -> usize {
        self as usize
    }
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Extend => "extend",
            Command::Generate => "generate",
            Command::Stop => "stop",
        }
    }
}

/// Nothing to merge: what a camera needs is decided from its state when its item leaves.
#[derive(Debug, Default)]
struct Due;

impl Merge for Due {
    fn merge(&mut self, _: Self) {}
}

/// Where a camera's stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamState {
    /// Waiting for its first stream.
    Pending,
    Live,
    /// Failed `degraded_after` times in a row, or its account's refresh token was refused.
    Degraded,
    /// Beyond what the account's quota keeps alive.
    OverQuota,
}

impl StreamState {
    pub const ALL: [StreamState; 4] = [
        StreamState::Pending,
        StreamState::Live,
        StreamState::Degraded,
        StreamState::OverQuota,
    ];

    /// The name used in metrics and the API (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            StreamState::Pending => "pending",
            StreamState::Live => "live",
            StreamState::Degraded => "degraded",
            StreamState::OverQuota => "over-quota",
        }
    }
}

/// A camera's resolved stream, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub state: StreamState,
    /// The URL to play; a secret (it carries the stream token).
    pub url: Option<Secret>,
    pub expires: Option<Instant>,
    /// Counts the streams generated: a new one means a new upstream session (the URL of an
    /// extension may change while this stays).
    pub generation: u64,
    pub failures: u32,
    /// The last failure, for status (never a secret).
    pub error: Option<String>,
}

/// Every wanted camera's resolution, by camera name.
pub type Resolutions = BTreeMap<String, Resolution>;

/// The queue's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CommandStats {
    /// Waiting items per level: extend, generate, stop.
    pub depth: [usize; 3],
    /// Commands sent, by level.
    pub executed: [u64; 3],
    pub failed: u64,
    pub rate_limited: u64,
    /// The longest an item waited from when it fell due to its command, and the sum of waits
    /// (milliseconds).
    pub max_wait_ms: u64,
    pub total_wait_ms: u64,
}

enum Request {
    /// The cameras wanted now (camera name → device), replacing the last set.
    Want(BTreeMap<String, String>),
    /// Generate a new stream for this camera (a reconnect, or health saw it expire).
    Regenerate(String),
}

/// A running account. Dropping it stops its task (live streams expire on their own).
pub struct Account {
    requests: mpsc::UnboundedSender<Request>,
    resolutions: watch::Receiver<Resolutions>,
    stats: watch::Receiver<CommandStats>,
    task: JoinHandle<()>,
}

impl Drop for Account {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Account {
    pub fn start<S: LiveStreams>(name: &str, sdm: S, settings: Settings) -> Account {
        let (requests, inbox) = mpsc::unbounded_channel();
        let (published, resolutions) = watch::channel(Resolutions::new());
        let (stats_tx, stats) = watch::channel(CommandStats::default());
        let runner = Runner {
            account: name.to_owned(),
            sdm: Arc::new(sdm),
            settings,
            cameras: BTreeMap::new(),
            queue: WorkQueue::default(),
            limit: RateLimit::default(),
            last_sent: None,
            paused_until: None,
            rate_limited_in_a_row: 0,
            revoked: None,
            lifetime: STREAM_LIFETIME,
            published,
            stats: CommandStats::default(),
            stats_tx,
        };
        Account {
            requests,
            resolutions,
            stats,
            task: tokio::spawn(runner.run(inbox)),
        }
    }

    /// The cameras wanted now (camera name → `enterprises/…/devices/…`); those no longer
    /// named are stopped.
    pub fn want(&self, cameras: BTreeMap<String, String>) {
        let _ = self.requests.send(Request::Want(cameras));
    }

    /// Generates a new stream for `camera` at once (its current one is dropped).
    pub fn regenerate(&self, camera: &str) {
        let _ = self.requests.send(Request::Regenerate(camera.to_owned()));
    }

    pub fn resolutions(&self) -> watch::Receiver<Resolutions> {
        self.resolutions.clone()
    }

    pub fn stats(&self) -> CommandStats {
        self.stats.borrow().clone()
    }
}

struct Camera {
    device: String,
    wanted: bool,
    admitted: bool,
    grant: Option<StreamGrant>,
    generation: u64,
    failures: u32,
    error: Option<String>,
}

struct Runner<S> {
    account: String,
    sdm: Arc<S>,
    settings: Settings,
    cameras: BTreeMap<String, Camera>,
    queue: WorkQueue<String, Command, Due>,
    limit: RateLimit,
    last_sent: Option<Instant>,
    paused_until: Option<Instant>,
    rate_limited_in_a_row: u32,
    /// The account's refresh token was refused: why.
    revoked: Option<String>,
    /// The longest stream lifetime seen, for the capacity.
    lifetime: Duration,
    published: watch::Sender<Resolutions>,
    stats: CommandStats,
    stats_tx: watch::Sender<CommandStats>,
}

impl<S: LiveStreams> Runner<S> {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Request>) {
        self.limit = RateLimit::new(Some(self.settings.per_minute));
        loop {
            let wake = self.wake();
            tokio::select! {
                request = inbox.recv() => match request {
                    Some(request) => self.handle(request),
                    None => return,
                },
                () = sleep_until(wake) => self.step().await,
            }
            self.publish();
        }
    }

    fn handle(&mut self, request: Request) {
        let now = Instant::now();
        match request {
            Request::Want(wanted) => {
                // Only what changed is scheduled: the same set asked again (every resync, every
                // webhook) leaves each camera's renewal and backoff as they are.
                let before: BTreeMap<String, (bool, bool, String)> = self
                    .cameras
                    .iter()
                    .map(|(name, c)| (name.clone(), (c.wanted, c.admitted, c.device.clone())))
                    .collect();
                for (name, camera) in &mut self.cameras {
                    camera.wanted = wanted.contains_key(name);
                }
                for (name, device) in wanted {
                    let camera = self.cameras.entry(name).or_insert_with(|| Camera {
                        device: device.clone(),
                        wanted: true,
                        admitted: false,
                        grant: None,
                        generation: 0,
                        failures: 0,
                        error: None,
                    });
                    if camera.device != device {
                        // Another device: its stream is not this camera's any more.
                        camera.device = device;
                        camera.grant = None;
                        camera.failures = 0;
                    }
                }
                self.admit();
                let changed: Vec<String> = self
                    .cameras
                    .iter()
                    .filter(|(name, c)| {
                        before.get(*name) != Some(&(c.wanted, c.admitted, c.device.clone()))
                    })
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in changed {
                    self.schedule(&name, now);
                }
            }
            Request::Regenerate(name) => {
                if let Some(camera) = self.cameras.get_mut(&name) {
                    camera.grant = None;
                    // A failing camera is already retried on its backoff; asking again (each
                    // health round, each reconnect) must not make that a storm.
                    if camera.failures == 0 {
                        self.schedule(&name, now);
                    }
                }
            }
        }
    }

    /// Admits wanted cameras up to the capacity: those admitted before first, then by name.
    fn admit(&mut self) {
        let capacity = self.settings.capacity(self.lifetime);
        let mut admitted = 0;
        for camera in self.cameras.values_mut() {
            camera.admitted &= camera.wanted;
            admitted += usize::from(camera.admitted);
        }
        for camera in self.cameras.values_mut() {
            if camera.wanted && !camera.admitted && admitted < capacity {
                camera.admitted = true;
                admitted += 1;
            }
        }
    }

    /// Enqueues what `name` needs next, if anything, no earlier than `earliest`.
    fn schedule(&mut self, name: &str, earliest: Instant) {
        let Some(camera) = self.cameras.get(name) else {
            return;
        };
        let now = Instant::now();
        let next = match (&camera.grant, camera.wanted && camera.admitted) {
            (Some(grant), true) if grant.expires > now => Some((
                Command::Extend,
                grant
                    .expires
                    .checked_sub(self.settings.renew_before)
                    .unwrap_or(now)
                    .max(earliest),
            )),
            (_, true) => Some((Command::Generate, earliest)),
            (Some(grant), false) if grant.expires > now => Some((Command::Stop, earliest)),
            (_, false) => None,
        };
        match next {
            Some((command, due)) => {
                self.queue.push(name.to_owned(), command, due, now, Due);
            }
            None if !camera.wanted => {
                self.cameras.remove(name);
            }
            None => {}
        }
    }

    /// When the next command may leave.
    fn wake(&mut self) -> Option<Instant> {
        let due = self.queue.next_due()?;
        Some(due.max(self.gate(Instant::now())))
    }

    /// The earliest a command may be sent: after a pause, the spacing and the window.
    fn gate(&mut self, now: Instant) -> Instant {
        let spaced = self.last_sent.map(|at| at + self.settings.spacing());
        [self.paused_until, spaced, self.limit.ready_at(now, 0)]
            .into_iter()
            .flatten()
            .fold(now, Instant::max)
    }

    /// Sends the next command, if one is due and may leave now.
    async fn step(&mut self) {
        let now = Instant::now();
        if self.gate(now) > now {
            return;
        }
        let Some(popped) = self.queue.pop(now, 1) else {
            return;
        };
        let name = popped.key;
        let Some(command) = self.command_for(&name, now) else {
            self.queue.done(&name);
            self.schedule(&name, now);
            return;
        };
        self.limit.record(now);
        self.last_sent = Some(now);
        self.stats.executed[command.index()] += 1;
        let waited = u64::try_from(popped.overdue.as_millis()).unwrap_or(u64::MAX);
        self.stats.max_wait_ms = self.stats.max_wait_ms.max(waited);
        self.stats.total_wait_ms = self.stats.total_wait_ms.saturating_add(waited);
        let outcome = self.send(&name, command).await;
        self.queue.done(&name);
        self.settle(&name, command, outcome);
    }

    /// What `name` needs now (its state may have changed since its item was queued).
    fn command_for(&self, name: &str, now: Instant) -> Option<Command> {
        let camera = self.cameras.get(name)?;
        let live = camera.grant.as_ref().is_some_and(|g| g.expires > now);
        match (camera.wanted && camera.admitted, live) {
            (true, true) => Some(Command::Extend),
            (true, false) => Some(Command::Generate),
            (false, true) => Some(Command::Stop),
            (false, false) => None,
        }
    }

    async fn send(
        &self,
        name: &str,
        command: Command,
    ) -> Result<Option<StreamGrant>, ResolveError> {
        let camera = &self.cameras[name];
        let sdm = &self.sdm;
        match (command, &camera.grant) {
            (Command::Extend, Some(grant)) => sdm.extend(&camera.device, grant).await.map(Some),
            (Command::Stop, Some(grant)) => sdm.stop(&camera.device, grant).await.map(|()| None),
            _ => sdm.generate(&camera.device).await.map(Some),
        }
    }

    fn settle(
        &mut self,
        name: &str,
        command: Command,
        outcome: Result<Option<StreamGrant>, ResolveError>,
    ) {
        let now = Instant::now();
        let settings = self.settings.clone();
        let Some(camera) = self.cameras.get_mut(name) else {
            return;
        };
        let retry_at = match outcome {
            Ok(grant) => {
                self.paused_until = None;
                self.rate_limited_in_a_row = 0;
                self.revoked = None;
                if command == Command::Generate {
                    camera.generation += 1;
                }
                if let Some(grant) = &grant {
                    let lifetime = grant.expires.saturating_duration_since(now);
                    self.lifetime = self.lifetime.max(lifetime);
                }
                camera.grant = grant;
                camera.failures = 0;
                camera.error = None;
                now
            }
            Err(ResolveError::RateLimited { .. }) => {
                self.stats.rate_limited += 1;
                self.rate_limited_in_a_row += 1;
                let pause = settings
                    .backoff
                    .delay(self.rate_limited_in_a_row, (settings.jitter)());
                self.paused_until = Some(now + pause);
                now
            }
            Err(error) => {
                self.stats.failed += 1;
                let message = error.to_string();
                if error.is_revoked() {
                    if self.revoked.is_none() {
                        tracing::error!(account = %self.account, "{message}");
                    }
                    self.revoked = Some(message);
                    self.paused_until = Some(now + settings.backoff.max);
                    now
                } else {
                    if matches!(error, ResolveError::StreamGone { .. }) {
                        camera.grant = None;
                    }
                    camera.failures += 1;
                    if camera.failures == settings.degraded_after {
                        tracing::warn!(
                            account = %self.account,
                            camera = name,
                            failures = camera.failures,
                            "nest stream degraded: {message}"
                        );
                    }
                    camera.error = Some(message);
                    now + settings.backoff.delay(camera.failures, (settings.jitter)())
                }
            }
        };
        self.schedule(name, retry_at);
    }

    fn publish(&mut self) {
        let now = Instant::now();
        let degraded_after = self.settings.degraded_after;
        let revoked = self.revoked.clone();
        let resolutions: Resolutions = self
            .cameras
            .iter()
            .filter(|(_, c)| c.wanted)
            .map(|(name, c)| {
                let live = c.grant.as_ref().filter(|g| g.expires > now);
                let state = if !c.admitted {
                    StreamState::OverQuota
                } else if revoked.is_some() || c.failures >= degraded_after {
                    StreamState::Degraded
                } else if live.is_some() {
                    StreamState::Live
                } else {
                    StreamState::Pending
                };
                let resolution = Resolution {
                    state,
                    url: live.map(|g| g.url.clone()),
                    expires: live.map(|g| g.expires),
                    generation: c.generation,
                    failures: c.failures,
                    error: revoked.clone().or_else(|| c.error.clone()),
                };
                (name.clone(), resolution)
            })
            .collect();
        self.published.send_if_modified(|old| {
            let changed = *old != resolutions;
            *old = resolutions;
            changed
        });
        self.stats.depth = self.queue.depth();
        let stats = self.stats.clone();
        self.stats_tx.send_if_modified(|old| {
            let changed = *old != stats;
            *old = stats;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_keeps_thirty_two_streams_alive_at_ten_a_minute() {
        let settings = Settings::default();
        assert_eq!(settings.spacing(), Duration::from_secs(6));
        assert_eq!(settings.capacity(STREAM_LIFETIME), 32);
        assert_eq!(settings.capacity(Duration::from_secs(30)), 0);
    }
}

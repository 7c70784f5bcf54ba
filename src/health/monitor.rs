//! The health monitor: rounds over each target that judge every (camera, target) pair with
//! [`PairHealth`] and carry out its decisions, restart-free.
//!
//! One round over a target:
//! 1. reads the server's stream list once ([`Target::status`]): passive signals first; a stream
//!    whose counters grow, or that MediaMTX reports ready, is healthy without opening another
//!    RTSP session to its camera;
//! 2. probes through the server's RTSP proxy only the streams that need it: those not healthy,
//!    and idle ones when their turn comes (each pair's idle probes are spread over
//!    `idle_probe` by a stable offset, never in bursts), at most [`PROBES_IN_FLIGHT`] at once;
//! 3. asks the camera itself (a plain TCP connect, which a down camera refuses at no cost) only
//!    when the proxy fails, to tell a dead camera from a stuck stream;
//! 4. acts: re-add a lost stream, delete + add a stuck one or one whose camera came back (the
//!    target's upsert re-arms a go2rtc preload), or ask for a resync of a target whose API is
//!    back. The target's client serializes these with every other call to the server.
//!
//! Only streams camsync owns are judged; nothing here restarts a server.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{RwLock, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::probe::Probe;
use super::state::{
    Action, CameraReach, Listing, Observation, PairHealth, Policy, ProxyAnswer, State, Transition,
};
use crate::camera::Camera;
use crate::target::{StreamStatus, Target};

pub const PROBES_IN_FLIGHT: usize = 8;

/// Monitor settings (config `health:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Time between rounds over one target.
    pub interval: Duration,
    /// How often an idle, seemingly healthy stream is probed through the proxy.
    pub idle_probe: Duration,
    /// One proxy probe's limit: longer than the server's own dial.
    pub probe_timeout: Duration,
    /// How long a camera has to accept a TCP connection.
    pub camera_timeout: Duration,
    pub policy: Policy,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval: Duration::from_secs(2),
            idle_probe: Duration::from_secs(300),
            probe_timeout: super::check::DEFAULT_TIMEOUT,
            camera_timeout: Duration::from_secs(1),
            policy: Policy::default(),
        }
    }
}

/// A transition of one pair, as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    pub camera: String,
    pub target: String,
    pub transition: Transition,
}

/// Keeps the monitor's writes from racing a sync: they wait for a sync in progress (which
/// holds `gate` for writing), and skip a stream that is no longer `owned` by then (the sync may
/// just have deleted it; re-adding it would leave an orphan nobody owns).
pub struct ActGuard<'a> {
    pub gate: &'a RwLock<()>,
    pub owned: &'a (dyn Fn(&str) -> bool + Sync),
}

/// What a round asks of the daemon.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoundOutcome {
    pub events: Vec<HealthEvent>,
    /// The target's API answers again: resync it before anything else.
    pub resync: bool,
    /// Writes the round made (re-adds and restarts).
    pub writes: usize,
    /// The proxy probes the round made.
    pub probes: Vec<ProbeSample>,
}

/// One proxy probe: how long it took and whether the stream was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSample {
    pub latency: Duration,
    pub ok: bool,
}

struct Pair {
    health: PairHealth,
    last_bytes: Option<u64>,
    next_idle_probe: Instant,
}

/// The monitor of one target.
pub struct TargetMonitor {
    target: Arc<dyn Target>,
    rtsp: Option<url::Url>,
    settings: Settings,
    pairs: BTreeMap<String, Pair>,
}

impl TargetMonitor {
    pub fn new(
        target: Arc<dyn Target>,
        rtsp: Option<url::Url>,
        settings: Settings,
    ) -> TargetMonitor {
        TargetMonitor {
            target,
            rtsp,
            settings,
            pairs: BTreeMap::new(),
        }
    }

    pub fn target_name(&self) -> &str {
        self.target.name()
    }

    pub fn state(&self, camera: &str) -> Option<State> {
        self.pairs.get(camera).map(|p| p.health.state())
    }

    /// One round over the target for `cameras` (those camsync owns there).
    pub async fn round(
        &mut self,
        cameras: &BTreeMap<String, Camera>,
        now: Instant,
    ) -> RoundOutcome {
        self.round_guarded(cameras, now, None).await
    }

    /// [`TargetMonitor::round`], with writes made under `guard`.
    pub async fn round_guarded(
        &mut self,
        cameras: &BTreeMap<String, Camera>,
        now: Instant,
        guard: Option<&ActGuard<'_>>,
    ) -> RoundOutcome {
        let name = self.target.name().to_owned();
        let wanted: BTreeSet<&String> = cameras
            .values()
            .filter(|c| c.wants_target(&name))
            .map(|c| &c.name)
            .collect();
        self.pairs.retain(|camera, _| wanted.contains(camera));
        for camera in &wanted {
            let offset = spread(camera, self.settings.idle_probe);
            self.pairs.entry((*camera).clone()).or_insert_with(|| Pair {
                health: PairHealth::new(now, &self.settings.policy),
                last_bytes: None,
                next_idle_probe: now + offset,
            });
        }
        let status = self.target.status().await.ok();
        let (observations, probes) = self.observe(cameras, status.as_ref(), now).await;
        let mut outcome = RoundOutcome {
            probes,
            ..RoundOutcome::default()
        };
        for (camera, seen) in observations {
            let Some(pair) = self.pairs.get_mut(&camera) else {
                continue;
            };
            let (transition, action) =
                pair.health
                    .observe(now, seen, &self.settings.policy, jitter());
            if let Some(transition) = transition {
                tracing::info!(camera = %camera, target_name = %name, from = transition.from.name(), to = transition.to.name(),
                    reason = transition.reason, recovered_after = ?transition.recovered_after, "health");
                outcome.events.push(HealthEvent {
                    camera: camera.clone(),
                    target: name.clone(),
                    transition,
                });
            }
            let restart = match (action, cameras.get(&camera)) {
                (Action::None, _) | (_, None) => continue,
                (Action::ResyncTarget, _) => {
                    outcome.resync = true;
                    continue;
                }
                (Action::ReAdd, Some(c)) => (c, false),
                (Action::Restart, Some(c)) => (c, true),
            };
            let _sync_excluded = match guard {
                Some(g) => Some(g.gate.read().await),
                None => None,
            };
            if guard.is_some_and(|g| !(g.owned)(&camera)) {
                tracing::debug!(camera = %camera, target_name = %name, "no longer owned: not recovered");
                continue;
            }
            outcome.writes += self.recover(restart.0, restart.1).await;
        }
        outcome
    }

    /// Builds one observation per pair: passive signals, then probes where needed (timed).
    async fn observe(
        &mut self,
        cameras: &BTreeMap<String, Camera>,
        status: Option<&BTreeMap<String, StreamStatus>>,
        now: Instant,
    ) -> (Vec<(String, Observation)>, Vec<ProbeSample>) {
        let permits = Arc::new(Semaphore::new(PROBES_IN_FLIGHT));
        let mut probes = JoinSet::new();
        let mut seen = Vec::new();
        for (camera, pair) in &mut self.pairs {
            let listing = match status {
                None => Listing::Unreachable,
                Some(streams) => match streams.get(camera) {
                    None => Listing::NotListed,
                    Some(s) => {
                        let grew = pair.last_bytes.is_some_and(|before| s.bytes_in > before);
                        let stalled = pair.last_bytes.is_some_and(|before| s.bytes_in == before);
                        pair.last_bytes = Some(s.bytes_in);
                        Listing::Listed {
                            flowing: grew || (s.ready && !stalled),
                            frozen: s.consumers > 0 && stalled,
                        }
                    }
                },
            };
            let observation = Observation {
                listing,
                proxy: ProxyAnswer::NotProbed,
                camera: CameraReach::Unknown,
            };
            let Listing::Listed { flowing, .. } = listing else {
                seen.push((camera.clone(), observation));
                continue;
            };
            let unhealthy = pair.health.state() != State::Healthy;
            let idle_turn = !flowing && now >= pair.next_idle_probe;
            let (Some(base), Some(source)) = (self.rtsp.as_ref(), cameras.get(camera)) else {
                seen.push((camera.clone(), observation));
                continue;
            };
            if !(unhealthy || idle_turn) {
                seen.push((camera.clone(), observation));
                continue;
            }
            if idle_turn {
                pair.next_idle_probe = now + self.settings.idle_probe;
            }
            let Ok(url) = base.join(camera) else {
                seen.push((camera.clone(), observation));
                continue;
            };
            let probe = Probe {
                url,
                credentials: None,
                timeout: self.settings.probe_timeout,
            };
            let camera_addr = camera_address(source);
            let camera_timeout = self.settings.camera_timeout;
            let permits = permits.clone();
            let name = camera.clone();
            probes.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let started = std::time::Instant::now();
                let proxy = match probe.describe().await {
                    Ok(answer) if answer.status == 200 => ProxyAnswer::Ok,
                    _ => ProxyAnswer::Failed,
                };
                let sample = ProbeSample {
                    latency: started.elapsed(),
                    ok: proxy == ProxyAnswer::Ok,
                };
                let camera = match (proxy, camera_addr) {
                    (ProxyAnswer::Failed, Some(addr)) => reach(&addr, camera_timeout).await,
                    _ => CameraReach::Unknown,
                };
                let seen = Observation {
                    listing,
                    proxy,
                    camera,
                };
                (name, seen, sample)
            });
        }
        let mut samples = Vec::new();
        while let Some(done) = probes.join_next().await {
            if let Ok((name, observation, sample)) = done {
                seen.push((name, observation));
                samples.push(sample);
            }
        }
        (seen, samples)
    }

    /// Re-adds (or deletes and re-adds) the stream; the number of writes it took.
    async fn recover(&self, camera: &Camera, restart: bool) -> usize {
        match self.target.recover(camera, restart).await {
            Ok(_) => 1 + usize::from(restart),
            Err(e) => {
                tracing::warn!(camera = %camera.name, target_name = self.target.name(), restart, error = %e, "recovery failed");
                0
            }
        }
    }
}

/// `host:port` of a camera's first source, when it is a URL camsync can connect to.
fn camera_address(camera: &Camera) -> Option<String> {
    let url = url::Url::parse(&camera.sources.first()?.expose()).ok()?;
    let port = url.port_or_known_default().or(match url.scheme() {
        "rtsp" => Some(554),
        "rtsps" => Some(322),
        _ => None,
    })?;
    let host = url.host_str()?;
    Some(if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// A TCP connect: a down camera refuses it (or lets it time out) without any session cost.
async fn reach(addr: &str, timeout: Duration) -> CameraReach {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => CameraReach::Answers,
        _ => CameraReach::Down,
    }
}

/// A stable offset in `[0, period)` for `name`, so idle probes of many streams are spread evenly.
fn spread(name: &str, period: Duration) -> Duration {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    let fraction = (hasher.finish() % 10_000) as f64 / 10_000.0;
    period.mul_f64(fraction)
}

fn jitter() -> f64 {
    let mut byte = [0u8; 2];
    let _ = getrandom::fill(&mut byte);
    f64::from(u16::from_le_bytes(byte)) / 65_536.0
}

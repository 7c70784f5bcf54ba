//! The health monitor: rounds over each target that judge every (camera, target) pair with
//! [`PairHealth`] and return what should be done about it. It observes and decides; it never
//! writes to a server: its [`Intent`]s go to the target's worker.
//!
//! One round over a target:
//! 1. reads the server's stream list once ([`Target::observe`]): passive signals first; a stream
//!    whose counters grow, or that MediaMTX reports ready, is healthy without opening another
//!    RTSP session to its camera;
//! 2. probes through the server's RTSP proxy only the streams that need it: those not healthy,
//!    and idle ones when their turn comes (each pair's idle probes are spread over
//!    `idle_probe` by a stable offset, never in bursts), at most
//!    [`PROBES_IN_FLIGHT`](super::sweep::PROBES_IN_FLIGHT) at once;
//! 3. asks the camera itself (a plain TCP connect, which a down camera refuses at no cost) only
//!    when the proxy fails or the stream is frozen (no data moves although consumers are
//!    attached or the stream is kept connected), to tell a dead camera from a stuck stream;
//! 4. decides: re-add a lost stream, delete + add a stuck one or one whose camera came back
//!    (the target's upsert re-arms a go2rtc preload), or resync a target whose API is back.
//!
//! Probes go through [`super::sweep`], the path `camsync probe` takes too, and its [`Prober`],
//! so rounds run against fakes under tokio's paused clock.
//! Only streams camsync owns are judged. A server restart is asked for only with the opt-in
//! escalation ([`Settings::restart_server`]): when most of its streams stay broken after
//! camsync restarted them while their cameras answer, at most once per window.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::state::{
    Action, CameraReach, Listing, Observation, PairHealth, Policy, ProxyAnswer, State, Transition,
};
use super::sweep::{self, AskCamera, Look, NetProber, Prober};
use crate::camera::{Camera, Cameras};
use crate::config::HealthConfig;
use crate::target::{StreamObservation, Target};

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
    /// Between rounds, how often the cameras of `camera-offline` streams are checked (a TCP
    /// connect each), so a camera's return is acted on at once rather than at the next round.
    pub camera_watch: Duration,
    pub policy: Policy,
    /// Opt-in escalation: restart the whole server (go2rtc's `POST /api/restart`) when most of
    /// its streams stay broken while their cameras answer, at most once per this window.
    /// `None` (the default): never restart a server.
    pub restart_server: Option<Duration>,
}

impl Settings {
    /// The settings config `health:` asks for.
    pub fn from_config(config: &HealthConfig) -> Settings {
        Settings {
            interval: config.interval,
            idle_probe: config.idle_probe,
            probe_timeout: config.probe_timeout,
            camera_timeout: Duration::from_secs(1),
            camera_watch: config.camera_watch,
            policy: Policy {
                grace: config.grace,
                ..Policy::default()
            },
            restart_server: config.restart_server,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&HealthConfig::default())
    }
}

/// A transition of one pair, as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    pub camera: String,
    pub target: String,
    pub transition: Transition,
}

/// What a round asks to be done: by the target's worker, or (a new stream) by the resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Add the stream again (`restart: false`) or delete and add it (`restart: true`).
    Recover {
        camera: String,
        restart: bool,
        reason: &'static str,
    },
    /// The recovery of a camera whose URL is resolved (Nest, `resolve:`): its resolver
    /// generates a new stream, which then reaches the servers as a change. Re-registering a
    /// stream whose URL expired would only churn the server.
    NewStream(Arc<Camera>),
    /// The server's API answers again: converge the whole target first.
    Resync,
    /// The opt-in escalation: restart the whole server.
    RestartServer,
}

/// What a round saw and decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoundOutcome {
    pub events: Vec<HealthEvent>,
    pub intents: Vec<Intent>,
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
    /// Last round: camsync already restarted the stream, it still fails, its camera answers.
    hopeless: bool,
    last_bytes: Option<u64>,
    next_idle_probe: Instant,
}

/// The monitor of one target.
pub struct TargetMonitor {
    /// Read only: its stream list.
    target: Arc<dyn Target>,
    rtsp: Option<url::Url>,
    settings: Settings,
    prober: Arc<dyn Prober>,
    jitter: fn() -> f64,
    pairs: BTreeMap<String, Pair>,
    last_server_restart: Option<Instant>,
    /// The proxy asked camsync's probes for credentials; said once.
    proxy_refused: bool,
}

impl TargetMonitor {
    pub fn new(
        target: Arc<dyn Target>,
        rtsp: Option<url::Url>,
        settings: Settings,
    ) -> TargetMonitor {
        TargetMonitor::with_prober(target, rtsp, settings, Arc::new(NetProber))
    }

    /// A monitor that probes through `prober` (tests pass fakes).
    pub fn with_prober(
        target: Arc<dyn Target>,
        rtsp: Option<url::Url>,
        settings: Settings,
        prober: Arc<dyn Prober>,
    ) -> TargetMonitor {
        TargetMonitor {
            target,
            rtsp,
            settings,
            prober,
            jitter: crate::queue::random_jitter,
            pairs: BTreeMap::new(),
            last_server_restart: None,
            proxy_refused: false,
        }
    }

    fn warn_proxy_refuses(&mut self) {
        if !std::mem::replace(&mut self.proxy_refused, true) {
            tracing::warn!(
                target_name = self.target.name(),
                "the server's RTSP proxy asks camsync's probes for credentials (401); idle streams there are judged by the server's own signals only. Let reads from camsync's address through without credentials to have them probed"
            );
        }
    }

    /// Uses `jitter` (in [0, 1)) to spread restarts; tests pass a constant.
    pub fn with_jitter(mut self, jitter: fn() -> f64) -> TargetMonitor {
        self.jitter = jitter;
        self
    }

    pub fn target_name(&self) -> &str {
        self.target.name()
    }

    pub fn state(&self, camera: &str) -> Option<State> {
        self.pairs.get(camera).map(|p| p.health.state())
    }

    /// Whether the camera of any `camera-offline` stream answers now: one TCP connect per such
    /// camera, at most [`sweep::PROBES_IN_FLIGHT`] at once. Cheap enough to run between rounds.
    pub async fn offline_camera_answers(&self, cameras: &Cameras) -> bool {
        let offline = self
            .pairs
            .iter()
            .filter(|(_, p)| p.health.state() == State::CameraOffline)
            .filter_map(|(name, _)| cameras.get(name).and_then(|c| camera_address(c)));
        sweep::any_answers(&self.prober, offline, self.settings.camera_timeout).await
    }

    /// One round over the target for `cameras` (those camsync owns there): what changed, and
    /// what the worker should do.
    pub async fn round(&mut self, cameras: &Cameras, now: Instant) -> RoundOutcome {
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
                hopeless: false,
                last_bytes: None,
                next_idle_probe: now + offset,
            });
        }
        let status = self.target.observe().await.ok();
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
                    .observe(now, seen, &self.settings.policy, (self.jitter)());
            pair.hopeless = seen.camera == CameraReach::Answers
                && matches!(pair.health.state(), State::Recovering { attempt, .. } if attempt >= 2);
            let reason = transition.as_ref().map_or("still failing", |t| t.reason);
            if let Some(transition) = transition {
                if transition.from == State::Unverified && transition.to == State::Healthy {
                    // Every new stream's first verdict: not worth a line each at start-up.
                    tracing::debug!(camera = %camera, target_name = %name, "health: verified");
                } else {
                    tracing::info!(camera = %camera, target_name = %name, from = transition.from.name(), to = transition.to.name(),
                        reason = transition.reason, recovered_after = ?transition.recovered_after, "health");
                }
                outcome.events.push(HealthEvent {
                    camera: camera.clone(),
                    target: name.clone(),
                    transition,
                });
            }
            let resolved = cameras.get(&camera).filter(|c| c.resolver.is_some());
            let intent = match (action, resolved) {
                (Action::None, _) => continue,
                (Action::ResyncTarget, _) => Intent::Resync,
                (Action::ReAdd | Action::Restart, Some(resolved)) => {
                    Intent::NewStream(resolved.clone())
                }
                (Action::ReAdd, None) => Intent::Recover {
                    camera,
                    restart: false,
                    reason,
                },
                (Action::Restart, None) => Intent::Recover {
                    camera,
                    restart: true,
                    reason,
                },
            };
            if !outcome.intents.contains(&intent) {
                outcome.intents.push(intent);
            }
        }
        if self.escalation_due(now) {
            self.last_server_restart = Some(now);
            tracing::warn!(
                target_name = %name,
                hopeless = self.hopeless(),
                streams = self.pairs.len(),
                "most streams stay broken while their cameras answer: restarting the server (health.restart_server)"
            );
            outcome.intents.push(Intent::RestartServer);
        }
        outcome
    }

    /// Whether the opt-in escalation applies now: most streams stay broken after camsync
    /// restarted them while their cameras answer, and the window since the last one is over.
    fn escalation_due(&self, now: Instant) -> bool {
        let Some(window) = self.settings.restart_server else {
            return false;
        };
        self.hopeless() * 2 > self.pairs.len()
            && self.last_server_restart.is_none_or(|at| now >= at + window)
    }

    fn hopeless(&self) -> usize {
        self.pairs.values().filter(|p| p.hopeless).count()
    }

    /// Builds one observation per pair: passive signals, then probes where needed (timed).
    async fn observe(
        &mut self,
        cameras: &Cameras,
        status: Option<&BTreeMap<String, StreamObservation>>,
        now: Instant,
    ) -> (Vec<(String, Observation)>, Vec<ProbeSample>) {
        let mut seen = Vec::new();
        let mut looks = Vec::new();
        for (camera, pair) in &mut self.pairs {
            // A stream kept connected (a go2rtc preload, an always-on MediaMTX path) should
            // always carry data; an idle on-demand stream need not.
            let kept_connected = cameras.get(camera).is_some_and(|c| c.preload);
            let listing = match status {
                None => Listing::Unreachable,
                Some(streams) => match streams.get(camera) {
                    None => Listing::NotListed,
                    Some(s) => {
                        let grew = pair.last_bytes.is_some_and(|before| s.bytes_in > before);
                        let stalled = pair.last_bytes.is_some_and(|before| s.bytes_in == before);
                        pair.last_bytes = Some(s.bytes_in);
                        let flowing = grew || (s.ready && !stalled);
                        Listing::Listed {
                            flowing,
                            frozen: !flowing && (kept_connected || s.consumers > 0 && stalled),
                        }
                    }
                },
            };
            let passive = Observation {
                listing,
                proxy: ProxyAnswer::NotProbed,
                camera: CameraReach::Unknown,
            };
            let Listing::Listed { flowing, frozen } = listing else {
                seen.push((camera.clone(), passive));
                continue;
            };
            let unhealthy = pair.health.state() != State::Healthy;
            let idle_turn = !flowing && now >= pair.next_idle_probe;
            let Some(source) = cameras
                .get(camera)
                .filter(|_| unhealthy || idle_turn || frozen)
            else {
                seen.push((camera.clone(), passive));
                continue;
            };
            if idle_turn {
                pair.next_idle_probe = now + self.settings.idle_probe;
            }
            // A preloaded go2rtc stream answers DESCRIBE from cached tracks while its camera
            // is down, and an on-demand DESCRIBE can work while the preload is not armed, so
            // a frozen stream asks the camera too.
            looks.push(Look {
                key: (camera.clone(), listing),
                proxy: self.rtsp.as_ref().and_then(|base| base.join(camera).ok()),
                camera: camera_address(source),
                ask_camera: if frozen {
                    AskCamera::Always
                } else {
                    AskCamera::IfNotServed
                },
            });
        }
        let limits = sweep::Limits {
            probe: self.settings.probe_timeout,
            camera: self.settings.camera_timeout,
        };
        let mut samples = Vec::new();
        for look in sweep::sweep(&self.prober, looks, limits).await {
            let proxy = match &look.proxy {
                None => ProxyAnswer::NotProbed,
                Some(_) if look.served() => ProxyAnswer::Ok,
                Some(_) if look.refused() => {
                    self.warn_proxy_refuses();
                    ProxyAnswer::NotProbed
                }
                Some(_) => ProxyAnswer::Failed,
            };
            if look.proxy.is_some() {
                samples.push(ProbeSample {
                    latency: look.latency,
                    ok: look.served(),
                });
            }
            let (camera, listing) = look.key;
            let observation = Observation {
                listing,
                proxy,
                camera: look.camera,
            };
            seen.push((camera, observation));
        }
        (seen, samples)
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

/// A stable offset in `[0, period)` for `name`, so idle probes of many streams are spread evenly.
fn spread(name: &str, period: Duration) -> Duration {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    let fraction = (hasher.finish() % 10_000) as f64 / 10_000.0;
    period.mul_f64(fraction)
}

/// Rounds against a fake server and a fake network under tokio's paused clock: the probe
/// timeouts, grace periods and idle schedules cost no wall-clock time.
#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::health::fakes::{FakeNet, FakeServer, Proxy};
    use crate::health::state::Policy;

    const GRACE: Duration = Duration::from_secs(10);
    const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

    struct Rig {
        server: Arc<FakeServer>,
        net: Arc<FakeNet>,
        monitor: TargetMonitor,
        cameras: Cameras,
    }

    /// Streams `names`, listed and idle (no bytes), each camera on its own 127.0.0.1 port.
    fn rig(names: &[&str]) -> Rig {
        let cameras: Cameras = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let url = format!("rtsp://127.0.0.1:{}/s", 10_000 + i);
                (n.to_string(), Arc::new(Camera::example(n, &url)))
            })
            .collect();
        let streams = names
            .iter()
            .map(|n| (n.to_string(), StreamObservation::default()))
            .collect();
        let server = Arc::new(FakeServer::listing("t", streams));
        let net = Arc::new(FakeNet::default());
        let settings = Settings {
            probe_timeout: PROBE_TIMEOUT,
            policy: Policy {
                grace: GRACE,
                ..Policy::default()
            },
            ..Settings::default()
        };
        let rtsp = url::Url::parse("rtsp://127.0.0.1:8554/").ok();
        let monitor = TargetMonitor::with_prober(server.clone(), rtsp, settings, net.clone())
            .with_jitter(|| 0.0);
        Rig {
            server,
            net,
            monitor,
            cameras,
        }
    }

    impl Rig {
        fn proxy(&self, stream: &str, proxy: Proxy) {
            self.net.proxy.lock().unwrap().insert(stream.into(), proxy);
        }

        fn camera_up(&self, stream: &str, up: bool) {
            let addr = camera_address(&self.cameras[stream]).unwrap();
            let mut cameras = self.net.cameras_up.lock().unwrap();
            if up {
                cameras.insert(addr);
            } else {
                cameras.remove(&addr);
            }
        }

        async fn round(&mut self) -> RoundOutcome {
            self.monitor.round(&self.cameras, Instant::now()).await
        }

        /// A round once the grace of new streams is over.
        async fn round_after_grace(&mut self) -> RoundOutcome {
            tokio::time::advance(GRACE).await;
            self.round().await
        }
    }

    fn asks(outcome: &RoundOutcome, camera: &str, restart: bool) -> bool {
        outcome.intents.iter().any(|i| {
            matches!(i, Intent::Recover { camera: c, restart: r, .. } if c == camera && *r == restart)
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_proxy_whose_camera_answers_is_restarted_after_one_probe_timeout() {
        let mut rig = rig(&["door"]);
        rig.proxy("door", Proxy::Hangs);
        rig.camera_up("door", true);
        rig.round().await;
        tokio::time::advance(GRACE).await;

        let started = Instant::now();
        let outcome = rig.round().await;
        assert_eq!(
            started.elapsed(),
            PROBE_TIMEOUT,
            "one probe, held to its timeout"
        );
        assert!(asks(&outcome, "door", true), "delete + add: {outcome:?}");
        assert_eq!(
            outcome.events.last().map(|e| e.transition.reason),
            Some("the camera answers but the server does not serve the stream")
        );
        assert_eq!(outcome.probes.len(), 1);
        assert!(!outcome.probes[0].ok);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resolved_camera_s_broken_stream_asks_for_a_new_stream_not_a_recovery() {
        let mut rig = rig(&["porch", "door"]);
        let porch = Arc::new(Camera {
            resolver: Some(crate::camera::ResolverRef {
                resolver: "home".into(),
                device: "porch".into(),
            }),
            ..(*rig.cameras["porch"]).clone()
        });
        rig.cameras.insert("porch".into(), porch.clone());
        for stream in ["porch", "door"] {
            rig.proxy(stream, Proxy::Hangs);
            rig.camera_up(stream, true);
        }
        rig.round().await;
        let outcome = rig.round_after_grace().await;
        assert!(
            outcome.intents.contains(&Intent::NewStream(porch)),
            "{outcome:?}"
        );
        assert!(!asks(&outcome, "porch", true), "{outcome:?}");
        assert!(asks(&outcome, "door", true), "{outcome:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_proxy_that_asks_for_credentials_is_no_reason_to_touch_a_stream() {
        let mut rig = rig(&["door"]);
        rig.proxy("door", Proxy::Answers401);
        rig.camera_up("door", true);
        rig.round().await;
        for _ in 0..5 {
            let outcome = rig.round_after_grace().await;
            assert!(outcome.intents.is_empty(), "no churn: {outcome:?}");
        }
        assert_eq!(rig.monitor.state("door"), Some(State::Unverified));
        // The same stream, served: judged as usual.
        rig.proxy("door", Proxy::Serves);
        rig.round().await;
        assert_eq!(rig.monitor.state("door"), Some(State::Healthy));
    }

    #[tokio::test(start_paused = true)]
    async fn a_down_camera_is_waited_for_and_its_return_is_seen_between_rounds() {
        let mut rig = rig(&["door"]);
        rig.camera_up("door", false);
        rig.round().await;
        for _ in 0..3 {
            let outcome = rig.round_after_grace().await;
            assert!(outcome.intents.is_empty(), "no churn: {outcome:?}");
        }
        assert_eq!(rig.monitor.state("door"), Some(State::CameraOffline));
        assert!(!rig.monitor.offline_camera_answers(&rig.cameras).await);

        // The camera is back, the server still answers 404 (a stuck go2rtc stream).
        rig.camera_up("door", true);
        assert!(rig.monitor.offline_camera_answers(&rig.cameras).await);
        let outcome = rig.round().await;
        assert!(
            asks(&outcome, "door", true),
            "re-armed at once: {outcome:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_stream_is_not_acted_on_within_its_grace() {
        let mut rig = rig(&["door"]);
        rig.camera_up("door", true);
        let outcome = rig.round().await;
        assert!(outcome.intents.is_empty(), "{outcome:?}");
        tokio::time::advance(GRACE - Duration::from_secs(1)).await;
        assert!(rig.round().await.intents.is_empty());

        let outcome = rig.round_after_grace().await;
        assert!(asks(&outcome, "door", true), "{outcome:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn flowing_streams_are_not_probed_and_idle_ones_once_per_idle_period() {
        let mut rig = rig(&["door", "yard"]);
        rig.proxy("door", Proxy::Serves);
        rig.proxy("yard", Proxy::Serves);
        rig.round().await;
        rig.round_after_grace().await;
        assert_eq!(rig.monitor.state("door"), Some(State::Healthy));
        assert_eq!(rig.monitor.state("yard"), Some(State::Healthy));

        // door carries data from now on; yard stays idle (an on-demand stream nobody watches).
        let probes_before = rig.net.describes.load(Ordering::SeqCst);
        let idle = Settings::default().idle_probe;
        let rounds = idle.as_secs() / 2 * 2;
        for i in 0..rounds {
            rig.server.streams.lock().unwrap().as_mut().unwrap().insert(
                "door".into(),
                StreamObservation {
                    ready: true,
                    bytes_in: 1_000 * (i + 1),
                    consumers: 1,
                },
            );
            tokio::time::advance(Settings::default().interval).await;
            rig.round().await;
        }
        let probes = rig.net.describes.load(Ordering::SeqCst) - probes_before;
        // Two idle periods: yard twice (its turn is spread within the period), door never.
        assert!(
            (1..=2).contains(&probes),
            "{probes} probes of an idle stream"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_eight_probes_run_at_once() {
        let names: Vec<String> = (0..20).map(|i| format!("cam{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut rig = rig(&names);
        rig.round().await;
        let started = Instant::now();
        let outcome = rig.round_after_grace().await;
        assert_eq!(outcome.probes.len(), 20);
        assert_eq!(
            rig.net.most_in_flight.load(Ordering::SeqCst),
            sweep::PROBES_IN_FLIGHT
        );
        // 20 probes of 100 ms, 8 at a time: three waves.
        assert_eq!(started.elapsed(), GRACE + Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_does_not_answer_is_left_alone_and_asked_for_a_resync_when_back() {
        let mut rig = rig(&["door"]);
        rig.proxy("door", Proxy::Serves);
        rig.round().await;
        rig.round_after_grace().await;
        let listed = rig.server.streams.lock().unwrap().take();
        let outcome = rig.round().await;
        assert!(outcome.intents.is_empty(), "{outcome:?}");
        assert_eq!(rig.monitor.state("door"), Some(State::TargetDown));
        assert_eq!(
            rig.net.describes.load(Ordering::SeqCst),
            1,
            "no probe while down"
        );

        *rig.server.streams.lock().unwrap() = listed;
        assert_eq!(rig.round().await.intents, [Intent::Resync]);
    }
}

//! Recovery benchmark: how fast a stream flows again after its camera returns, how many RTSP
//! sessions camsync opens to healthy idle cameras, and what monitoring 1,000 paths per server
//! costs camsync. Everything runs against the simulators on 127.0.0.1.
//!
//! 1. **Recovery.** N cameras per (server, policy), each its own `SimCamera` feeding one
//!    preloaded go2rtc stream or one always-on MediaMTX path (profile `recording`), go down for
//!    an outage drawn uniformly from [0.75 L, 1.25 L] and come back. Measured: the time from
//!    the camera listening again until the stream flows again (go2rtc: its preload producer
//!    connected; MediaMTX: the path `ready` in `/v3/paths/list`), polled every 20 ms. Three
//!    policies, each with its own simulators, run at once:
//!    - `camsync`: the daemon (`daemon::run_with_progress`) with the default health settings;
//!    - `server alone`: camsync syncs once and leaves; only the servers' own retries act;
//!    - `fixed policy`: what peers do — every 30 s a check through the server's API, after 3
//!      failures in a row a restart of the stream (go2rtc: PUT + preload; MediaMTX: delete +
//!      add), then a 60 s cooldown. The servers' own retries run too.
//! 2. **Sessions.** RTSP connections and DESCRIBEs that healthy idle cameras receive while
//!    camsync watches them, with `health.idle_probe` shortened to 10 s, scaled to the default.
//! 3. **Load.** The `camsync run` binary as a child process monitoring 1,000 on-demand paths on
//!    each simulator: CPU time (from `/proc/PID/stat`) and memory (`VmRSS`, `VmHWM`).
//!
//! **On the real servers.** With `CAMSYNC_GO2RTC_BIN` and `CAMSYNC_MEDIAMTX_BIN` set, the
//! recovery part runs against the real go2rtc and MediaMTX instead (camsync and the server
//! alone; the fixed policy, sessions and load stay with the simulators). Each camera then
//! streams real H.264 through a [`Tap`], which is what goes down and comes back: the figure is
//! the time from the tap listening again until the first RTP packet reaches the server, and
//! the tap also tells where the time went (first contact, the server's own dial, its RTSP
//! handshake, the first frame, a keyframe). The servers' APIs are not polled: a list that
//! overlaps a write can crash go2rtc.
//!
//! Run: `cargo bench --bench recovery`. Environment:
//! - `CAMSYNC_BENCH_STREAMS` (default 20, 10 on the real servers): cameras per (server, policy);
//! - `CAMSYNC_BENCH_REPEATS` (default 2): outages per camera and outage length;
//! - `CAMSYNC_BENCH_OUTAGES` (default `10,60`): outage lengths in seconds; one over 5 minutes
//!   is made once per camera;
//! - `CAMSYNC_BENCH_LONG=1`: adds the 10-minute outage (about 15 min more);
//! - `CAMSYNC_BENCH_PARTS` (default `recovery,sessions,load`): which parts run;
//! - `CAMSYNC_BENCH_PATHS` (default 1000): paths per server for the load part.

mod common;

use common::real::{Kind, RealServer};
use common::tap::Tap;
use common::{env_number, percentile, real_servers};

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use camsync::app::{LedgerMode, load_inventory, reconciler};
use camsync::config::process_env;
use camsync::daemon::{Progress, run_with_progress};
use camsync_sim::camera::SimCamera;
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
use serde_json::Value;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How often the benchmark looks whether a stream flows.
const POLL: Duration = Duration::from_millis(20);
/// camsync's default grace for a new or re-registered stream, plus one default round.
const SETTLE: Duration = Duration::from_secs(12);
/// Outages start spread over this much time, so returns meet every phase of the retry cycles.
const STAGGER: Duration = Duration::from_secs(10);
/// A stream not flowing this long after its camera returned counts as not back.
const GIVE_UP: Duration = Duration::from_secs(300);
/// The peers' fixed policy.
const FIXED_CHECK: Duration = Duration::from_secs(30);
const FIXED_FAILURES: u32 = 3;
const FIXED_COOLDOWN: Duration = Duration::from_secs(60);
/// camsync's default `health.idle_probe`, and the shortened one the sessions part uses.
const IDLE_PROBE_DEFAULT: Duration = Duration::from_secs(300);
const IDLE_PROBE_SCALED: Duration = Duration::from_secs(10);
const GOAL: Duration = Duration::from_secs(1);

/// A uniform number in [0, 1).
fn unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Server {
    Go2rtc,
    Mediamtx,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Go2rtc => "go2rtc",
            Server::Mediamtx => "mediamtx",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Policy {
    Camsync,
    ServerAlone,
    Fixed,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::Camsync => "camsync",
            Policy::ServerAlone => "server alone",
            Policy::Fixed => "fixed policy",
        }
    }
}

/// The streams seen flowing at one poll, and when the poll was answered.
#[derive(Clone, Default)]
struct Seen {
    at: Option<Instant>,
    flowing: HashSet<String>,
}

/// The go2rtc and MediaMTX of one site: simulated, or the real binaries.
enum Servers {
    Sim(Go2rtcSim, MediamtxSim),
    Real(RealServer, RealServer),
}

/// One camera's stream on a site.
struct Stream {
    name: String,
    /// Its only server, or `None` for both.
    server: Option<Server>,
    camera: Arc<SimCamera>,
    /// The path on the camera.
    path: String,
    /// On the real servers, the tap the servers dial instead of the camera.
    tap: Option<Arc<Tap>>,
}

impl Stream {
    fn new(name: String, server: Option<Server>, camera: Arc<SimCamera>, path: &str) -> Stream {
        Stream {
            name,
            server,
            camera,
            path: path.to_owned(),
            tap: None,
        }
    }

    /// The URL camsync is given for the camera.
    fn url(&self) -> String {
        match &self.tap {
            Some(tap) => tap.url(&self.path),
            None => self.camera.url(&self.path),
        }
    }
}

/// One go2rtc and MediaMTX, with the cameras behind them and camsync's files.
struct Site {
    dir: tempfile::TempDir,
    servers: Servers,
    streams: Vec<Stream>,
}

impl Site {
    async fn start() -> BenchResult<Site> {
        let servers = Servers::Sim(
            Go2rtcSim::start(Go2rtcSimOptions::default()).await?,
            MediamtxSim::start(MediamtxSimOptions::default()).await?,
        );
        Self::with(servers)
    }

    async fn start_real() -> BenchResult<Site> {
        let servers = Servers::Real(
            RealServer::start(Kind::Go2rtc, "").await,
            RealServer::start(Kind::Mediamtx, "").await,
        );
        Self::with(servers)
    }

    fn with(servers: Servers) -> BenchResult<Site> {
        Ok(Site {
            dir: tempfile::tempdir()?,
            servers,
            streams: Vec::new(),
        })
    }

    /// The simulators, for the parts that run on them only.
    fn sims(&self) -> BenchResult<(&Go2rtcSim, &MediamtxSim)> {
        match &self.servers {
            Servers::Sim(go2rtc, mtx) => Ok((go2rtc, mtx)),
            Servers::Real(..) => Err("this part runs on the simulators only".into()),
        }
    }

    /// (API URL, RTSP URL) of `server`.
    fn urls(&self, server: Server) -> (String, String) {
        match (&self.servers, server) {
            (Servers::Sim(g, _), Server::Go2rtc) => (g.api_url(), g.rtsp_url()),
            (Servers::Sim(_, m), Server::Mediamtx) => (m.api_url(), m.rtsp_url()),
            (Servers::Real(g, _), Server::Go2rtc) => (g.api_url(), g.rtsp_url()),
            (Servers::Real(_, m), Server::Mediamtx) => (m.api_url(), m.rtsp_url()),
        }
    }

    /// Writes made to `server` so far (the simulators count them; the real servers do not).
    fn writes(&self, server: Server) -> Option<u64> {
        let (go2rtc, mtx) = self.sims().ok()?;
        Some(match server {
            Server::Go2rtc => go2rtc.write_count(),
            Server::Mediamtx => mtx.write_count(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes camsync.yaml (`health` is appended verbatim) and cameras.yaml.
    fn write_files(
        &self,
        health: &str,
        profile_of: impl Fn(usize) -> &'static str,
    ) -> BenchResult<()> {
        let ((g_api, g_rtsp), (m_api, m_rtsp)) =
            (self.urls(Server::Go2rtc), self.urls(Server::Mediamtx));
        let config = format!(
            "source:\n  file: cameras.yaml\ntargets:\n  - name: go2rtc\n    kind: go2rtc\n    api: {g_api}\n    rtsp: {g_rtsp}\n  - name: mediamtx\n    kind: mediamtx\n    api: {m_api}\n    rtsp: {m_rtsp}\nstate: camsync.db\n{health}",
        );
        std::fs::write(self.path("camsync.yaml"), config)?;
        let mut cameras = String::from("cameras:\n");
        for (i, stream) in self.streams.iter().enumerate() {
            cameras.push_str(&format!(
                "  - name: {}\n    url: {}\n    profile: {}\n",
                stream.name,
                stream.url(),
                profile_of(i),
            ));
            if let Some(server) = stream.server {
                cameras.push_str(&format!("    targets: [{}]\n", server.name()));
            }
        }
        std::fs::write(self.path("cameras.yaml"), cameras)?;
        Ok(())
    }

    fn config(&self) -> BenchResult<camsync::config::Config> {
        Ok(camsync::config::load(
            &self.path("camsync.yaml"),
            &process_env,
        )?)
    }

    /// One sync, as `camsync sync` makes it.
    async fn sync_once(&self) -> BenchResult<()> {
        let config = self.config()?;
        let inventory = load_inventory(&config).await?;
        let report = reconciler(&config, LedgerMode::ReadWrite)?
            .sync(&inventory)
            .await;
        if !report.ok() {
            return Err(format!("sync failed:\n{}", report.render_text()).into());
        }
        Ok(())
    }

    /// Starts the daemon in this process; cancel `stop` to end it.
    async fn start_daemon(&self, stop: &CancellationToken) -> BenchResult<()> {
        let (tx, mut progress) = watch::channel(Progress::default());
        tokio::spawn(run_with_progress(self.config()?, stop.clone(), tx));
        tokio::time::timeout(Duration::from_secs(30), progress.wait_for(|s| s.syncs >= 1))
            .await
            .map_err(|_| "the daemon's first sync took over 30 s")??;
        Ok(())
    }

    fn names(&self, server: Server) -> Vec<String> {
        self.streams
            .iter()
            .filter(|s| s.server == Some(server))
            .map(|s| s.name.clone())
            .collect()
    }

    /// Polls every [`POLL`] which streams flow, until `stop`.
    fn watch_flowing(
        &self,
        server: Server,
        stop: &CancellationToken,
    ) -> BenchResult<watch::Receiver<Seen>> {
        let (tx, rx) = watch::channel(Seen::default());
        let stop = stop.clone();
        let names = self.names(server);
        let (go2rtc, mtx) = self.sims()?;
        let go2rtc = go2rtc.clone();
        let list = format!("{}/v3/paths/list?itemsPerPage=1000", mtx.api_url());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut tick = tokio::time::interval(POLL);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let flowing = match server {
                    // The preload's producer is connected: its counter grows from that moment
                    // (the simulator's stuck-stream mode is off in this benchmark).
                    Server::Go2rtc => names
                        .iter()
                        .filter(|n| go2rtc.producer_connected(n))
                        .cloned()
                        .collect(),
                    Server::Mediamtx => match ready_paths(&client, &list).await {
                        Some(ready) => ready,
                        None => continue,
                    },
                };
                tx.send_replace(Seen {
                    at: Some(Instant::now()),
                    flowing,
                });
            }
        });
        Ok(rx)
    }
}

/// The paths MediaMTX's API lists as ready.
async fn ready_paths(client: &reqwest::Client, url: &str) -> Option<HashSet<String>> {
    let list: Value = client.get(url).send().await.ok()?.json().await.ok()?;
    Some(
        list["items"]
            .as_array()?
            .iter()
            .filter(|p| p["ready"] == Value::Bool(true))
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect(),
    )
}

/// Waits until `name` is seen flowing by a poll answered after `since`; when, or `None`.
async fn flowing_after(
    seen: &mut watch::Receiver<Seen>,
    name: &str,
    since: Instant,
    limit: Duration,
) -> Option<Instant> {
    let found = tokio::time::timeout(
        limit,
        seen.wait_for(|s| s.at.is_some_and(|at| at >= since) && s.flowing.contains(name)),
    )
    .await;
    match found {
        Ok(Ok(s)) => s.at,
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Recovery

/// The peers' policy for one stream: check every 30 s through the API; after 3 failures in a
/// row restart the stream, then leave it alone for 60 s.
struct FixedPolicy {
    client: reqwest::Client,
    server: Server,
    api: String,
    /// The peer makes one API call at a time per server (go2rtc crashes on overlaps).
    serial: Arc<Mutex<()>>,
    restarts: Arc<AtomicU64>,
}

impl FixedPolicy {
    async fn run(self, name: String, source: String, stop: CancellationToken) {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(FIXED_CHECK.mul_f64(unit())) => {}
        }
        let mut tick = tokio::time::interval(FIXED_CHECK);
        let (mut failures, mut last_restart, mut last_bytes) = (0, None::<Instant>, None);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if self.healthy(&name, &mut last_bytes).await {
                failures = 0;
                continue;
            }
            failures += 1;
            let cooled = last_restart.is_none_or(|at| at.elapsed() >= FIXED_COOLDOWN);
            if failures >= FIXED_FAILURES && cooled {
                self.restart(&name, &source).await;
                self.restarts.fetch_add(1, Ordering::Relaxed);
                (failures, last_restart, last_bytes) = (0, Some(Instant::now()), None);
            }
        }
    }

    /// go2rtc: the producer's `bytes_recv` grew since the last check; MediaMTX: `ready`.
    async fn healthy(&self, name: &str, last_bytes: &mut Option<u64>) -> bool {
        let _one = self.serial.lock().await;
        match self.server {
            Server::Go2rtc => {
                let url = format!("{}/api/streams", self.api);
                let Some(streams) = self.get(&url).await else {
                    return false;
                };
                let bytes = streams[name]["producers"]
                    .as_array()
                    .and_then(|p| p.iter().find_map(|p| p["bytes_recv"].as_u64()));
                let grew = match (*last_bytes, bytes) {
                    (Some(before), Some(now)) => now > before,
                    (None, Some(_)) => true,
                    _ => false,
                };
                *last_bytes = bytes;
                grew
            }
            Server::Mediamtx => {
                let url = format!("{}/v3/paths/get/{name}", self.api);
                self.get(&url)
                    .await
                    .is_some_and(|path| path["ready"] == Value::Bool(true))
            }
        }
    }

    async fn get(&self, url: &str) -> Option<Value> {
        self.client.get(url).send().await.ok()?.json().await.ok()
    }

    /// go2rtc: PUT the stream and its preload (which fails while the camera is down);
    /// MediaMTX: delete + add the always-on path.
    async fn restart(&self, name: &str, source: &str) {
        let _one = self.serial.lock().await;
        let calls = match self.server {
            Server::Go2rtc => vec![
                self.client
                    .put(format!("{}/api/streams", self.api))
                    .query(&[("name", name), ("src", source)]),
                self.client
                    .put(format!("{}/api/preload", self.api))
                    .query(&[("src", name)]),
            ],
            Server::Mediamtx => vec![
                self.client
                    .delete(format!("{}/v3/config/paths/delete/{name}", self.api)),
                self.client
                    .post(format!("{}/v3/config/paths/add/{name}", self.api))
                    .json(&serde_json::json!({ "source": source, "sourceOnDemand": false })),
            ],
        };
        for call in calls {
            // A failed preload (camera down) is what the peer meets; it carries on.
            let _ = call.send().await;
        }
    }
}

/// One policy's site with its watchers running, ready for outages.
struct PolicyRun {
    policy: Policy,
    site: Site,
    seen: BTreeMap<Server, watch::Receiver<Seen>>,
    /// The fixed policy's stream restarts, per server.
    restarts: BTreeMap<Server, Arc<AtomicU64>>,
}

/// The policies compared: the fixed policy runs on the simulators only.
fn policies(real: bool) -> &'static [Policy] {
    if real {
        &[Policy::Camsync, Policy::ServerAlone]
    } else {
        &[Policy::Camsync, Policy::ServerAlone, Policy::Fixed]
    }
}

async fn start_policy(
    policy: Policy,
    n: usize,
    real: bool,
    stop: &CancellationToken,
) -> BenchResult<PolicyRun> {
    let mut site = if real {
        Site::start_real().await?
    } else {
        Site::start().await?
    };
    for server in [Server::Go2rtc, Server::Mediamtx] {
        for i in 0..n {
            let name = format!("{}{i:03}", &server.name()[..1]);
            let camera = Arc::new(SimCamera::start().await?);
            let mut stream = Stream::new(name, Some(server), camera, "stream");
            if real {
                stream.tap = Some(Arc::new(Tap::start(stream.camera.port()).await?));
            }
            site.streams.push(stream);
        }
    }
    let health = match policy {
        Policy::Camsync => "",
        _ => "health:\n  enabled: false\n",
    };
    let started = Instant::now();
    site.write_files(health, |_| "recording")?;
    match policy {
        Policy::Camsync => site.start_daemon(stop).await?,
        _ => site.sync_once().await?,
    }
    let mut restarts = BTreeMap::new();
    if policy == Policy::Fixed {
        for server in [Server::Go2rtc, Server::Mediamtx] {
            let count: &Arc<AtomicU64> = restarts.entry(server).or_default();
            let serial = Arc::new(Mutex::new(()));
            let api = site.urls(server).0;
            for stream in site.streams.iter().filter(|s| s.server == Some(server)) {
                let peer = FixedPolicy {
                    client: reqwest::Client::new(),
                    server,
                    api: api.clone(),
                    serial: serial.clone(),
                    restarts: count.clone(),
                };
                tokio::spawn(peer.run(stream.name.clone(), stream.url(), stop.clone()));
            }
        }
    }
    let mut seen = BTreeMap::new();
    for server in [Server::Go2rtc, Server::Mediamtx] {
        let up = if real {
            let taps: Vec<_> = site
                .streams
                .iter()
                .filter(|s| s.server == Some(server))
                .filter_map(|s| s.tap.clone())
                .collect();
            wait_until(Duration::from_secs(30), || {
                taps.iter().all(|t| t.media_since(started).is_some())
            })
            .await
        } else {
            let mut rx = site.watch_flowing(server, stop)?;
            let all = site.names(server);
            let up = tokio::time::timeout(
                Duration::from_secs(30),
                rx.wait_for(|s| all.iter().all(|n| s.flowing.contains(n))),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            seen.insert(server, rx);
            up
        };
        if !up {
            return Err(format!(
                "{}: not every {} stream flows after 30 s",
                policy.name(),
                server.name()
            )
            .into());
        }
    }
    Ok(PolicyRun {
        policy,
        site,
        seen,
        restarts,
    })
}

/// Where the time went after a tapped camera came back, each from its return.
#[derive(Clone, Copy, Default)]
struct Parts {
    /// The first connection to the camera (camsync's watch, or the server's own redial).
    contact: Duration,
    /// The connection that brought the stream back was accepted (the server's dial began).
    dial: Duration,
    /// That connection sent `PLAY` (the server's RTSP handshake done).
    play: Duration,
    /// The first RTP packet reached the server: the camera's first picture, a keyframe (the
    /// simulated camera starts every session with an IDR).
    media: Duration,
}

impl Parts {
    fn of(tap: &Tap, back: Instant) -> Option<Parts> {
        let connections = tap.since(back);
        let first = connections.first()?;
        let flowed = connections
            .iter()
            .filter(|c| c.media.is_some())
            .min_by_key(|c| c.media)?;
        Some(Parts {
            contact: first.accepted - back,
            dial: flowed.accepted - back,
            play: flowed.play? - back,
            media: flowed.media? - back,
        })
    }
}

/// One recovery: the time until the stream flowed (`None`: not within [`GIVE_UP`]), and, on
/// the real servers, where it went.
type Sample = (Option<Duration>, Option<Parts>);

/// One stream under outages: down and up through its tap on the real servers, its camera on
/// the simulators; flowing as the tap or the poller sees it.
struct Outages {
    name: String,
    camera: Arc<SimCamera>,
    tap: Option<Arc<Tap>>,
    seen: Option<watch::Receiver<Seen>>,
}

impl Outages {
    async fn down(&self) {
        match &self.tap {
            Some(tap) => tap.stop(),
            None => self.camera.stop().await,
        }
    }

    async fn up(&self) -> std::io::Result<()> {
        match &self.tap {
            Some(tap) => tap.resume().await,
            None => self.camera.resume().await,
        }
    }

    async fn flowing_after(&mut self, since: Instant) -> Option<Instant> {
        if let Some(seen) = &mut self.seen {
            return flowing_after(seen, &self.name, since, GIVE_UP).await;
        }
        let tap = self.tap.clone()?;
        let until = since + GIVE_UP;
        while Instant::now() < until {
            if let Some(at) = tap.media_since(since) {
                return Some(at);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }

    /// Each time, down for [0.75, 1.25] × `outage`, then the time from the return until the
    /// stream flows.
    async fn run(mut self, outage: Duration, repeats: u64) -> BenchResult<Vec<Sample>> {
        let mut samples = Vec::new();
        for _ in 0..repeats {
            tokio::time::sleep(SETTLE + STAGGER.mul_f64(unit())).await;
            self.down().await;
            tokio::time::sleep(outage.mul_f64(0.75 + unit() / 2.0)).await;
            self.up().await?;
            let back = Instant::now();
            let flowing = self.flowing_after(back).await;
            let parts = self.tap.as_deref().and_then(|tap| Parts::of(tap, back));
            samples.push((flowing.map(|at| at - back), parts));
        }
        Ok(samples)
    }
}

/// `p50 / p95` of `values`.
fn quantiles(mut values: Vec<Duration>) -> String {
    values.sort();
    let shown = |d: Option<Duration>| d.map_or("-".to_owned(), secs);
    format!(
        "{} / {}",
        shown(percentile(&values, 0.5)),
        shown(percentile(&values, 0.95))
    )
}

/// Where the time went, per row: p50 / p95 of each part, from the camera's return.
fn print_parts(rows: &BTreeMap<(Server, Policy), Vec<Parts>>) {
    println!("where the time went (p50 / p95 from the camera's return; tapped connections):");
    println!(
        "{:<9} {:<13} {:>15} {:>15} {:>15} {:>15}",
        "server", "policy", "first contact", "dial began", "PLAY sent", "first frame"
    );
    for ((server, policy), parts) in rows {
        let part = |f: fn(&Parts) -> Duration| quantiles(parts.iter().map(f).collect());
        println!(
            "{:<9} {:<13} {:>15} {:>15} {:>15} {:>15}",
            server.name(),
            policy.name(),
            part(|p| p.contact),
            part(|p| p.dial),
            part(|p| p.play),
            part(|p| p.media),
        );
    }
}

async fn recovery(outage: Duration, n: usize, repeats: u64, real: bool) -> BenchResult<()> {
    let stop = CancellationToken::new();
    let mut runs = Vec::new();
    for &policy in policies(real) {
        runs.push(start_policy(policy, n, real, &stop).await?);
    }
    let writes_before: Vec<[Option<u64>; 2]> = runs
        .iter()
        .map(|r| [Server::Go2rtc, Server::Mediamtx].map(|s| r.site.writes(s)))
        .collect();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for run in &runs {
        for stream in &run.site.streams {
            let Some(server) = stream.server else {
                continue;
            };
            let key = (run.policy, server);
            let work = Outages {
                name: stream.name.clone(),
                camera: stream.camera.clone(),
                tap: stream.tap.clone(),
                seen: run.seen.get(&server).cloned(),
            };
            tasks.spawn(async move { (key, work.run(outage, repeats).await) });
        }
    }
    let mut samples: BTreeMap<(Policy, Server), Vec<Sample>> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (key, result) = done?;
        samples.entry(key).or_default().extend(result?);
    }
    let wall = started.elapsed();
    stop.cancel();

    println!(
        "\noutage {} (each drawn from {}–{}), {n} cameras × {repeats} outages per row, {} servers, wall {}",
        secs(outage),
        secs(outage.mul_f64(0.75)),
        secs(outage.mul_f64(1.25)),
        if real { "REAL" } else { "simulated" },
        secs(wall)
    );
    if real {
        println!(
            "time from the camera answering again until its first RTP packet reaches the server (seen by the tap)"
        );
    } else {
        println!(
            "time from the camera answering again until its stream flows (polled every {} ms)",
            POLL.as_millis()
        );
    }
    println!(
        "{:<9} {:<13} {:>8} {:>8} {:>8} {:>8} {:>9} {:>12}",
        "server", "policy", "p50", "p95", "max", "not back", "writes", "peer restarts"
    );
    let mut p95s = BTreeMap::new();
    let mut p50s = BTreeMap::new();
    let mut parts = BTreeMap::new();
    for (i, server) in [Server::Go2rtc, Server::Mediamtx].into_iter().enumerate() {
        for (run, before) in runs.iter().zip(&writes_before) {
            let all = samples.remove(&(run.policy, server)).unwrap_or_default();
            let missing = all.iter().filter(|s| s.0.is_none()).count();
            let mut back: Vec<Duration> = all.iter().filter_map(|s| s.0).collect();
            back.sort();
            let row_parts: Vec<Parts> = all.iter().filter_map(|s| s.1).collect();
            if !row_parts.is_empty() {
                parts.insert((server, run.policy), row_parts);
            }
            let shown = |d: Option<Duration>| d.map_or("-".to_owned(), secs);
            let writes = match (run.site.writes(server), before[i]) {
                (Some(now), Some(before)) => (now - before).to_string(),
                _ => "-".to_owned(),
            };
            let restarts = run
                .restarts
                .get(&server)
                .map_or("-".to_owned(), |r| r.load(Ordering::Relaxed).to_string());
            println!(
                "{:<9} {:<13} {:>8} {:>8} {:>8} {:>8} {:>9} {:>12}",
                server.name(),
                run.policy.name(),
                shown(percentile(&back, 0.5)),
                shown(percentile(&back, 0.95)),
                shown(back.last().copied()),
                missing,
                writes,
                restarts,
            );
            if missing == 0 {
                p95s.insert((run.policy, server), percentile(&back, 0.95));
                p50s.insert((run.policy, server), percentile(&back, 0.5));
            }
        }
    }
    if !parts.is_empty() {
        print_parts(&parts);
    }
    for server in [Server::Go2rtc, Server::Mediamtx] {
        let camsync = p95s.get(&(Policy::Camsync, server)).copied().flatten();
        let verdict = match camsync {
            Some(p95) if p95 <= GOAL => "met",
            Some(_) => "MISSED",
            None => "MISSED (a stream did not come back)",
        };
        let ratio = |policy| {
            let other = p50s.get(&(policy, server)).copied().flatten()?;
            let ours = p50s.get(&(Policy::Camsync, server)).copied().flatten()?;
            Some(other.as_secs_f64() / ours.as_secs_f64().max(1e-3))
        };
        println!(
            "goal: camsync p95 ≤ {} on {}: {} ({verdict}); p50 {} faster than the server alone, {} than the fixed policy",
            secs(GOAL),
            server.name(),
            camsync.map_or("-".to_owned(), secs),
            ratio(Policy::ServerAlone).map_or("-".to_owned(), |r| format!("{r:.0}×")),
            ratio(Policy::Fixed).map_or("-".to_owned(), |r| format!("{r:.0}×")),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. RTSP sessions to healthy idle cameras

async fn sessions(per_group: usize, window: Duration) -> BenchResult<()> {
    let stop = CancellationToken::new();
    let groups = [
        (Server::Go2rtc, "viewing"),
        (Server::Go2rtc, "recording"),
        (Server::Mediamtx, "viewing"),
        (Server::Mediamtx, "recording"),
    ];
    let profile_of = move |i: usize| groups[i / per_group].1;
    let mut sites = Vec::new();
    for with_camsync in [true, false] {
        let mut site = Site::start().await?;
        for (g, (server, _)) in groups.iter().enumerate() {
            for i in 0..per_group {
                let camera = Arc::new(SimCamera::start().await?);
                site.streams.push(Stream::new(
                    format!("c{g}{i:02}"),
                    Some(*server),
                    camera,
                    "stream",
                ));
            }
        }
        if with_camsync {
            site.write_files(
                &format!("health:\n  idle_probe: {}s\n", IDLE_PROBE_SCALED.as_secs()),
                profile_of,
            )?;
            site.start_daemon(&stop).await?;
        } else {
            site.write_files("health:\n  enabled: false\n", profile_of)?;
            site.sync_once().await?;
        }
        sites.push(site);
    }
    // Past the grace period and the first idle probes' spread, every stream settled.
    tokio::time::sleep(SETTLE + IDLE_PROBE_SCALED).await;
    let counts = |site: &Site| -> Vec<(u64, u64)> {
        site.streams
            .iter()
            .map(|s| (s.camera.connections(), s.camera.describe_count()))
            .collect()
    };
    let before: Vec<_> = sites.iter().map(counts).collect();
    tokio::time::sleep(window).await;
    let after: Vec<_> = sites.iter().map(counts).collect();
    stop.cancel();

    let hour = 3600.0 / window.as_secs_f64();
    println!(
        "\nRTSP sessions per healthy idle camera per hour: {per_group} cameras per row, window {}",
        secs(window)
    );
    println!(
        "{:<19} {:>22} {:>26} {:>13} {:>24}",
        "stream",
        "server alone",
        format!("camsync idle_probe {}s", IDLE_PROBE_SCALED.as_secs()),
        "probe period",
        "camsync at default 5m"
    );
    for (g, (server, profile)) in groups.iter().enumerate() {
        let per_hour = |site: usize| {
            let range = g * per_group..(g + 1) * per_group;
            let (mut conns, mut describes) = (0, 0);
            for i in range {
                conns += after[site][i].0 - before[site][i].0;
                describes += after[site][i].1 - before[site][i].1;
            }
            let per = |x: u64| x as f64 / per_group as f64 * hour;
            (per(conns), per(describes))
        };
        let (cc, cd) = per_hour(0);
        let (sc, sd) = per_hour(1);
        // camsync's share: each of its idle probes is one DESCRIBE at the camera. A probe
        // falls due at the first round after `idle_probe`, so its period is `idle_probe` plus
        // the wait for that round, whatever `idle_probe` is: measured here, carried over.
        let probes = cd - sd;
        let (period, scale) = if probes > 0.0 {
            let period = 3600.0 / probes;
            let late = (period - IDLE_PROBE_SCALED.as_secs_f64()).max(0.0);
            (
                format!("{period:.1} s"),
                period / (IDLE_PROBE_DEFAULT.as_secs_f64() + late),
            )
        } else {
            ("-".to_owned(), 0.0)
        };
        println!(
            "{:<19} {:>22} {:>26} {:>13} {:>24}",
            format!("{} {profile}", server.name()),
            format!("{sc:.0} conn, {sd:.0} DESCRIBE"),
            format!("{cc:.0} conn, {cd:.0} DESCRIBE"),
            period,
            format!(
                "{:.1} conn, {:.1} DESCRIBE",
                (cc - sc) * scale + sc,
                probes * scale + sd
            ),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. CPU and memory with 1,000 monitored paths per server

/// CPU time (user + system) of process `pid`, from `/proc/PID/stat`.
fn cpu_time(pid: u32, tick_hz: f64) -> BenchResult<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').ok_or("unreadable /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: u64 = fields.get(11).ok_or("short stat")?.parse::<u64>()?
        + fields.get(12).ok_or("short stat")?.parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / tick_hz))
}

/// A `kB` line of `/proc/PID/status`, in MiB.
fn status_mib(pid: u32, key: &str) -> BenchResult<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .ok_or_else(|| format!("no {key} in /proc status"))?;
    let kb: f64 = line
        .trim_start_matches(key)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb / 1024.0)
}

/// Clock ticks per second for `/proc` CPU times (`getconf CLK_TCK`; Linux uses 100).
fn tick_hz() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

async fn load(paths: usize, window: Duration) -> BenchResult<()> {
    let mut site = Site::start().await?;
    // A few cameras serve every path: a simulated camera answers DESCRIBE for any path.
    let cameras: Vec<Arc<SimCamera>> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(Arc::new(SimCamera::start().await?));
        }
        v
    };
    for i in 0..paths {
        let camera = cameras[i % cameras.len()].clone();
        site.streams.push(Stream::new(
            format!("cam{i:04}"),
            None,
            camera,
            &format!("s{i}"),
        ));
    }
    site.write_files("", |_| "viewing")?;
    let (go2rtc, mtx) = site.sims()?;
    let log = std::fs::File::create(site.path("camsync.log"))?;
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_camsync"))
        .arg("--config")
        .arg(site.path("camsync.yaml"))
        .arg("--log")
        .arg("warn")
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()?;
    let pid = child.id();
    let synced = wait_until(Duration::from_secs(120), || {
        go2rtc.stream_names().len() == paths && mtx.path_names().len() == paths
    })
    .await;
    if !synced {
        let _ = child.kill();
        let _ = child.wait();
        return Err(log_tail(&site.path("camsync.log")).into());
    }
    let hz = tick_hz();
    let sync_wall = started.elapsed();
    let sync_cpu = cpu_time(pid, hz)?;
    tokio::time::sleep(SETTLE).await;
    let cpu0 = cpu_time(pid, hz)?;
    let requests0 = go2rtc.request_count() + mtx.request_count();
    let writes0 = go2rtc.write_count() + mtx.write_count();
    let conns0: u64 = cameras.iter().map(|c| c.connections()).sum();
    tokio::time::sleep(window).await;
    let cpu = cpu_time(pid, hz)? - cpu0;
    let rss = status_mib(pid, "VmRSS")?;
    let hwm = status_mib(pid, "VmHWM")?;
    let requests = go2rtc.request_count() + mtx.request_count() - requests0;
    let writes = go2rtc.write_count() + mtx.write_count() - writes0;
    let conns = cameras.iter().map(|c| c.connections()).sum::<u64>() - conns0;
    child.kill()?;
    child.wait()?;

    println!(
        "\ncamsync run (release binary, child process) monitoring {paths} on-demand paths on go2rtc and {paths} on MediaMTX, health defaults"
    );
    println!(
        "first sync of {} writes: {} wall, {} CPU",
        2 * paths,
        secs(sync_wall),
        secs(sync_cpu)
    );
    println!(
        "monitoring window {}: CPU {} ({:.1}% of one core), {requests} API requests, {writes} writes, {conns} camera connections (idle probes)",
        secs(window),
        secs(cpu),
        cpu.as_secs_f64() / window.as_secs_f64() * 100.0
    );
    println!("memory: VmRSS {rss:.1} MiB, VmHWM (peak) {hwm:.1} MiB");
    Ok(())
}

async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "camsync did not sync every path; its log ends:\n{}",
        lines[lines.len().saturating_sub(20)..].join("\n")
    )
}

fn main() -> BenchResult<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let real = real_servers();
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Sessions and load count calls the simulators see; they run on the simulators only.
        let parts = std::env::var("CAMSYNC_BENCH_PARTS").unwrap_or_else(|_| {
            if real {
                "recovery"
            } else {
                "recovery,sessions,load"
            }
            .to_owned()
        });
        let n = env_number("CAMSYNC_BENCH_STREAMS", if real { 10 } else { 20 }) as usize;
        let repeats = env_number("CAMSYNC_BENCH_REPEATS", 2);
        println!(
            "camsync recovery benchmark, {} servers and simulated cameras on 127.0.0.1 ({parts})",
            if real { "REAL" } else { "simulated" }
        );
        if parts.contains("recovery") {
            let mut outages: Vec<u64> = std::env::var("CAMSYNC_BENCH_OUTAGES")
                .unwrap_or_else(|_| "10,60".to_owned())
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect();
            if std::env::var("CAMSYNC_BENCH_LONG").is_ok_and(|v| v == "1") {
                outages.push(600);
            }
            for secs in outages {
                // A long outage is made once per camera: each costs its whole length in wall time.
                let repeats = if secs > 300 { 1 } else { repeats };
                recovery(Duration::from_secs(secs), n, repeats, real).await?;
            }
        }
        if parts.contains("sessions") {
            sessions(5, Duration::from_secs(60)).await?;
        }
        if parts.contains("load") {
            let paths = env_number("CAMSYNC_BENCH_PATHS", 1000) as usize;
            load(paths, Duration::from_secs(60)).await?;
        }
        Ok(())
    })
}

//! A go2rtc simulator: the HTTP API (`/api`, `/api/streams`, `/api/preload`, `/api/restart`)
//! and the RTSP proxy's `DESCRIBE`, answering like go2rtc 1.9.14 as recorded in
//! `SERVERS.md`, on 127.0.0.1 ports chosen by the OS.
//!
//! It owns two stream maps: the one in memory (what the API and RTSP serve) and the one in its
//! YAML file (what a start or restart loads). The file is simulated in memory
//! ([`Go2rtcSimOptions::file_streams`]) or, with [`Go2rtcSimOptions::config_file`], a real file:
//! read at start and at every restart (`streams:` and `preload:`), with `${VAR}` and
//! `${VAR:default}` expanded textually from [`Go2rtcSimOptions::env`] first (an unset variable
//! stays literally `${VAR}`), and never watched: an edit takes effect at the next restart. A
//! file that cannot be read or parsed loads no streams (go2rtc logs it and starts anyway).
//! `PUT`/`DELETE` and preload writes change memory first and then the file — a real one is
//! patched in place, entry by entry, as written (references stay references); a read-only file
//! (simulated, or refused by the OS) turns the answer into 400 with the error text although
//! memory changed, as in go2rtc.
//!
//! Camera connections (SERVERS.md, "Camera connections and their failure modes"):
//! - A stream's producer is connected only while it has consumers. A preload is a permanent
//!   consumer: `PUT /api/preload` dials first (500 if the camera is down) and keeps that
//!   connection; a file's preloads are dialed at start and restart. An RTSP `DESCRIBE` of a
//!   stream without a preload attaches a consumer for that request only (it dials, answers and
//!   leaves), so it leaves nothing to see in the listing.
//! - `GET /api/streams` shows a preloaded stream's connected producer like go2rtc
//!   (`remote_addr`, `medias`, `receivers`, `bytes_recv`, …) and its preload consumer in
//!   `consumers` (null without one). `bytes_recv` is computed when read: 50 kB per second of
//!   data flow. Data stops flowing (the counter freezes) when the camera is stopped (its
//!   connection closes) or hung (a keepalive `OPTIONS` on a second connection to the camera,
//!   every 0.2 s, is not answered within 0.3 s; it flows again when answered). A hung camera
//!   is dropped after go2rtc's 5 s read timeout. The keepalive connection and its `OPTIONS`
//!   show in [`crate::camera::SimCamera`]'s counters.
//! - A lost camera is redialed at once, then after each failed dial on go2rtc's fixed
//!   schedule ([`redial_delay`]: 1 s ×5, 5 s ×5, 10 s ×10, then 60 s, no jitter), forever
//!   while the preload remains; the preload consumer stays attached and `DESCRIBE` answers 200
//!   from cached tracks meanwhile. A camera back between dials waits for the next one.
//!   Re-`PUT /api/preload` dials at once and replaces the loop; `PUT` or `DELETE` of the
//!   stream makes a new stream object (no preload, no producer, no history).
//! - An opt-in wedged server ([`Go2rtcSim::set_wedged`], issues #184, #953): every `DESCRIBE`
//!   answers 404 while the cameras and the API answer; replacing a stream does not help, only
//!   a restart (`POST /api/restart` or the process) does.
//! - Opt-in stuck streams ([`Go2rtcSim::set_stuck_after_reboot`], issues #762, #1389, #1483,
//!   #2387): a stream object whose camera was up, went away and came back answers `DESCRIBE`
//!   404 and receives no data until it is replaced or the simulator restarts. The switch is
//!   read when the camera comes back; turning it off does not heal stuck streams.
//!
//! Invariants:
//! - Like go2rtc, the handlers take no lock around the stream map: a write to `/api/streams`
//!   that overlaps another write, or a read of `/api/streams` that meets a write in progress,
//!   **crashes** the simulator ([`Go2rtcSim::crashed`] gives Go's fatal error): both listeners
//!   close and every open connection drops, in-flight requests included, as when the process
//!   dies. Each write holds the map for [`Go2rtcSimOptions::write_hold`] (so tests can make an
//!   overlap certain) and applies its change at the end; reads are instantaneous.
//!   `/api/preload` and RTSP lookups do not take part.
//! - The ports never change: [`Go2rtcSim::restart`] (also after a crash) listens on the same
//!   ones, with memory reloaded from the file.
//! - The environment changes only with a full restart ([`Go2rtcSim::restart_with_env`]);
//!   `POST /api/restart` re-executes the same process and keeps it.
//! - Only loopback cameras are ever contacted; any other host fails at once, as unreachable.
//! - API auth, when configured, applies to every client (go2rtc's `local_auth: true`).
//!
//! Not simulated: media (only counters move), consumers other than preloads and the
//! one-request `DESCRIBE` consumer (so no `bytes_send`, and no dropping of a consumer after
//! ~60 s without data), the orphaned old stream object that keeps reconnecting after a
//! delete + add (#2403: replaced objects stop at once here), the real shape of a preload
//! consumer's JSON (here `id`, `format_name: "preload"`, `medias`), a stuck state for the
//! probe query (`GET ?src=N&video`, which dials as usual), `POST /api/streams` (always
//! 400), PATCH's aliasing of a stream to another, `base_path`, go2rtc's refusal to patch a flow-style `streams: {}` (the file
//! is edited like camsync's own [`camsync_formats::yaml_edit`] does). `POST /api/restart` resets the
//! state in place without closing connections, so the client still reads its 200.

mod api;
mod config;
mod json;
mod process;
mod producer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::config::{ConfigStore, FileEdit};
use self::process::Running;
use self::producer::StreamObject;
pub use self::producer::redial_delay;

/// The go2rtc release it answers as.
const VERSION: &str = "1.9.14";

/// Stream name → sources, in order.
type Streams = BTreeMap<String, Vec<String>>;
/// A process environment: variable → value.
type Env = BTreeMap<String, String>;

/// How a [`Go2rtcSim`] starts.
#[derive(Debug, Clone)]
pub struct Go2rtcSimOptions {
    /// Streams in its simulated YAML file at start (and so in memory); ignored with
    /// `config_file`. Default: none.
    pub file_streams: BTreeMap<String, Vec<String>>,
    /// Whether `PUT`/`DELETE` and preload writes can persist to the file; false makes them
    /// fail as on a read-only file system, without touching a real file. Default: true.
    pub config_writable: bool,
    /// A real YAML file to start from instead of `file_streams`: read at start and at every
    /// restart, never watched, and patched in place by API writes. A missing file holds no
    /// streams (the first write creates it). Default: none.
    pub config_file: Option<PathBuf>,
    /// The environment go2rtc was started with, for the `${VAR}` references in
    /// `config_file`. Default: empty.
    pub env: BTreeMap<String, String>,
    /// How long each write to `/api/streams` holds the stream map. Default: zero.
    pub write_hold: Duration,
    /// API Basic auth user; `None` (default) = no auth.
    pub username: Option<String>,
    /// API Basic auth password (with `username`).
    pub password: Option<String>,
}

impl Default for Go2rtcSimOptions {
    fn default() -> Self {
        Go2rtcSimOptions {
            file_streams: BTreeMap::new(),
            config_writable: true,
            config_file: None,
            env: BTreeMap::new(),
            write_hold: Duration::ZERO,
            username: None,
            password: None,
        }
    }
}

/// A running go2rtc simulator; clones share it. Dropping the last clone stops it.
#[derive(Clone)]
pub struct Go2rtcSim {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// `None` after [`Go2rtcSim::shutdown`]; the lock also serialises restarts.
    running: tokio::sync::Mutex<Option<Running>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.state().kill.cancel();
    }
}

/// Everything the handlers share.
struct Shared {
    api_port: u16,
    rtsp_port: u16,
    write_hold: Duration,
    /// The `Authorization` value the API requires, if any.
    authorization: Option<String>,
    writes: AtomicU64,
    requests: AtomicU64,
    state: Mutex<State>,
}

struct State {
    streams: Streams,
    /// Preloads in memory; dropped with their stream object (a PUT or DELETE of the name).
    preloads: BTreeMap<String, String>,
    /// The runtime side of each stream object (go2rtc's `*Stream`): producer link and
    /// counters, the preload's worker, what it saw of its camera. Made on first use, dropped
    /// with the object (PUT, DELETE, restart); PATCH keeps it.
    objects: BTreeMap<String, StreamObject>,
    /// Ids for preload workers and producers.
    next_id: u64,
    /// [`Go2rtcSim::set_stuck_after_reboot`].
    stuck_after_reboot: bool,
    /// [`Go2rtcSim::set_wedged`]; cleared by a restart.
    wedged: bool,
    /// `POST /api/restart` calls answered.
    restart_calls: u64,
    file: ConfigStore,
    /// The environment of this process, for `${VAR}` in a real file.
    env: Env,
    /// The values the file's `${VAR}`s were replaced with at load, shown as `***`.
    secrets: Vec<String>,
    writable: bool,
    /// A write to the stream map is in progress.
    writing: bool,
    /// Bumped by every restart, so a write section of a dead incarnation cannot touch the next.
    incarnation: u64,
    /// Cancelled when this incarnation dies (crash, restart, shutdown).
    kill: CancellationToken,
    crash: Option<String>,
}

impl State {
    fn new(file: ConfigStore, env: Env, writable: bool) -> Self {
        let mut state = State {
            streams: Streams::new(),
            preloads: BTreeMap::new(),
            objects: BTreeMap::new(),
            next_id: 0,
            stuck_after_reboot: false,
            wedged: false,
            restart_calls: 0,
            file,
            env,
            secrets: Vec::new(),
            writable,
            writing: false,
            incarnation: 0,
            kill: CancellationToken::new(),
            crash: None,
        };
        state.load_file();
        state
    }

    /// What a fresh process holds: the file's streams, and its preloads of those streams.
    fn load_file(&mut self) {
        let file = self.file.read(Some(&self.env));
        self.drop_objects();
        self.wedged = false;
        self.streams = file.streams;
        self.preloads = file.preloads;
        self.secrets = file.secrets;
        self.preloads
            .retain(|name, _| self.streams.contains_key(name));
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn kill_token(&self) -> CancellationToken {
        self.state().kill.clone()
    }
}

impl Go2rtcSim {
    /// `http://127.0.0.1:PORT`
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.inner.shared.api_port)
    }

    /// `rtsp://127.0.0.1:PORT`
    pub fn rtsp_url(&self) -> String {
        format!("rtsp://127.0.0.1:{}", self.inner.shared.rtsp_port)
    }

    /// PUT, DELETE and PATCH requests received on `/api/streams`, plus PUT and DELETE on
    /// `/api/preload`, whatever their outcome (a write without `src` counts too).
    pub fn write_count(&self) -> u64 {
        self.inner.shared.writes.load(Ordering::Relaxed)
    }

    /// Every API request received, 401s included.
    pub fn request_count(&self) -> u64 {
        self.inner.shared.requests.load(Ordering::Relaxed)
    }

    /// Names of the streams in memory, sorted.
    pub fn stream_names(&self) -> Vec<String> {
        self.inner.shared.state().streams.keys().cloned().collect()
    }

    /// The sources of an in-memory stream, unmasked, as sent.
    pub fn stream_sources(&self, name: &str) -> Option<Vec<String>> {
        self.inner.shared.state().streams.get(name).cloned()
    }

    /// The streams its YAML file holds now, as written (a real file's `${VAR}`s unexpanded;
    /// none if it cannot be read or parsed).
    pub fn file_streams(&self) -> BTreeMap<String, Vec<String>> {
        self.inner.shared.state().file.read(None).streams
    }

    /// Names of the preloaded streams in memory, sorted.
    pub fn preloads(&self) -> Vec<String> {
        self.inner.shared.state().preloads.keys().cloned().collect()
    }

    /// A stream the user added themselves: in memory, and in the file if it is writable.
    pub fn add_stream_by_hand(&self, name: &str, sources: &[&str]) {
        let sources: Vec<String> = sources.iter().map(|s| (*s).to_owned()).collect();
        let mut state = self.inner.shared.state();
        state.streams.insert(name.to_owned(), sources.clone());
        // A read-only file just keeps the stream out of it, as a failed PUT would.
        if let Err(e) = state.patch_file(FileEdit::Stream(name, Some(&sources))) {
            tracing::debug!(name, error = %e, "go2rtc sim: stream added by hand not saved");
        }
    }

    /// `bytes_recv` of the stream's connected producer as `GET /api/streams` shows it now
    /// (frozen while its camera is away); `None` if the stream is unknown or has no producer
    /// connection to show (never connected, or not preloaded).
    pub fn bytes_recv(&self, name: &str) -> Option<u64> {
        let state = self.inner.shared.state();
        state.preloads.get(name)?;
        let link = state.objects.get(name)?.link.as_ref()?;
        Some(link.bytes_at(Instant::now()))
    }

    /// Whether the stream's preload producer is connected to its camera right now (false while
    /// it redials, and for a stream that is not preloaded).
    pub fn producer_connected(&self, name: &str) -> bool {
        let state = self.inner.shared.state();
        state.preloads.contains_key(name)
            && state
                .objects
                .get(name)
                .and_then(|o| o.link.as_ref())
                .is_some_and(|l| l.connected)
    }

    /// Opt-in model of go2rtc's stuck stream (issues #762, #1389, #1483, #2387): while on, a
    /// stream object whose camera was up, went away (a failed dial, a lost connection) and
    /// came back is broken from then on: DESCRIBE answers 404 although the camera answers, and
    /// its producer receives nothing. Only a new stream object (PUT or DELETE + PUT) or a
    /// restart heals it. Turning it off stops new streams getting stuck; stuck ones stay so.
    pub fn set_stuck_after_reboot(&self, on: bool) {
        self.inner.shared.state().stuck_after_reboot = on;
    }

    /// Opt-in model of a wedged go2rtc (issues #184, #953): from now on until a restart, every
    /// `DESCRIBE` answers 404 although the cameras and the API answer. Replacing a stream does
    /// not help; a restart (`POST /api/restart` included) does.
    pub fn set_wedged(&self, on: bool) {
        self.inner.shared.state().wedged = on;
    }

    /// How many `POST /api/restart` calls the simulator answered.
    pub fn restart_calls(&self) -> u64 {
        self.inner.shared.state().restart_calls
    }

    /// Whether the stream object `name` is stuck (see [`Go2rtcSim::set_stuck_after_reboot`]).
    pub fn is_stuck(&self, name: &str) -> bool {
        let state = self.inner.shared.state();
        state.objects.get(name).is_some_and(|o| o.stuck)
    }

    /// Makes the YAML file writable or read-only from now on.
    pub fn set_config_writable(&self, writable: bool) {
        self.inner.shared.state().writable = writable;
    }
}

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

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, Request as HttpRequest, State as HttpState};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::any;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::rtsp::{
    self, Handler, HeldSession, Request as RtspRequest, Response as RtspResponse, RtspServer,
};
use camsync_formats::yaml_edit::{Change, Document};

/// Where go2rtc says its simulated config lives (`GET /api`), and the path in its file errors.
const CONFIG_PATH: &str = "/config/go2rtc.yaml";
const VERSION: &str = "1.9.14";
/// go2rtc's default dial limits for an RTSP source.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stop waits for open HTTP connections to be torn down.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Go's fatal errors for unsynchronised map access.
const WRITE_WRITE: &str = "fatal error: concurrent map writes";
const LIST_WRITE: &str = "fatal error: concurrent map iteration and map write";
const GET_WRITE: &str = "fatal error: concurrent map read and map write";

/// What go2rtc stores for a preload without a query (`AddPreload`).
const DEFAULT_PRELOAD: &str = "video&audio";

/// What a connected producer receives while its camera sends (a modest H264 main stream).
const BYTES_PER_SECOND: u64 = 50_000;
/// How often a connected producer checks that its camera still sends (an RTSP `OPTIONS` on a
/// side connection: the simulated camera sends no media to watch).
const KEEPALIVE_EVERY: Duration = Duration::from_millis(200);
/// An unanswered keepalive older than this freezes the counter (no data flows).
const STALL_AFTER: Duration = Duration::from_millis(300);

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

/// The tasks of one incarnation of the "process".
struct Running {
    http: JoinHandle<()>,
    rtsp: RtspServer,
}

impl Running {
    /// Waits for both servers to go; their kill token must already be cancelled.
    async fn stop(self) {
        if tokio::time::timeout(STOP_GRACE, self.http).await.is_err() {
            tracing::warn!("go2rtc sim: http connections still open after stop");
        }
        self.rtsp.shutdown().await;
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

/// What go2rtc's YAML file holds (or a process loaded from it).
#[derive(Clone, Default)]
struct ConfigFile {
    streams: Streams,
    /// Stream name → preload query.
    preloads: BTreeMap<String, String>,
    /// Values that `${VAR}` references were replaced with: go2rtc shows them as `***`.
    secrets: Vec<String>,
}

/// Where go2rtc's YAML file lives.
enum ConfigStore {
    /// In memory only.
    Simulated(ConfigFile),
    /// A real file.
    Disk(PathBuf),
}

impl ConfigStore {
    /// The path go2rtc reports (`GET /api`) and names in its errors.
    fn path(&self) -> String {
        match self {
            ConfigStore::Simulated(_) => CONFIG_PATH.to_owned(),
            ConfigStore::Disk(path) => path.display().to_string(),
        }
    }

    /// The file's streams and preloads; a real file's `${VAR}`s expanded from `env` if given,
    /// as written otherwise.
    fn read(&self, env: Option<&Env>) -> ConfigFile {
        match self {
            ConfigStore::Simulated(file) => file.clone(),
            ConfigStore::Disk(path) => read_config(path, env),
        }
    }

    /// Sets or removes one entry, as go2rtc's `app.PatchConfig` does.
    fn patch(&mut self, edit: &FileEdit<'_>) -> Result<(), String> {
        match self {
            ConfigStore::Simulated(file) => {
                edit.apply(file);
                Ok(())
            }
            ConfigStore::Disk(path) => patch_config(path, edit),
        }
    }
}

/// One entry of the YAML file to set (`Some`) or remove (`None`).
enum FileEdit<'a> {
    Stream(&'a str, Option<&'a [String]>),
    Preload(&'a str, Option<&'a str>),
}

impl FileEdit<'_> {
    fn apply(&self, file: &mut ConfigFile) {
        match *self {
            FileEdit::Stream(name, Some(sources)) => {
                file.streams.insert(name.to_owned(), sources.to_vec());
            }
            FileEdit::Stream(name, None) => {
                file.streams.remove(name);
            }
            FileEdit::Preload(name, Some(query)) => {
                file.preloads.insert(name.to_owned(), query.to_owned());
            }
            FileEdit::Preload(name, None) => {
                file.preloads.remove(name);
            }
        }
    }

    /// The section, the key, and the value as the file holds it (one source as a string,
    /// several as a list; `None`: removed).
    fn entry(&self) -> (&'static str, &str, Option<Value>) {
        match *self {
            FileEdit::Stream(name, sources) => {
                let value = sources.map(|sources| match sources {
                    [one] => Value::from(one.as_str()),
                    many => Value::from(many.to_vec()),
                });
                ("streams", name, value)
            }
            FileEdit::Preload(name, query) => ("preload", name, query.map(Value::from)),
        }
    }
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

    /// Starts a new incarnation after the old one is gone, in a new environment if given.
    fn revive(&mut self, env: Option<Env>) {
        if let Some(env) = env {
            self.env = env;
        }
        self.load_file();
        self.writing = false;
        self.incarnation += 1;
        self.kill = CancellationToken::new();
        self.crash = None;
    }

    /// Drops every stream object, stopping their preload workers.
    fn drop_objects(&mut self) {
        for object in std::mem::take(&mut self.objects).into_values() {
            object.stop_worker();
        }
    }

    /// Replaces the stream object `name` (PUT, DELETE): no consumers, no producer, no history.
    fn drop_object(&mut self, name: &str) {
        self.preloads.remove(name);
        if let Some(object) = self.objects.remove(name) {
            object.stop_worker();
        }
    }

    fn object(&mut self, name: &str) -> &mut StreamObject {
        self.objects.entry(name.to_owned()).or_default()
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The object's preload worker, if `worker` is still the current one.
    fn worker_object(&mut self, name: &str, worker: u64) -> Option<&mut StreamObject> {
        self.objects
            .get_mut(name)
            .filter(|o| o.worker.as_ref().is_some_and(|(id, _)| *id == worker))
    }

    /// A dial of `name`'s camera worked (`true`) or failed: the stuck-stream bookkeeping.
    fn camera_seen(&mut self, name: &str, up: bool) {
        let stuck_after_reboot = self.stuck_after_reboot;
        self.object(name).camera_seen(up, stuck_after_reboot);
    }

    fn die(&mut self, reason: &str) {
        if self.crash.is_none() {
            tracing::error!(reason, "go2rtc sim crashed");
            self.crash = Some(reason.to_owned());
        }
        self.kill.cancel();
    }

    /// Edits the file as go2rtc's `PatchConfig` does; the error is go2rtc's text (or the OS's
    /// for a real file).
    fn patch_file(&mut self, edit: FileEdit<'_>) -> Result<(), String> {
        if !self.writable {
            return Err(format!("open {}: read-only file system", self.file.path()));
        }
        self.file.patch(&edit)
    }
}

/// Reads a real go2rtc file as go2rtc loads it: `${VAR}`s expanded first when `env` is given;
/// a file that cannot be read or parsed holds nothing (go2rtc logs a warning and goes on).
fn read_config(path: &Path, env: Option<&Env>) -> ConfigFile {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "go2rtc sim: cannot read its config");
            }
            return ConfigFile::default();
        }
    };
    let (text, secrets) = match env {
        Some(env) => expand_env(&text, env),
        None => (text, Vec::new()),
    };
    let file = parse_config(&text).unwrap_or_else(|e| {
        tracing::warn!(path = %path.display(), error = %e, "go2rtc sim: config does not parse");
        ConfigFile::default()
    });
    ConfigFile { secrets, ..file }
}

/// The `streams:` and `preload:` sections of a go2rtc file.
fn parse_config(text: &str) -> Result<ConfigFile, String> {
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    let doc: Value = camsync_formats::yaml::from_str(text)?;
    let section = |key: &str| {
        doc.get(key)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
    };
    let streams = section("streams")
        .map(|(name, value)| (name.clone(), sources_of(value)))
        .collect();
    let preloads = section("preload")
        .map(|(name, query)| {
            let query = query.as_str().filter(|q| !q.is_empty());
            (name.clone(), query.unwrap_or(DEFAULT_PRELOAD).to_owned())
        })
        .collect();
    Ok(ConfigFile {
        streams,
        preloads,
        secrets: Vec::new(),
    })
}

/// go2rtc's `NewStream`: a string is one source, a list several; anything else (`null`) makes
/// a stream without sources.
fn sources_of(value: &Value) -> Vec<String> {
    match value {
        Value::String(source) => vec![source.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// go2rtc's `shell.ReplaceEnvVars`: each `${KEY}` or `${KEY:default}` (no braces inside)
/// becomes the variable's value, else the default, else stays as written. Textual: the value
/// is not quoted or escaped. Also returns the non-empty values put in (go2rtc's secrets).
fn expand_env(text: &str, env: &Env) -> (String, Vec<String>) {
    let mut secrets = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let (before, reference) = rest.split_at(start);
        out.push_str(before);
        let inner = &reference[2..];
        match inner.find(['{', '}']) {
            Some(end) if end > 0 && inner[end..].starts_with('}') => {
                match lookup_env(&inner[..end], env) {
                    Some(value) => {
                        out.push_str(value);
                        if !value.is_empty() {
                            secrets.push(value.to_owned());
                        }
                    }
                    None => out.push_str(&reference[..end + 3]),
                }
                rest = &inner[end + 1..];
            }
            // Not a reference: keep the `$` and look again from the next character.
            _ => {
                out.push('$');
                rest = &reference[1..];
            }
        }
    }
    out.push_str(rest);
    (out, secrets)
}

/// The value of `KEY` or `KEY:default` (a `:` at the start is part of the name).
fn lookup_env<'a>(key: &'a str, env: &'a Env) -> Option<&'a str> {
    let (name, default) = match key.find(':') {
        Some(colon) if colon > 0 => (&key[..colon], Some(&key[colon + 1..])),
        _ => (key, None),
    };
    env.get(name).map(String::as_str).or(default)
}

/// go2rtc's `app.PatchConfig` on a real file: the entry is set or removed in the file's text
/// (every other byte kept) and the text written back in place. A missing file counts as
/// empty; the error is the OS's (or why the text cannot be edited).
fn patch_config(path: &Path, edit: &FileEdit<'_>) -> Result<(), String> {
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("open {shown}: {e}")),
    };
    let mut doc = Document::parse(&text).map_err(|e| format!("{shown}: {e}"))?;
    let (section, key, value) = edit.entry();
    let change = match &value {
        Some(value) => Change::Upsert(key, value),
        None => Change::Remove(key),
    };
    doc.apply(section, &[change])
        .map_err(|e| format!("{shown}: {e}"))?;
    std::fs::write(path, doc.text()).map_err(|e| format!("open {shown}: {e}"))
}

/// Ends the write section it guards.
struct WriteSection<'a> {
    shared: &'a Shared,
    incarnation: u64,
}

impl Drop for WriteSection<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        if state.incarnation == self.incarnation {
            state.writing = false;
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn kill_token(&self) -> CancellationToken {
        self.state().kill.clone()
    }

    /// Reads the stream map; a write in progress crashes the simulator instead, and then
    /// this request never gets an answer.
    async fn read<T>(&self, overlap: &str, look: impl FnOnce(&State) -> T) -> T {
        let seen = {
            let mut state = self.state();
            if state.writing {
                state.die(overlap);
            }
            state.crash.is_none().then(|| look(&state))
        };
        match seen {
            Some(value) => value,
            None => std::future::pending().await,
        }
    }

    /// Holds the stream map for `write_hold`, then edits it; another write in progress crashes
    /// the simulator instead, and then this request never gets an answer.
    async fn write<T>(&self, edit: impl FnOnce(&mut State) -> T) -> T {
        let section = {
            let mut state = self.state();
            if state.writing {
                state.die(WRITE_WRITE);
            }
            state.crash.is_none().then(|| {
                state.writing = true;
                WriteSection {
                    shared: self,
                    incarnation: state.incarnation,
                }
            })
        };
        let Some(_section) = section else {
            return std::future::pending().await;
        };
        if !self.write_hold.is_zero() {
            tokio::time::sleep(self.write_hold).await;
        }
        // Applied at the end of the hold, so a write cut short by a crash leaves no trace.
        edit(&mut self.state())
    }
}

impl Go2rtcSim {
    /// Loads the YAML file and starts the HTTP API and the RTSP server, each on 127.0.0.1 and
    /// a free port.
    pub async fn start(opts: Go2rtcSimOptions) -> io::Result<Go2rtcSim> {
        let (api, rtsp) = bind_pair(0, 0).await?;
        let authorization = opts
            .username
            .as_deref()
            .map(|user| rtsp::basic_auth(user, opts.password.as_deref().unwrap_or_default()));
        let file = match opts.config_file {
            Some(path) => ConfigStore::Disk(path),
            None => ConfigStore::Simulated(ConfigFile {
                streams: opts.file_streams,
                preloads: BTreeMap::new(),
                secrets: Vec::new(),
            }),
        };
        let shared = Arc::new(Shared {
            api_port: api.local_addr()?.port(),
            rtsp_port: rtsp.local_addr()?.port(),
            write_hold: opts.write_hold,
            authorization,
            writes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            state: Mutex::new(State::new(file, opts.env, opts.config_writable)),
        });
        let running = spawn_servers(&shared, api, rtsp);
        start_preload_workers(&shared);
        Ok(Go2rtcSim {
            inner: Arc::new(Inner {
                shared,
                running: tokio::sync::Mutex::new(Some(running)),
            }),
        })
    }

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

    /// Like a process restart: every connection drops, memory := the file's streams (and
    /// preloads; a real file is read again), a crash is forgotten, and both servers listen
    /// again on the same ports. If a port cannot be bound again, the simulator stays down and
    /// [`Go2rtcSim::crashed`] says why.
    pub async fn restart(&self) {
        self.restart_in(None).await;
    }

    /// [`Go2rtcSim::restart`] in a new environment (a container started again with another
    /// env file): the file's `${VAR}`s are expanded from `env` from now on.
    pub async fn restart_with_env(&self, env: BTreeMap<String, String>) {
        self.restart_in(Some(env)).await;
    }

    async fn restart_in(&self, env: Option<Env>) {
        let shared = &self.inner.shared;
        let mut running = self.inner.running.lock().await;
        self.stop_running(&mut running).await;
        let bound = bind_pair(shared.api_port, shared.rtsp_port).await;
        shared.state().revive(env);
        match bound {
            Ok((api, rtsp)) => {
                *running = Some(spawn_servers(shared, api, rtsp));
                start_preload_workers(shared);
            }
            Err(e) => shared.state().die(&format!("restart: listen: {e}")),
        }
    }

    /// Go's fatal error after an overlap crash (or why a restart failed); `None` while serving.
    pub fn crashed(&self) -> Option<String> {
        self.inner.shared.state().crash.clone()
    }

    /// Stops both servers and drops every connection; [`Go2rtcSim::restart`] brings it back.
    pub async fn shutdown(&self) {
        let mut running = self.inner.running.lock().await;
        self.stop_running(&mut running).await;
    }

    /// Kills the current incarnation and waits until its listeners are closed.
    async fn stop_running(&self, running: &mut Option<Running>) {
        self.inner.shared.kill_token().cancel();
        if let Some(old) = running.take() {
            old.stop().await;
        }
    }
}

async fn bind_pair(api_port: u16, rtsp_port: u16) -> io::Result<(TcpListener, TcpListener)> {
    let bind = |port| TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    Ok((bind(api_port).await?, bind(rtsp_port).await?))
}

fn spawn_servers(shared: &Arc<Shared>, api: TcpListener, rtsp: TcpListener) -> Running {
    let kill = shared.kill_token();
    let listener = DyingListener {
        inner: api,
        kill: kill.clone(),
    };
    let serve = axum::serve(listener, router(shared.clone()))
        .with_graceful_shutdown(kill.clone().cancelled_owned());
    let http = tokio::spawn(async move {
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "go2rtc sim http server failed");
        }
    });
    Running {
        http,
        rtsp: RtspServer::spawn(rtsp, kill, shared.clone()),
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api", any(api_info))
        .route("/api/streams", any(streams_api))
        .route("/api/preload", any(preload_api))
        .route("/api/restart", any(restart_api))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "404 page not found") })
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

/// Counts, authenticates, and ties every request to the life of its incarnation: once the
/// simulator dies, a request in flight never answers (its connection drops instead).
async fn gate(
    HttpState(shared): HttpState<Arc<Shared>>,
    request: HttpRequest,
    next: Next,
) -> HttpResponse {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(expected) = &shared.authorization {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !rtsp::auth_matches(given, expected) {
            let mut response = text(StatusCode::UNAUTHORIZED, "Unauthorized");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="go2rtc""#),
            );
            return response;
        }
    }
    let kill = shared.kill_token();
    tokio::select! {
        () = kill.cancelled() => std::future::pending().await,
        response = next.run(request) => response,
    }
}

/// The decoded query, repeated keys kept in order (`url::form_urlencoded`, like Go's
/// `url.ParseQuery`: `+` is a space).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        let pairs = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes());
        Query(
            pairs
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key`, `""` if absent (Go's `Query().Get`).
    fn first(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Whether the query asks for a real dial (go2rtc's probe consumer).
    fn wants_media(&self) -> bool {
        ["video", "audio", "microphone"].iter().any(|k| self.has(k))
    }
}

async fn api_info(HttpState(shared): HttpState<Arc<Shared>>) -> HttpResponse {
    let config_path = shared.state().file.path();
    json_response(
        &json!({
            "config_path": config_path,
            "host": format!("127.0.0.1:{}", shared.api_port),
            "pid": std::process::id(),
            "revision": "sim",
            "rtsp": {"listen": format!(":{}", shared.rtsp_port), "default_query": "video&audio"},
            "version": VERSION,
        }),
        false,
    )
}

async fn streams_api(
    HttpState(shared): HttpState<Arc<Shared>>,
    method: Method,
    RawQuery(raw): RawQuery,
) -> HttpResponse {
    if [Method::PUT, Method::DELETE, Method::PATCH].contains(&method) {
        shared.writes.fetch_add(1, Ordering::Relaxed);
    }
    let query = Query::parse(raw.as_deref());
    let (src, name) = (query.first("src"), query.first("name"));
    if src.is_empty() && name.is_empty() && method != Method::POST {
        let list = shared.read(LIST_WRITE, list_json).await;
        return json_response(&list, false);
    }
    match method {
        Method::GET => get_stream(&shared, src, query.wants_media()).await,
        Method::PUT => {
            let name = if name.is_empty() { src } else { name };
            put_stream(&shared, name, query.all("src")).await
        }
        Method::PATCH => patch_stream(&shared, name, src).await,
        // Newer go2rtc: memory by `name` (older builds: by `src`), the file always by `src`.
        Method::DELETE => {
            delete_stream(&shared, if name.is_empty() { src } else { name }, src).await
        }
        Method::POST => text(StatusCode::BAD_REQUEST, ""),
        _ => StatusCode::OK.into_response(),
    }
}

async fn get_stream(shared: &Shared, name: &str, dial: bool) -> HttpResponse {
    let Some(sources) = shared
        .read(GET_WRITE, |state| state.streams.get(name).cloned())
        .await
    else {
        return text(StatusCode::NOT_FOUND, "");
    };
    if dial && let Err(e) = dial_any(&sources).await {
        return text(StatusCode::INTERNAL_SERVER_ERROR, &format!("streams: {e}"));
    }
    let json = stream_json(&shared.state(), name, Instant::now());
    match json {
        Some(json) => json_response(&json, true),
        None => text(StatusCode::NOT_FOUND, ""),
    }
}

async fn put_stream(shared: &Shared, name: &str, sources: Vec<String>) -> HttpResponse {
    if !sources.iter().all(|s| source_allowed(s)) {
        return text(StatusCode::BAD_REQUEST, "");
    }
    let persisted = shared
        .write(|state| {
            state.drop_object(name); // a new stream object has no consumers
            let persisted = state.patch_file(FileEdit::Stream(name, Some(&sources)));
            state.streams.insert(name.to_owned(), sources);
            persisted
        })
        .await;
    empty_or_error(persisted, StatusCode::BAD_REQUEST)
}

async fn patch_stream(shared: &Shared, name: &str, src: &str) -> HttpResponse {
    if name.is_empty() || !source_allowed(src) {
        return text(StatusCode::BAD_REQUEST, "");
    }
    shared
        .write(|state| state.streams.insert(name.to_owned(), vec![src.to_owned()]))
        .await;
    StatusCode::OK.into_response()
}

async fn delete_stream(shared: &Shared, memory_key: &str, file_key: &str) -> HttpResponse {
    let persisted = shared
        .write(|state| {
            state.streams.remove(memory_key);
            state.drop_object(memory_key);
            state.patch_file(FileEdit::Stream(file_key, None))
        })
        .await;
    empty_or_error(persisted, StatusCode::BAD_REQUEST)
}

/// What the API accepts as a source since v1.9.12: no whitespace, no command sources.
fn source_allowed(source: &str) -> bool {
    !source.is_empty()
        && !source.bytes().any(|b| b.is_ascii_whitespace())
        && !["exec:", "echo:", "expr:"]
            .iter()
            .any(|p| source.starts_with(p))
}

async fn preload_api(
    HttpState(shared): HttpState<Arc<Shared>>,
    method: Method,
    RawQuery(raw): RawQuery,
) -> HttpResponse {
    let query = Query::parse(raw.as_deref());
    let src = query.first("src");
    match method {
        Method::GET => json_response(&json!(shared.state().preloads), false),
        Method::PUT => {
            shared.writes.fetch_add(1, Ordering::Relaxed);
            put_preload(&shared, src, preload_query(&query)).await
        }
        Method::DELETE => {
            shared.writes.fetch_add(1, Ordering::Relaxed);
            delete_preload(&shared, src)
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, ""),
    }
}

/// go2rtc dials before it keeps a preload: a camera that is down fails the PUT (a running
/// preload keeps redialing). On success the new preload's producer is connected at once,
/// replacing any old redial loop.
async fn put_preload(shared: &Arc<Shared>, name: &str, query: String) -> HttpResponse {
    let Some(sources) = shared.state().streams.get(name).cloned() else {
        return text(StatusCode::NOT_FOUND, "stream not found");
    };
    let session = match connect_any(&sources).await {
        Ok(session) => session,
        Err(e) => {
            shared.state().camera_seen(name, false);
            return text(StatusCode::INTERNAL_SERVER_ERROR, &format!("streams: {e}"));
        }
    };
    let persisted = {
        let mut state = shared.state();
        if state.streams.get(name) != Some(&sources) {
            // The stream was replaced or removed while dialing.
            return text(StatusCode::NOT_FOUND, "stream not found");
        }
        let persisted = state.patch_file(FileEdit::Preload(name, Some(&query)));
        state.preloads.insert(name.to_owned(), query);
        persisted
    };
    start_worker(shared, name, Some(session));
    empty_or_error(persisted, StatusCode::INTERNAL_SERVER_ERROR)
}

fn delete_preload(shared: &Shared, name: &str) -> HttpResponse {
    let mut state = shared.state();
    if let Some(object) = state.objects.get_mut(name) {
        object.stop_worker();
        object.worker = None;
        if let Some(link) = &mut object.link {
            link.freeze(Instant::now());
            link.connected = false;
        }
    }
    if state.preloads.remove(name).is_none() {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "streams: preload not found",
        );
    }
    let persisted = state.patch_file(FileEdit::Preload(name, None));
    empty_or_error(persisted, StatusCode::INTERNAL_SERVER_ERROR)
}

/// The query go2rtc stores for a preload: its media keys, Go-encoded (sorted), or its default.
fn preload_query(query: &Query) -> String {
    let mut encoded = url::form_urlencoded::Serializer::new(String::new());
    for key in ["audio", "microphone", "video"] {
        for value in query.all(key) {
            encoded.append_pair(key, &value);
        }
    }
    let encoded = encoded.finish();
    if encoded.is_empty() {
        "video&audio".to_owned()
    } else {
        encoded
    }
}

async fn restart_api(HttpState(shared): HttpState<Arc<Shared>>, method: Method) -> HttpResponse {
    if method != Method::POST {
        return text(StatusCode::BAD_REQUEST, "");
    }
    {
        let mut state = shared.state();
        state.restart_calls += 1;
        state.load_file();
    }
    start_preload_workers(&shared);
    StatusCode::OK.into_response()
}

/// Tries the sources in order, as go2rtc does for a new consumer; the first error is reported.
async fn dial_any(sources: &[String]) -> Result<(), String> {
    let mut first_error = None;
    for source in sources {
        match rtsp::describe(source, CONNECT_TIMEOUT, READ_TIMEOUT).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "no producers".to_owned()))
}

impl Handler for Shared {
    async fn handle(&self, request: RtspRequest) -> RtspResponse {
        match request.method.as_str() {
            "OPTIONS" => RtspResponse::options(),
            "DESCRIBE" => self.describe(&request).await,
            "SETUP" if request.wants_udp() => RtspResponse::new(461),
            _ => RtspResponse::new(501),
        }
    }
}

impl Shared {
    /// 200 when the stream's camera answers (or a preload holds its tracks); 404 for an
    /// unknown stream and, identically, for a camera that cannot be dialed, a stuck stream or
    /// a wedged server.
    async fn describe(&self, request: &RtspRequest) -> RtspResponse {
        let name = request.path_name();
        let (sources, preloaded, stuck) = {
            let state = self.state();
            (
                state.streams.get(&name).cloned(),
                state.preloads.contains_key(&name),
                state.wedged || state.objects.get(&name).is_some_and(|o| o.stuck),
            )
        };
        let Some(sources) = sources else {
            return RtspResponse::new(404);
        };
        if stuck {
            return RtspResponse::new(404);
        }
        if preloaded {
            return RtspResponse::sdp(&request.uri, &format!("go2rtc/{VERSION}"));
        }
        // The consumer attaches for this request only: the producer dials, answers, and is
        // stopped again when it leaves.
        let up = dial_any(&sources).await.is_ok();
        let stuck = {
            let mut state = self.state();
            if state.streams.get(&name) != Some(&sources) {
                return RtspResponse::new(404);
            }
            state.camera_seen(&name, up);
            state.objects.get(&name).is_some_and(|o| o.stuck)
        };
        if up && !stuck {
            RtspResponse::sdp(&request.uri, &format!("go2rtc/{VERSION}"))
        } else {
            RtspResponse::new(404)
        }
    }
}

/// The runtime side of one stream object.
#[derive(Default)]
struct StreamObject {
    /// The preload's producer worker (id, stop token), while preloaded.
    worker: Option<(u64, CancellationToken)>,
    /// The producer's connection to the camera, once it has connected.
    link: Option<Link>,
    /// A dial of the camera has worked on this object.
    ever_up: bool,
    /// The camera went away (a failed dial or a lost connection) after it had been up.
    outage: bool,
    /// The camera came back after an outage while the stuck switch was on: broken for new
    /// consumers, and no data flows, until the object is replaced.
    stuck: bool,
}

/// A producer connected (or once connected, now redialing) to its camera.
struct Link {
    id: u64,
    /// The source that answered, as sent.
    source: String,
    /// `127.0.0.1:PORT` of the camera.
    remote_addr: String,
    /// The connection is up (else the worker is redialing).
    connected: bool,
    /// Bytes received before `flowing_since`.
    bytes: u64,
    /// Data flows since then; `None` while frozen.
    flowing_since: Option<Instant>,
}

impl Link {
    fn bytes_at(&self, now: Instant) -> u64 {
        let flowing = self.flowing_since.map_or(0, |since| {
            let millis =
                u64::try_from(now.saturating_duration_since(since).as_millis()).unwrap_or(u64::MAX);
            millis.saturating_mul(BYTES_PER_SECOND) / 1000
        });
        self.bytes.saturating_add(flowing)
    }

    /// Stops the counter where it is.
    fn freeze(&mut self, now: Instant) {
        self.bytes = self.bytes_at(now);
        self.flowing_since = None;
    }
}

impl StreamObject {
    fn stop_worker(&self) {
        if let Some((_, token)) = &self.worker {
            token.cancel();
        }
    }

    fn camera_seen(&mut self, up: bool, stuck_after_reboot: bool) {
        if !up {
            self.outage |= self.ever_up;
            return;
        }
        self.ever_up = true;
        if std::mem::take(&mut self.outage) && stuck_after_reboot {
            self.stuck = true;
        }
    }

    /// What `GET /api/streams` shows for this object's producers (`sources` as configured)
    /// and consumers.
    fn json(&self, sources: &[String], preloaded: bool, now: Instant) -> Value {
        // go2rtc stops an unused producer (showing its URL only); a preloaded one keeps its
        // last connection, frozen counters included, while it redials.
        let link = self.link.as_ref().filter(|_| preloaded);
        let mut linked = false;
        let producers = if sources.is_empty() {
            Value::Null
        } else {
            sources
                .iter()
                .map(|source| match link {
                    Some(link) if !linked && link.source == *source => {
                        linked = true;
                        producer_json(link, now)
                    }
                    _ => json!({ "url": source }),
                })
                .collect()
        };
        let consumers = if preloaded {
            let id = self.worker.as_ref().map_or(0, |(id, _)| *id);
            json!([{
                "id": id,
                "format_name": "preload",
                "medias": ["video, sendonly, ANY", "audio, sendonly, ANY"],
            }])
        } else {
            Value::Null
        };
        json!({ "producers": producers, "consumers": consumers })
    }
}

/// A connected RTSP producer, in the shape of the fixture `g2r-api-streams-src-active.json`.
fn producer_json(link: &Link, now: Instant) -> Value {
    let bytes = link.bytes_at(now);
    json!({
        "id": link.id,
        "format_name": "rtsp",
        "protocol": "rtsp+tcp",
        "remote_addr": link.remote_addr,
        "url": link.source,
        "sdp": rtsp::h264_sdp("camsync sim camera"),
        "user_agent": format!("go2rtc/{VERSION}"),
        "medias": ["video, recvonly, H264"],
        "receivers": [{
            "id": link.id + 1,
            "codec": {
                "codec_name": "h264",
                "codec_type": "video",
                "level": 22,
                "profile": "Baseline",
            },
            "bytes": bytes,
            "packets": bytes / 1_200,
        }],
        "bytes_recv": bytes,
    })
}

/// go2rtc's redial delay after the `retry`-th failed dial (from 0) of a producer that lost its
/// camera while consumers remain: 1 s ×5, 5 s ×5, 10 s ×10, then 60 s, no jitter. The first
/// redial follows the loss at once.
pub fn redial_delay(retry: u32) -> Duration {
    Duration::from_secs(match retry {
        0..5 => 1,
        5..10 => 5,
        10..20 => 10,
        _ => 60,
    })
}

/// Dials the sources in order and keeps the first that answers; the first error otherwise.
async fn connect_any(sources: &[String]) -> Result<(String, HeldSession), String> {
    let mut first_error = None;
    for source in sources {
        match rtsp::describe_and_hold(source, CONNECT_TIMEOUT, READ_TIMEOUT).await {
            Ok(session) => return Ok((source.clone(), session)),
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "no producers".to_owned()))
}

/// The loopback address a dialable source connects to (`rtsp://` or `ffmpeg:rtsp://`).
fn camera_addr(source: &str) -> Option<SocketAddr> {
    let source = source.strip_prefix("ffmpeg:").unwrap_or(source);
    let url = url::Url::parse(source.split('#').next()?).ok()?;
    // `rtsp` is not a special scheme to `url`: its host is opaque text.
    let host = url.host_str()?;
    let ip = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST.into()
    } else {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.parse::<std::net::IpAddr>().ok()?
    };
    ip.is_loopback()
        .then(|| SocketAddr::new(ip, url.port().unwrap_or(554)))
}

/// Starts a preload worker for `name` (replacing any running one), with a session already
/// dialed, or dialing at once.
fn start_worker(shared: &Arc<Shared>, name: &str, session: Option<(String, HeldSession)>) {
    let mut state = shared.state();
    let Some(sources) = state.streams.get(name).cloned() else {
        return;
    };
    let id = state.new_id();
    let token = state.kill.child_token();
    let object = state.object(name);
    object.stop_worker();
    object.worker = Some((id, token.clone()));
    drop(state);
    // A session dialed by the caller is connected before it answers.
    let session = session.and_then(|(source, held)| {
        let addr = camera_addr(&source)?;
        link_up(shared, name, id, &source, addr);
        Some((source, addr, held))
    });
    let worker = preload_worker(shared.clone(), name.to_owned(), id, sources, session);
    tokio::spawn(async move {
        tokio::select! {
            () = token.cancelled() => {}
            () = worker => {}
        }
    });
}

/// Starts a worker for every preload that has none (after a start or restart).
fn start_preload_workers(shared: &Arc<Shared>) {
    let idle: Vec<String> = {
        let state = shared.state();
        state
            .preloads
            .keys()
            .filter(|name| state.objects.get(*name).is_none_or(|o| o.worker.is_none()))
            .cloned()
            .collect()
    };
    for name in idle {
        start_worker(shared, &name, None);
    }
}

/// A preload's producer: connected while the camera answers, redialing on go2rtc's schedule
/// ([`redial_delay`]) from the moment it is lost. Runs until its token is cancelled.
async fn preload_worker(
    shared: Arc<Shared>,
    name: String,
    worker: u64,
    sources: Vec<String>,
    mut session: Option<(String, SocketAddr, HeldSession)>,
) {
    let mut retry = 0;
    loop {
        let (addr, held) = match session.take() {
            Some((_, addr, held)) => (addr, held),
            None => match connect_any(&sources).await {
                Ok((source, held)) => match camera_addr(&source) {
                    Some(addr) => {
                        link_up(&shared, &name, worker, &source, addr);
                        (addr, held)
                    }
                    // Only loopback sources ever connect; counted as a failed dial anyway.
                    None => {
                        tokio::time::sleep(redial_delay(retry)).await;
                        retry = retry.saturating_add(1);
                        continue;
                    }
                },
                Err(e) => {
                    tracing::debug!(name, error = %e, retry, "go2rtc sim: preload redial failed");
                    if let Some(object) = shared.state().worker_object(&name, worker) {
                        object.camera_seen(false, false);
                    }
                    tokio::time::sleep(redial_delay(retry)).await;
                    retry = retry.saturating_add(1);
                    continue;
                }
            },
        };
        retry = 0;
        watch_camera(&shared, &name, worker, addr, held).await;
        let now = Instant::now();
        if let Some(object) = shared.state().worker_object(&name, worker) {
            object.camera_seen(false, false);
            if let Some(link) = &mut object.link {
                link.freeze(now);
                link.connected = false;
            }
        }
    }
}

/// Records a (re)connected producer; data flows unless the stream is stuck.
fn link_up(shared: &Shared, name: &str, worker: u64, source: &str, addr: SocketAddr) {
    let mut state = shared.state();
    let stuck_after_reboot = state.stuck_after_reboot;
    let id = state.new_id();
    let Some(object) = state.worker_object(name, worker) else {
        return;
    };
    object.camera_seen(true, stuck_after_reboot);
    let flowing_since = (!object.stuck).then(Instant::now);
    match &mut object.link {
        Some(link) if link.source == source => {
            link.connected = true;
            link.flowing_since = flowing_since;
        }
        link => {
            *link = Some(Link {
                id,
                source: source.to_owned(),
                remote_addr: addr.to_string(),
                connected: true,
                bytes: 0,
                flowing_since,
            });
        }
    }
}

/// Sets whether data flows on `name`'s link (not on a stuck stream).
fn set_flowing(shared: &Shared, name: &str, worker: u64, flowing: bool) {
    let now = Instant::now();
    let mut state = shared.state();
    let Some(object) = state.worker_object(name, worker) else {
        return;
    };
    let stuck = object.stuck;
    if let Some(link) = object.link.as_mut().filter(|l| l.connected) {
        if !flowing {
            link.freeze(now);
        } else if link.flowing_since.is_none() && !stuck {
            link.flowing_since = Some(now);
        }
    }
}

/// Watches a connected camera until it is lost: its session closes (stopped), or a keepalive
/// stays unanswered for go2rtc's read timeout (hung). A keepalive late by [`STALL_AFTER`]
/// freezes the counter until it is answered.
async fn watch_camera(
    shared: &Shared,
    name: &str,
    worker: u64,
    addr: SocketAddr,
    held: HeldSession,
) {
    let Ok(Ok(side)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await else {
        return;
    };
    let mut side = BufReader::new(side);
    let closed = held.closed();
    tokio::pin!(closed);
    for cseq in 1u64.. {
        let asked = Instant::now();
        let request = format!("OPTIONS rtsp://{addr}/ RTSP/1.0\r\nCSeq: {cseq}\r\n\r\n");
        if side.get_mut().write_all(request.as_bytes()).await.is_err() {
            return;
        }
        let mut stalled = false;
        {
            let answer = read_answer(&mut side);
            tokio::pin!(answer);
            loop {
                let limit = asked + if stalled { READ_TIMEOUT } else { STALL_AFTER };
                tokio::select! {
                    () = &mut closed => return,
                    answered = &mut answer => {
                        if !answered {
                            return;
                        }
                        break;
                    }
                    () = tokio::time::sleep_until(limit) => {
                        if stalled {
                            return; // go2rtc's read timeout: the connection is dropped
                        }
                        stalled = true;
                        set_flowing(shared, name, worker, false);
                    }
                }
            }
        }
        if stalled {
            set_flowing(shared, name, worker, true);
        }
        tokio::select! {
            () = &mut closed => return,
            () = tokio::time::sleep(KEEPALIVE_EVERY) => {}
        }
    }
}

/// Reads one RTSP answer head (a keepalive's has no body); false if the connection ended.
async fn read_answer(reader: &mut BufReader<TcpStream>) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return false,
            Ok(_) if line.trim().is_empty() => return true,
            Ok(_) => {}
        }
    }
}

fn list_json(state: &State) -> Value {
    let now = Instant::now();
    Value::Object(
        state
            .streams
            .keys()
            .filter_map(|name| Some((name.clone(), stream_json(state, name, now)?)))
            .collect(),
    )
}

/// One stream as `GET /api/streams` shows it; `None` if unknown.
fn stream_json(state: &State, name: &str, now: Instant) -> Option<Value> {
    let sources = state.streams.get(name)?;
    let preloaded = state.preloads.contains_key(name);
    let mut json = match state.objects.get(name) {
        Some(object) => object.json(sources, preloaded, now),
        None => StreamObject::default().json(sources, preloaded, now),
    };
    let urls = json["producers"].as_array_mut().into_iter().flatten();
    for url in urls.filter_map(|producer| producer.get_mut("url")) {
        if let Some(text) = url.as_str() {
            *url = Value::from(mask_secrets(text, &state.secrets));
        }
    }
    Some(json)
}

/// Every occurrence of a secret (a value from the environment) replaced by `***`, as go2rtc
/// shows sources; credentials written in the source itself are shown as they are.
fn mask_secrets(source: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(source.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
}

/// go2rtc's JSON answers: `application/json`, a trailing newline, pretty for one stream.
fn json_response(value: &Value, pretty: bool) -> HttpResponse {
    let body = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    let body = body.unwrap_or_default() + "\n";
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Go's `http.Error`: text/plain, the message plus a newline (so an "empty" error body is
/// `"\n"`).
fn text(status: StatusCode, message: &str) -> HttpResponse {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{message}\n"),
    )
        .into_response()
}

/// 200 with no body and no Content-Type, as go2rtc answers a successful write.
fn empty_or_error(result: Result<(), String>, error_status: StatusCode) -> HttpResponse {
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => text(error_status, &e),
    }
}

/// The API listener; its connections die with the incarnation's kill token.
struct DyingListener {
    inner: TcpListener,
    kill: CancellationToken,
}

impl axum::serve::Listener for DyingListener {
    type Io = DyingIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (DyingIo, SocketAddr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let kill = Box::pin(self.kill.clone().cancelled_owned());
        (DyingIo { io, kill }, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that fails every read and write once the process "dies". hyper reads even
/// while a request is in flight (to notice a client going away), so the error reaches it and
/// it drops the connection and the handler: an in-flight request gets no answer, just as when
/// go2rtc crashes.
struct DyingIo {
    io: TcpStream,
    kill: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl DyingIo {
    fn dead(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        self.kill
            .as_mut()
            .poll(cx)
            .is_ready()
            .then(|| io::Error::from(io::ErrorKind::ConnectionReset))
    }
}

impl AsyncRead for DyingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.dead(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for DyingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.dead(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.dead(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_values_from_the_environment_are_masked() {
        let secrets = ["pw-1".to_owned(), String::new()];
        let cases = [
            (
                "rtsp://admin:pw-1@10.0.0.5/s1",
                "rtsp://admin:***@10.0.0.5/s1",
            ),
            (
                "rtsp://admin:other@10.0.0.5/s1",
                "rtsp://admin:other@10.0.0.5/s1",
            ),
            (
                "ffmpeg:rtsp://u:pw-1@127.0.0.1/x#video=h264",
                "ffmpeg:rtsp://u:***@127.0.0.1/x#video=h264",
            ),
        ];
        for (source, masked) in cases {
            assert_eq!(mask_secrets(source, &secrets), masked, "{source}");
        }
    }

    #[test]
    fn api_rejects_command_and_whitespace_sources() {
        for bad in [
            "exec:ffmpeg -i x",
            "echo:rtsp://x",
            "expr:1",
            "rtsp://a b",
            "rtsp://a\tb",
            "",
        ] {
            assert!(!source_allowed(bad), "{bad:?}");
        }
        assert!(source_allowed(
            "ffmpeg:rtsp://127.0.0.1/x#video=h264#timeout=30"
        ));
    }

    #[test]
    fn env_references_expand_textually_like_go2rtc() {
        let env = Env::from([
            ("PASS".to_owned(), "p%40ss".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]);
        let cases = [
            ("rtsp://admin:${PASS}@h/s", "rtsp://admin:p%40ss@h/s"),
            ("${UNSET}", "${UNSET}"),
            ("${UNSET:viewer}", "viewer"),
            ("${UNSET:a:b}", "a:b"),
            ("${PASS:other}", "p%40ss"),
            // Set but empty is set (Go's LookupEnv).
            ("${EMPTY:other}", ""),
            ("${:x} ${} $ {PASS}", "${:x} ${} $ {PASS}"),
            ("${a${PASS}}", "${ap%40ss}"),
            ("${a{b}", "${a{b}"),
            ("é${PASS}é", "ép%40ssé"),
        ];
        for (text, expanded) in cases {
            assert_eq!(expand_env(text, &env).0, expanded, "{text}");
        }
    }

    #[test]
    fn file_streams_are_strings_or_lists_and_preloads_default() {
        let file = parse_config(
            "api:\n  listen: ':1984'\nstreams:\n  one: rtsp://h/1\n  two:\n    - rtsp://h/2\n    - ffmpeg:two#audio=opus\n  none:\npreload:\n  one:\n  two: video\n",
        )
        .unwrap();
        assert_eq!(file.streams["one"], ["rtsp://h/1"]);
        assert_eq!(file.streams["two"], ["rtsp://h/2", "ffmpeg:two#audio=opus"]);
        assert!(file.streams["none"].is_empty());
        assert_eq!(file.preloads["one"], DEFAULT_PRELOAD);
        assert_eq!(file.preloads["two"], "video");
        assert!(parse_config("# nothing yet\n").unwrap().streams.is_empty());
        assert!(parse_config("streams: [").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn counters_grow_with_flowing_time_and_freeze() {
        let mut link = Link {
            id: 1,
            source: "rtsp://127.0.0.1:1/x".to_owned(),
            remote_addr: "127.0.0.1:1".to_owned(),
            connected: true,
            bytes: 0,
            flowing_since: Some(Instant::now()),
        };
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(link.bytes_at(Instant::now()), 2 * BYTES_PER_SECOND);
        link.freeze(Instant::now());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(link.bytes_at(Instant::now()), 2 * BYTES_PER_SECOND);
        link.flowing_since = Some(Instant::now());
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(link.bytes_at(Instant::now()), 2 * BYTES_PER_SECOND + 25_000);
    }

    #[test]
    fn stuck_needs_up_then_down_then_up_with_the_switch_on() {
        let mut object = StreamObject::default();
        object.camera_seen(false, true);
        object.camera_seen(true, true);
        assert!(!object.stuck, "a camera that was never up has not rebooted");
        object.camera_seen(false, false);
        object.camera_seen(true, false);
        assert!(!object.stuck, "switch off when it came back");
        object.camera_seen(false, false);
        object.camera_seen(true, true);
        assert!(object.stuck);
    }

    #[test]
    fn camera_addresses_are_loopback_only() {
        let addr = |s| camera_addr(s).map(|a| a.to_string());
        assert_eq!(
            addr("rtsp://u:p@127.0.0.1:8554/x#timeout=30").as_deref(),
            Some("127.0.0.1:8554")
        );
        assert_eq!(
            addr("ffmpeg:rtsp://localhost/x").as_deref(),
            Some("127.0.0.1:554")
        );
        assert_eq!(addr("rtsp://[::1]:10/x").as_deref(), Some("[::1]:10"));
        assert_eq!(addr("rtsp://10.0.0.5/x"), None);
        assert_eq!(addr("rtsp://cam.lan/x"), None);
    }

    #[test]
    fn preload_query_is_go_encoded_or_default() {
        assert_eq!(preload_query(&Query::parse(Some("src=a"))), "video&audio");
        assert_eq!(
            preload_query(&Query::parse(Some("src=a&video&audio=opus"))),
            "audio=opus&video="
        );
    }
}

//! A MediaMTX simulator: the control API v3 (`/v3/info`, `/v3/config/paths/*`, `/v3/paths/*`)
//! and RTSP `DESCRIBE`, answering like MediaMTX v1.16–v1.20 as recorded in `SERVERS.md`, on
//! 127.0.0.1 ports chosen by the OS.
//!
//! It owns the configuration — the paths of its simulated YAML file, and those added through the
//! API on top — and one live path per configured name, with the readers attached to it and, for
//! a source MediaMTX pulls itself, a supervisor task that dials the camera as MediaMTX does.
//!
//! Invariants:
//! - API writes (add, patch, replace, delete) are applied one at a time under a lock; each
//!   successful one then holds the lock for [`MediamtxSimOptions::write_cost_per_path`] ×
//!   configured paths, as MediaMTX re-evaluates its whole configuration on every write. A write
//!   arriving while another is in flight is counted ([`MediamtxSim::overlapping_writes`]).
//! - A configuration change closes and recreates the path, dropping its readers, unless only
//!   `record*` fields (or Raspberry Pi camera tuning) changed — v1.20's rule; v1.16.2 was seen
//!   dropping them on any change. A `replace` with the same configuration changes nothing.
//!   Writes to one path never touch another path's readers. Readers are also dropped by a
//!   delete, a restart, a file reload that changes or removes their path, and by their source
//!   going away; every drop is counted ([`MediamtxSim::reader_disconnects`]).
//! - A pulled always-on source is dialed as soon as its path exists, keeps its camera
//!   connection open while ready (so a camera that stops is noticed at once), and after any
//!   failure retries every 5 s, forever: a camera that returns makes the path ready only at the
//!   next retry, while delete + add dials at once. An on-demand source runs while its path has
//!   readers and gives up, dropping them, if not ready within `sourceOnDemandStartTimeout`.
//!   Only loopback cameras are ever contacted.
//! - Nothing set through the API survives [`MediamtxSim::restart`] or a file reload; the
//!   ports never change.
//! - The YAML file is simulated ([`MediamtxSimOptions::file_paths`], changed by
//!   [`MediamtxSim::reload_file`]) or real ([`MediamtxSimOptions::config_file`]): read at start
//!   and at every restart, and watched while running — a change of its content is reloaded
//!   within about 100 ms, `touch` does nothing, and a change within 1 s after a reload is
//!   ignored until the file changes again (see `watch.rs`). Either way a file that fails to load
//!   shuts the simulator down, as MediaMTX exits.
//!
//! RTSP reads may need one user's Basic credentials ([`MediamtxSimOptions::read_user`]): a
//! `DESCRIBE` without them is answered 401.
//!
//! Not simulated: publishers and media (a `publisher` path is never ready), RTSP Digest auth
//! and SETUP/PLAY, the `pathdefaults` and `global` endpoints, RTSP matching of `~regexp` paths,
//! the 0–4 s pause after bad credentials, the file's settings other than `paths:`. A
//! `DESCRIBE` alone does not keep an on-demand source running for `sourceOnDemandCloseAfter`.
//! A restart lets in-flight HTTP requests finish instead of cutting them.

mod api;
mod conf;
mod goformat;
mod source;
mod watch;

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::conf::{Patch, PathConf};
use super::rtsp::{self, RtspServer};

/// What `/v3/info` reports.
const VERSION: &str = "v1.16.2";
/// How long a stop waits for open HTTP connections to be torn down.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How a [`MediamtxSim`] starts.
#[derive(Debug, Clone)]
pub struct MediamtxSimOptions {
    /// Paths in its simulated YAML file: name → partial path config (a JSON object of path
    /// fields), loaded at start, at restart and at every file reload; ignored with
    /// `config_file`. Default: none.
    pub file_paths: BTreeMap<String, Value>,
    /// A real YAML file instead of `file_paths`: its `paths:` are loaded at start and at
    /// every restart, and it is watched for changes while running. It must exist. Default:
    /// none.
    pub config_file: Option<PathBuf>,
    /// Emulated cost of each API write: the write holds the configuration lock for this ×
    /// the number of configured paths (SERVERS.md: ~130 ms per add at 1,000 paths). Default: zero.
    pub write_cost_per_path: Duration,
    /// API Basic auth user; `None` (default) = no auth.
    pub username: Option<String>,
    /// API Basic auth password (with `username`).
    pub password: Option<String>,
    /// The one user (and password) allowed to read over RTSP, with Basic auth; `None`
    /// (default) = anyone may read.
    pub read_user: Option<(String, String)>,
}

impl Default for MediamtxSimOptions {
    fn default() -> Self {
        MediamtxSimOptions {
            file_paths: BTreeMap::new(),
            config_file: None,
            write_cost_per_path: Duration::ZERO,
            username: None,
            password: None,
            read_user: None,
        }
    }
}

/// A running MediaMTX simulator; clones share it. Dropping the last clone stops it.
#[derive(Clone)]
pub struct MediamtxSim {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// `None` while stopped; the lock also serialises restarts.
    running: tokio::sync::Mutex<Option<Running>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.state().kill.cancel();
    }
}

/// The servers (and file watcher) of one incarnation of the "process".
struct Running {
    http: JoinHandle<()>,
    rtsp: RtspServer,
    watcher: Option<JoinHandle<()>>,
}

impl Running {
    /// Waits for the servers and the watcher to go; their kill token must already be cancelled.
    async fn stop(self) {
        if tokio::time::timeout(STOP_GRACE, self.http).await.is_err() {
            tracing::warn!("mediamtx sim: http connections still open after stop");
        }
        self.rtsp.shutdown().await;
        if let Some(watcher) = self.watcher
            && let Err(e) = watcher.await
        {
            tracing::warn!(error = %e, "mediamtx sim: file watcher failed");
        }
    }
}

/// Everything the HTTP and RTSP handlers and the source supervisors share.
struct Shared {
    api_port: u16,
    rtsp_port: u16,
    /// The real YAML file, if any.
    config_file: Option<PathBuf>,
    write_cost_per_path: Duration,
    /// The `Authorization` value the API requires, if any.
    authorization: Option<String>,
    /// The `Authorization` value an RTSP read requires, if any.
    read_authorization: Option<String>,
    /// Where source supervisors run (they are started from synchronous calls too).
    tasks: tokio::runtime::Handle,
    writes: AtomicU64,
    requests: AtomicU64,
    overlapping_writes: AtomicU64,
    /// A test's fault: every API write answers 500 until cleared.
    failing_writes: AtomicBool,
    writes_in_flight: AtomicU64,
    /// Held by each API write while it is applied (MediaMTX's configuration lock).
    write_lock: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

struct State {
    /// The paths of the YAML file as last loaded, validated.
    file: BTreeMap<String, PathConf>,
    /// Why the file cannot be loaded, after a reload got a bad one: MediaMTX exits.
    file_error: Option<String>,
    /// File reloads so far, failed ones included.
    reloads: u64,
    /// When the last file reload happened.
    last_reload: Option<Instant>,
    /// Every configured path, by name.
    paths: BTreeMap<String, LivePath>,
    started: SystemTime,
    /// Cancelled when this incarnation dies (restart, shutdown, drop); parent of every path's.
    kill: CancellationToken,
    /// The last id given to a path object or a reader.
    last_id: u64,
    reader_disconnects: u64,
}

/// A configured path and its runtime state (a MediaMTX path object; patterns never get one
/// that is used: MediaMTX creates their paths per requested name).
struct LivePath {
    conf: PathConf,
    /// Unique per path object, so a supervisor of a replaced object cannot touch its successor.
    id: u64,
    created: SystemTime,
    /// Stops this object's source supervisor.
    stop: CancellationToken,
    ready_since: Option<SystemTime>,
    /// Reader session ids.
    readers: Vec<String>,
    source_running: bool,
}

/// One path object, as its source supervisor knows it.
struct PathKey {
    name: String,
    id: u64,
}

impl State {
    fn new(file: BTreeMap<String, PathConf>) -> Self {
        State {
            file,
            file_error: None,
            reloads: 0,
            last_reload: None,
            paths: BTreeMap::new(),
            started: SystemTime::now(),
            kill: CancellationToken::new(),
            last_id: 0,
            reader_disconnects: 0,
        }
    }

    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Closes a path object: its source stops and its readers are dropped.
    fn close(&mut self, path: LivePath) {
        path.stop.cancel();
        self.reader_disconnects += path.readers.len() as u64;
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Configures `name` as `conf` (`None`: removed) the way MediaMTX's path manager applies
    /// a new configuration: an unchanged path is left alone, a `record*`-only change is taken
    /// in place, anything else closes the path object and creates a new one.
    fn set_path(self: &Arc<Self>, state: &mut State, name: &str, conf: Option<PathConf>) {
        let conf = match (state.paths.get_mut(name), conf) {
            (Some(path), Some(conf)) if path.conf.reloads_in_place(&conf) => {
                path.conf = conf;
                return;
            }
            (_, conf) => conf,
        };
        if let Some(old) = state.paths.remove(name) {
            state.close(old);
        }
        if let Some(conf) = conf {
            self.create_path(state, name, conf);
        }
    }

    /// Makes the configuration exactly `confs`, path by path (a start, restart or reload).
    fn set_all_paths(self: &Arc<Self>, state: &mut State, confs: BTreeMap<String, PathConf>) {
        let gone: Vec<String> = (state.paths.keys())
            .filter(|name| !confs.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            self.set_path(state, &name, None);
        }
        for (name, conf) in confs {
            self.set_path(state, &name, Some(conf));
        }
    }

    fn create_path(self: &Arc<Self>, state: &mut State, name: &str, conf: PathConf) {
        let mut path = LivePath {
            conf,
            id: state.next_id(),
            created: SystemTime::now(),
            stop: state.kill.child_token(),
            ready_since: None,
            readers: Vec::new(),
            source_running: false,
        };
        let always_on = path.conf.has_static_source() && !path.conf.source_on_demand();
        if always_on && !conf::is_pattern(name) {
            self.start_source(name, &mut path);
        }
        state.paths.insert(name.to_owned(), path);
    }

    /// Spawns the supervisor of `path`'s pulled source; it ends with the path object.
    fn start_source(self: &Arc<Self>, name: &str, path: &mut LivePath) {
        path.source_running = true;
        let key = PathKey {
            name: name.to_owned(),
            id: path.id,
        };
        let on_demand = path
            .conf
            .source_on_demand()
            .then(|| path.conf.start_timeout());
        let run = source::supervise(self.clone(), key, path.conf.source().to_owned(), on_demand);
        let stop = path.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = run => {}
            }
        });
    }

    /// A restart reads the real file again: its content as loaded, or `None` (also without a
    /// real file). A file that cannot be loaded is recorded in `file_error`.
    fn reread_config_file(&self) -> Option<Vec<u8>> {
        let read = watch::read(self.config_file.as_ref()?);
        let mut state = self.state();
        match read {
            Ok((bytes, file)) => {
                state.file = file;
                state.file_error = None;
                Some(bytes)
            }
            Err(e) => {
                state.file_error = Some(e.to_string());
                None
            }
        }
    }

    /// Reboots the configuration after the old incarnation died: API paths and readers are
    /// gone, the file's paths are loaded afresh, and a new process has no reload to be quiet
    /// after.
    fn reboot(self: &Arc<Self>) {
        let mut state = self.state();
        for path in std::mem::take(&mut state.paths).into_values() {
            state.close(path);
        }
        state.kill = CancellationToken::new();
        state.started = SystemTime::now();
        state.last_reload = None;
        let file = state.file.clone();
        self.set_all_paths(&mut state, file);
    }
}

/// Validates the paths of a YAML file; the error names the bad path.
fn load_file(file_paths: &BTreeMap<String, Value>) -> Result<BTreeMap<String, PathConf>, String> {
    file_paths
        .iter()
        .map(|(name, fields)| {
            Patch::from_value(fields)
                .and_then(|patch| PathConf::new(name, &patch))
                .map(|conf| (name.clone(), conf))
                .map_err(|e| format!("path '{name}': {e}"))
        })
        .collect()
}

/// RFC 3339 with nanoseconds, UTC, as Go marshals a `time.Time`.
fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_nanos(time).to_string()
}

impl MediamtxSim {
    /// Loads the file's paths and starts the API and RTSP servers (and the watcher of a real
    /// file), each on 127.0.0.1 and a free port. A file path MediaMTX would reject fails the
    /// start (`InvalidInput`), and so does a real file that cannot be read.
    pub async fn start(opts: MediamtxSimOptions) -> io::Result<MediamtxSim> {
        let (file, seen) = match &opts.config_file {
            Some(path) => watch::read(path).map(|(bytes, file)| (file, Some(bytes)))?,
            None => load_file(&opts.file_paths)
                .map(|file| (file, None))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        };
        let (api, rtsp) = bind_pair(0, 0).await?;
        let authorization = opts
            .username
            .as_deref()
            .map(|user| rtsp::basic_auth(user, opts.password.as_deref().unwrap_or_default()));
        let shared = Arc::new(Shared {
            api_port: api.local_addr()?.port(),
            rtsp_port: rtsp.local_addr()?.port(),
            config_file: opts.config_file,
            write_cost_per_path: opts.write_cost_per_path,
            authorization,
            read_authorization: opts
                .read_user
                .as_ref()
                .map(|(user, pass)| rtsp::basic_auth(user, pass)),
            tasks: tokio::runtime::Handle::current(),
            writes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            overlapping_writes: AtomicU64::new(0),
            failing_writes: AtomicBool::new(false),
            writes_in_flight: AtomicU64::new(0),
            write_lock: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::new(file)),
        });
        shared.reboot();
        let sim = MediamtxSim {
            inner: Arc::new(Inner {
                shared,
                running: tokio::sync::Mutex::new(None),
            }),
        };
        *sim.inner.running.lock().await = Some(sim.spawn_running(api, rtsp, seen));
        Ok(sim)
    }

    /// `http://127.0.0.1:PORT`
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.inner.shared.api_port)
    }

    /// `rtsp://127.0.0.1:PORT`
    pub fn rtsp_url(&self) -> String {
        format!("rtsp://127.0.0.1:{}", self.inner.shared.rtsp_port)
    }

    /// Add, patch, replace and delete requests received, whatever their answer.
    pub fn write_count(&self) -> u64 {
        self.inner.shared.writes.load(Ordering::Relaxed)
    }

    /// Every API request received, 401s and 404s included.
    pub fn request_count(&self) -> u64 {
        self.inner.shared.requests.load(Ordering::Relaxed)
    }

    /// A fault for tests (not a behaviour of MediaMTX): while on, every API write answers 500
    /// and changes nothing, as a server in trouble would.
    pub fn set_failing_writes(&self, on: bool) {
        self.inner.shared.failing_writes.store(on, Ordering::SeqCst);
    }

    /// Writes that arrived while another write was still being handled.
    pub fn overlapping_writes(&self) -> u64 {
        self.inner.shared.overlapping_writes.load(Ordering::Relaxed)
    }

    /// Names of the configured paths (file and API), sorted.
    pub fn path_names(&self) -> Vec<String> {
        self.inner.shared.state().paths.keys().cloned().collect()
    }

    /// A path's full configuration, as `GET /v3/config/paths/get/{name}` answers it.
    pub fn path_config(&self, name: &str) -> Option<Value> {
        let state = self.inner.shared.state();
        state.paths.get(name).map(|path| path.conf.to_value())
    }

    /// A path a user configured through the API (not counted as a request): the path defaults
    /// with `fields` on top, replacing any path of that name. Fields MediaMTX would reject are
    /// logged and the call does nothing.
    pub fn add_path_by_hand(&self, name: &str, fields: Value) {
        let shared = &self.inner.shared;
        match Patch::from_value(&fields).and_then(|patch| PathConf::new(name, &patch)) {
            Ok(conf) => shared.set_path(&mut shared.state(), name, Some(conf)),
            Err(e) => tracing::warn!(name, error = %e, "mediamtx sim: path added by hand refused"),
        }
    }

    /// `started` of `/v3/info`: when this incarnation started (RFC 3339).
    pub fn started(&self) -> String {
        rfc3339(self.inner.shared.state().started)
    }

    /// Like a process restart: every connection and reader drops, paths added through the API
    /// are forgotten, the file's paths are loaded again (a real file is read again), `started`
    /// changes, and both servers listen again on the same ports. If the file cannot be loaded
    /// (see [`MediamtxSim::reload_file`]) or a port cannot be bound, the simulator stays down.
    pub async fn restart(&self) {
        let shared = &self.inner.shared;
        let mut running = self.inner.running.lock().await;
        self.stop_running(&mut running).await;
        let seen = shared.reread_config_file();
        if let Some(e) = shared.state().file_error.clone() {
            tracing::error!(error = %e, "mediamtx sim: configuration file invalid; not starting");
            return;
        }
        let bound = bind_pair(shared.api_port, shared.rtsp_port).await;
        shared.reboot();
        match bound {
            Ok((api, rtsp)) => *running = Some(self.spawn_running(api, rtsp, seen)),
            Err(e) => {
                tracing::error!(error = %e, "mediamtx sim: restart could not listen");
                shared.state().kill.cancel();
            }
        }
    }

    /// The YAML file changed to `file_paths`: the configuration becomes exactly the file's
    /// paths — paths added through the API are discarded, changed or removed paths are closed
    /// (dropping their readers), unchanged ones keep running. Like MediaMTX, a file it cannot
    /// load shuts the simulator down (until a restart with a valid file). Counts as a reload,
    /// also for the 1 s during which the watcher of a real file then ignores changes.
    pub fn reload_file(&self, file_paths: BTreeMap<String, Value>) {
        self.reload(load_file(&file_paths));
    }

    /// File reloads so far ([`MediamtxSim::reload_file`] and the watcher's), including one
    /// that failed and shut the simulator down.
    pub fn reload_count(&self) -> u64 {
        self.inner.shared.state().reloads
    }

    /// The watcher saw the content of the real file change to `bytes`: reloaded, unless
    /// within [`watch::QUIET`] of the last reload — then MediaMTX ignores the change.
    fn file_changed(&self, bytes: &[u8]) {
        let last = self.inner.shared.state().last_reload;
        if last.is_some_and(|at| at.elapsed() < watch::QUIET) {
            tracing::info!("mediamtx sim: file changed within 1 s of a reload; ignored");
            return;
        }
        self.reload(watch::parse(bytes));
    }

    /// Applies a file reload: the file's paths, or a shutdown if it failed to load.
    fn reload(&self, loaded: Result<BTreeMap<String, PathConf>, String>) {
        let shared = &self.inner.shared;
        let mut state = shared.state();
        state.reloads += 1;
        state.last_reload = Some(Instant::now());
        match loaded {
            Ok(file) => {
                state.file = file.clone();
                state.file_error = None;
                shared.set_all_paths(&mut state, file);
            }
            Err(e) => {
                tracing::error!(error = %e, "mediamtx sim: configuration file invalid; exiting");
                state.file_error = Some(e);
                state.kill.cancel();
                let sim = self.clone();
                shared.tasks.spawn(async move { sim.shutdown().await });
            }
        }
    }

    /// Attaches a simulated reader (an RTSP session) to the configured path `name`; false if
    /// there is no such path (patterns included) or `maxReaders` is reached. A reader on an
    /// on-demand path starts its source.
    pub fn add_reader(&self, name: &str) -> bool {
        let shared = &self.inner.shared;
        let mut state = shared.state();
        let reader = format!("00000000-0000-4000-8000-{:012x}", state.next_id());
        let Some(path) = state.paths.get_mut(name) else {
            return false;
        };
        let full = (path.conf.max_readers()).is_some_and(|max| path.readers.len() >= max);
        if full || conf::is_pattern(name) {
            return false;
        }
        path.readers.push(reader);
        let on_demand = path.conf.has_static_source() && path.conf.source_on_demand();
        if on_demand && !path.source_running {
            shared.start_source(name, path);
        }
        true
    }

    /// Readers attached to path `name` now.
    pub fn readers(&self, name: &str) -> usize {
        let state = self.inner.shared.state();
        state.paths.get(name).map_or(0, |path| path.readers.len())
    }

    /// Readers dropped so far by writes, deletes, restarts, reloads or lost sources.
    pub fn reader_disconnects(&self) -> u64 {
        self.inner.shared.state().reader_disconnects
    }

    /// Stops both servers, every connection and every source; [`MediamtxSim::restart`] brings
    /// it back.
    pub async fn shutdown(&self) {
        let mut running = self.inner.running.lock().await;
        self.stop_running(&mut running).await;
    }

    /// Kills the current incarnation and waits until its listeners are closed.
    async fn stop_running(&self, running: &mut Option<Running>) {
        self.inner.shared.state().kill.cancel();
        if let Some(old) = running.take() {
            old.stop().await;
        }
    }

    /// Starts the servers of the current incarnation, and the watcher of a real file whose
    /// content was `seen` when it was loaded.
    fn spawn_running(&self, api: TcpListener, rtsp: TcpListener, seen: Option<Vec<u8>>) -> Running {
        let shared = &self.inner.shared;
        let kill = shared.state().kill.clone();
        let serve = axum::serve(api, api::router(shared.clone()))
            .with_graceful_shutdown(kill.clone().cancelled_owned());
        let http = tokio::spawn(async move {
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "mediamtx sim http server failed");
            }
        });
        let watcher = shared.config_file.clone().zip(seen).map(|(path, seen)| {
            let sim = Arc::downgrade(&self.inner);
            tokio::spawn(watch::run(sim, path, seen, kill.clone()))
        });
        Running {
            http,
            rtsp: RtspServer::spawn(rtsp, kill, shared.clone()),
            watcher,
        }
    }
}

async fn bind_pair(api_port: u16, rtsp_port: u16) -> io::Result<(TcpListener, TcpListener)> {
    let bind = |port| TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    Ok((bind(api_port).await?, bind(rtsp_port).await?))
}

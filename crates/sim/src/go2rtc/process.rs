//! The simulated process: its start, restart (also in a new environment) and shutdown on
//! fixed ports, and its crash. Like go2rtc, the handlers take no lock around the stream map, so
//! an overlapping access kills the process with Go's fatal error: its kill token is cancelled,
//! both listeners close and every API connection fails at once ([`DyingIo`]), in-flight
//! requests included. A restart starts a new incarnation, with a new kill token, from the file.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::api;
use super::config::{ConfigFile, ConfigStore};
use super::producer::start_preload_workers;
use super::{Env, Go2rtcSim, Go2rtcSimOptions, Inner, Shared, State};
use crate::rtsp::{self, RtspServer};

/// How long a stop waits for open HTTP connections to be torn down.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Go's fatal error for two unsynchronised map writes (the reads' are where they read, in
/// the API's handlers).
const WRITE_WRITE: &str = "fatal error: concurrent map writes";

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

/// The tasks of one incarnation of the "process".
pub(super) struct Running {
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
    let serve = axum::serve(listener, api::router(shared.clone()))
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

impl State {
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

    fn die(&mut self, reason: &str) {
        if self.crash.is_none() {
            tracing::error!(reason, "go2rtc sim crashed");
            self.crash = Some(reason.to_owned());
        }
        self.kill.cancel();
    }
}

impl Shared {
    /// Reads the stream map; a write in progress crashes the simulator instead, and then
    /// this request never gets an answer.
    pub(super) async fn read<T>(&self, overlap: &str, look: impl FnOnce(&State) -> T) -> T {
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
    pub(super) async fn write<T>(&self, edit: impl FnOnce(&mut State) -> T) -> T {
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

//! The real go2rtc and MediaMTX, for the tests that check camsync and its simulators against
//! them. The binaries come from `CAMSYNC_GO2RTC_BIN` and `CAMSYNC_MEDIAMTX_BIN` (`.ci/run`
//! points them at `../shared/servers/`); build.rs turns each variable into a cfg
//! (`camsync_go2rtc`, `camsync_mediamtx`) so the tests that need a server are ignored, with the
//! reason, when it is absent.
//!
//! Each server runs in a temp directory of its own with a config written there, listening on
//! 127.0.0.1 only, on ports that were free when it started; everything that would listen
//! elsewhere (WebRTC, SRTP, RTMP, HLS, …) is off. [`RealServer::start`] returns once the API
//! answers; the process is killed when the value is dropped.
#![allow(dead_code)] // each test binary uses a different part

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a server may take to answer its API after being started.
const START_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Go2rtc,
    Mediamtx,
}

impl Kind {
    fn var(self) -> &'static str {
        match self {
            Kind::Go2rtc => "CAMSYNC_GO2RTC_BIN",
            Kind::Mediamtx => "CAMSYNC_MEDIAMTX_BIN",
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Kind::Go2rtc => "go2rtc.yaml",
            Kind::Mediamtx => "mediamtx.yml",
        }
    }

    /// An API route that answers 200 once the server is up.
    fn info_route(self) -> &'static str {
        match self {
            Kind::Go2rtc => "/api",
            Kind::Mediamtx => "/v3/info",
        }
    }

    /// The server's whole config, loopback only, with `tail` (e.g. `streams:`/`paths:`)
    /// appended.
    fn config(self, api: u16, rtsp: u16, tail: &str) -> String {
        match self {
            Kind::Go2rtc => format!(
                "api:\n  listen: \"127.0.0.1:{api}\"\nrtsp:\n  listen: \"127.0.0.1:{rtsp}\"\n\
                 webrtc:\n  listen: \"\"\n  ice_servers: []\nsrtp:\n  listen: \"\"\n\
                 rtmp:\n  listen: \"\"\nlog:\n  level: debug\n{tail}"
            ),
            Kind::Mediamtx => format!(
                "logLevel: debug\napi: yes\napiAddress: 127.0.0.1:{api}\nrtsp: yes\n\
                 rtspTransports: [tcp]\nrtspAddress: 127.0.0.1:{rtsp}\nrtmp: no\nhls: no\n\
                 webrtc: no\nsrt: no\nmetrics: no\npprof: no\nplayback: no\n\
                 pathDefaults:\n  rtspTransport: tcp\n{tail}"
            ),
        }
    }
}

/// A running real server; killed on drop.
pub struct RealServer {
    pub kind: Kind,
    dir: tempfile::TempDir,
    pub api_port: u16,
    pub rtsp_port: u16,
    child: Option<Child>,
    /// Variables set for the process, beside the test's own environment.
    env: Vec<(String, String)>,
}

impl RealServer {
    /// Starts the server with its config plus `tail`, on free ports, and waits for its API.
    /// A port taken by another test between choosing and binding it means new ports.
    pub async fn start(kind: Kind, tail: &str) -> RealServer {
        let mut tries = 0;
        loop {
            let dir = tempfile::tempdir().expect("temp dir");
            let (api_port, rtsp_port) = (free_port(), free_port());
            std::fs::write(
                dir.path().join(kind.file_name()),
                kind.config(api_port, rtsp_port, tail),
            )
            .expect("write the server's config");
            let mut server = RealServer {
                kind,
                dir,
                api_port,
                rtsp_port,
                child: None,
                env: Vec::new(),
            };
            tries += 1;
            match server.spawn().await {
                Ok(()) => return server,
                Err(log) if tries < 5 && log.contains("address already in use") => continue,
                Err(log) => panic!("{kind:?} exited at start:\n{log}"),
            }
        }
    }

    pub async fn go2rtc(tail: &str) -> RealServer {
        Self::start(Kind::Go2rtc, tail).await
    }

    pub async fn mediamtx(tail: &str) -> RealServer {
        Self::start(Kind::Mediamtx, tail).await
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// `rtsp://127.0.0.1:PORT`, without a path.
    pub fn rtsp_url(&self) -> String {
        format!("rtsp://127.0.0.1:{}", self.rtsp_port)
    }

    /// The YAML file the server was started with (and that it rewrites or watches).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(self.kind.file_name())
    }

    /// Sets the process's environment for its next start (a container's env file).
    pub fn set_env(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Whether the process is still running (MediaMTX exits, with status 0, on a bad file).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the process (as a crash or a reboot would) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again, same ports, same config file, and waits for its API.
    pub async fn resume(&mut self) {
        if let Err(log) = self.spawn().await {
            panic!("{:?} exited at start:\n{log}", self.kind);
        }
    }

    /// Starts the process and waits for its API; its log if it exited instead.
    async fn spawn(&mut self) -> Result<(), String> {
        self.kill();
        let binary = std::env::var(self.kind.var())
            .unwrap_or_else(|_| panic!("{} is not set", self.kind.var()));
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let err = log.try_clone().expect("log file");
        let mut command = Command::new(&binary);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        match self.kind {
            Kind::Go2rtc => command.arg("-config").arg(self.config_path()),
            Kind::Mediamtx => command.arg(self.config_path()),
        };
        let child = command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        self.child = Some(child);
        self.wait_for_api().await
    }

    async fn wait_for_api(&mut self) -> Result<(), String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let url = format!("{}{}", self.api_url(), self.kind.info_route());
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            // Up: any answer of the API, a refusal for want of credentials included.
            if let Ok(r) = client.get(&url).send().await
                && (r.status().is_success() || r.status() == reqwest::StatusCode::UNAUTHORIZED)
            {
                return Ok(());
            }
            if !self.is_running() {
                return Err(self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?} did not answer {url} within {START_DEADLINE:?}:\n{}",
                self.kind,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

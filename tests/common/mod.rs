//! Shared fixtures for the integration tests: a temp directory with camsync.yaml and
//! cameras.yaml pointing at a go2rtc simulator on 127.0.0.1:0.
#![allow(dead_code)] // each test binary uses a different part

pub mod daemon;

use std::path::PathBuf;
use std::time::Duration;

use camsync::app::{LedgerMode, load_inventory, reconciler};
use camsync::config::process_env;
use camsync::config::{self, Config};
use camsync::reconcile::report::SyncReport;
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};

pub const PASSWORD: &str = "Pw-Marker-7f3a9c";

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub go2rtc: Go2rtcSim,
    /// Present when the fixture has a MediaMTX target too.
    pub mediamtx: Option<MediamtxSim>,
}

impl Fixture {
    pub async fn new() -> Fixture {
        Self::with(Go2rtcSimOptions::default()).await
    }

    pub async fn with(options: Go2rtcSimOptions) -> Fixture {
        Self::build(options, None).await
    }

    /// go2rtc and MediaMTX, both as targets.
    pub async fn with_mediamtx(options: MediamtxSimOptions) -> Fixture {
        Self::build(Go2rtcSimOptions::default(), Some(options)).await
    }

    pub async fn build(go2rtc: Go2rtcSimOptions, mediamtx: Option<MediamtxSimOptions>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let go2rtc = Go2rtcSim::start(go2rtc).await.unwrap();
        let mediamtx = match mediamtx {
            Some(options) => Some(MediamtxSim::start(options).await.unwrap()),
            None => None,
        };
        let fixture = Fixture {
            dir,
            go2rtc,
            mediamtx,
        };
        fixture.write_config("");
        std::fs::write(fixture.path("cam.password"), format!("{PASSWORD}\n")).unwrap();
        fixture
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("camsync.yaml")
    }

    /// Rewrites camsync.yaml's `source:` section (a file by default) to `source` (YAML lines).
    pub fn set_source(&self, source: &str) {
        let text = std::fs::read_to_string(self.config_path()).unwrap();
        assert!(
            text.starts_with("source:\n  file: cameras.yaml\n"),
            "{text}"
        );
        let text = text.replacen("source:\n  file: cameras.yaml\n", source, 1);
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Writes camsync.yaml; `extra` is appended (top-level keys).
    pub fn write_config(&self, extra: &str) {
        self.write_config_with_resync("1h", extra);
    }

    /// Health monitoring is off unless `extra` configures it: the fixtures' cameras are
    /// documentation addresses (192.0.2.x) that a test must never contact; a test that wants
    /// health uses simulated cameras on 127.0.0.1.
    pub fn write_config_with_resync(&self, resync: &str, extra: &str) {
        let health = if extra.contains("health:") {
            ""
        } else {
            "health:\n  enabled: false\n"
        };
        let mediamtx = self.mediamtx.as_ref().map_or(String::new(), |m| {
            format!("  - name: mediamtx\n    kind: mediamtx\n    api: {}\n    rtsp: {}\n    timeout: 5s\n", m.api_url(), m.rtsp_url())
        });
        let text = format!(
            "source:\n  file: cameras.yaml\ntargets:\n  - name: go2rtc\n    kind: go2rtc\n    api: {}\n    rtsp: {}\n    timeout: 5s\n{mediamtx}state: state/camsync.db\nresync: {resync}\n{health}{extra}",
            self.go2rtc.api_url(),
            self.go2rtc.rtsp_url()
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Writes cameras.yaml from (name, url) pairs; every camera uses the marker password.
    pub fn write_cameras(&self, cameras: &[(&str, &str)]) {
        std::fs::write(self.path("cameras.yaml"), inventory(cameras)).unwrap();
    }

    pub fn config(&self) -> Config {
        config::load(&self.config_path(), &process_env).unwrap()
    }

    /// A fresh camsync "process": config, inventory, ledger, reconciler; then one sync.
    pub async fn sync(&self) -> SyncReport {
        let config = self.config();
        let inventory = load_inventory(&config).await.unwrap();
        reconciler(&config, LedgerMode::ReadWrite)
            .unwrap()
            .sync(&inventory)
            .await
    }

    pub async fn plan(&self) -> SyncReport {
        let config = self.config();
        let inventory = load_inventory(&config).await.unwrap();
        reconciler(&config, LedgerMode::DryRun)
            .unwrap()
            .plan(&inventory)
            .await
    }

    pub fn names(&self) -> Vec<String> {
        self.go2rtc.stream_names()
    }

    pub fn mtx(&self) -> &MediamtxSim {
        self.mediamtx
            .as_ref()
            .expect("a fixture made with_mediamtx")
    }
}

pub fn inventory(cameras: &[(&str, &str)]) -> String {
    let mut text = String::from("cameras:\n");
    if cameras.is_empty() {
        text = "cameras: []\n".into();
    }
    for (name, url) in cameras {
        text.push_str(&format!(
            "  - name: {name}\n    url: {url}\n    username: admin\n    password_file: cam.password\n"
        ));
    }
    text
}

/// The URL camsync should send for `url` with the marker password.
pub fn with_credentials(url: &str) -> String {
    url.replacen("://", &format!("://admin:{PASSWORD}@"), 1)
}

/// A port on 127.0.0.1 that refuses connections for as long as the socket lives: bound but not
/// listening, so nothing else (a browser, another test's simulator) can take it meanwhile, as
/// could happen to a port merely closed.
pub fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Polls `condition` every 20 ms until it holds or `deadline` passes.
pub async fn eventually(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

pub fn assert_no_secret(text: &str) {
    assert!(
        !text.contains(PASSWORD),
        "the password leaked into:\n{text}"
    );
}

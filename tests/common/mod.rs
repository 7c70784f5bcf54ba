//! Shared fixtures for the integration tests: a temp directory with camsync.yaml and
//! cameras.yaml pointing at a go2rtc simulator on 127.0.0.1:0.
#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;
use std::time::Duration;

use camsync::app::{LedgerMode, load_inventory, process_env, reconciler};
use camsync::config::{self, Config};
use camsync::reconcile::report::SyncReport;
use camsync::sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};

pub const PASSWORD: &str = "Pw-Marker-7f3a9c";

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub go2rtc: Go2rtcSim,
}

impl Fixture {
    pub async fn new() -> Fixture {
        Self::with(Go2rtcSimOptions::default()).await
    }

    pub async fn with(options: Go2rtcSimOptions) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let go2rtc = Go2rtcSim::start(options).await.unwrap();
        let fixture = Fixture { dir, go2rtc };
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

    /// Writes camsync.yaml; `extra` is appended (top-level keys).
    pub fn write_config(&self, extra: &str) {
        self.write_config_with_resync("1h", extra);
    }

    pub fn write_config_with_resync(&self, resync: &str, extra: &str) {
        let text = format!(
            "source:\n  file: cameras.yaml\ntargets:\n  - name: go2rtc\n    kind: go2rtc\n    api: {}\n    rtsp: {}\n    timeout: 5s\nstate: state/camsync.db\nresync: {resync}\n{extra}",
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
        let inventory = load_inventory(&config).unwrap();
        reconciler(&config, LedgerMode::ReadWrite)
            .unwrap()
            .sync(&inventory)
            .await
    }

    pub async fn plan(&self) -> SyncReport {
        let config = self.config();
        let inventory = load_inventory(&config).unwrap();
        reconciler(&config, LedgerMode::DryRun)
            .unwrap()
            .plan(&inventory)
            .await
    }

    pub fn names(&self) -> Vec<String> {
        self.go2rtc.stream_names()
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

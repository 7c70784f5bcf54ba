//! The two backends of each server: the simulator or the real binary, both started from a
//! YAML file in a temp directory (so persistence and file watching are real on both), with
//! the same few controls the scenarios need.

use std::collections::BTreeMap;
use std::path::PathBuf;

use camsync::sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync::sim::mediamtx::{MediamtxSim, MediamtxSimOptions};

use crate::real::{Kind, RealServer};

/// A go2rtc to run a scenario against.
pub enum Go2rtc {
    Sim(Go2rtcSim, tempfile::TempDir),
    Real(RealServer),
}

impl Go2rtc {
    pub async fn sim() -> Go2rtc {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("go2rtc.yaml");
        std::fs::write(&file, "log:\n  level: info\n").expect("write go2rtc.yaml");
        let sim = Go2rtcSim::start(Go2rtcSimOptions {
            config_file: Some(file),
            ..Go2rtcSimOptions::default()
        })
        .await
        .expect("start the go2rtc simulator");
        Go2rtc::Sim(sim, dir)
    }

    pub async fn real() -> Go2rtc {
        Go2rtc::Real(RealServer::start(Kind::Go2rtc, "").await)
    }

    pub fn api(&self, route: &str) -> String {
        match self {
            Go2rtc::Sim(sim, _) => format!("{}{route}", sim.api_url()),
            Go2rtc::Real(real) => format!("{}{route}", real.api_url()),
        }
    }

    /// `rtsp://127.0.0.1:PORT/<name>` on go2rtc's RTSP server.
    pub fn rtsp(&self, name: &str) -> String {
        match self {
            Go2rtc::Sim(sim, _) => format!("{}/{name}", sim.rtsp_url()),
            Go2rtc::Real(real) => format!("{}/{name}", real.rtsp_url()),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        match self {
            Go2rtc::Sim(_, dir) => dir.path().join("go2rtc.yaml"),
            Go2rtc::Real(real) => real.config_path(),
        }
    }

    /// "sim" or "real", for messages.
    pub fn label(&self) -> &'static str {
        match self {
            Go2rtc::Sim(..) => "sim",
            Go2rtc::Real(_) => "real",
        }
    }
}

/// A MediaMTX to run a scenario against.
pub enum Mediamtx {
    Sim(MediamtxSim, tempfile::TempDir),
    Real(RealServer),
}

impl Mediamtx {
    pub async fn sim() -> Mediamtx {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("mediamtx.yml");
        std::fs::write(&file, "logLevel: info\n").expect("write mediamtx.yml");
        let sim = MediamtxSim::start(MediamtxSimOptions {
            config_file: Some(file),
            file_paths: BTreeMap::new(),
            ..MediamtxSimOptions::default()
        })
        .await
        .expect("start the MediaMTX simulator");
        Mediamtx::Sim(sim, dir)
    }

    pub async fn real() -> Mediamtx {
        Mediamtx::Real(RealServer::start(Kind::Mediamtx, "").await)
    }

    pub fn api(&self, route: &str) -> String {
        match self {
            Mediamtx::Sim(sim, _) => format!("{}{route}", sim.api_url()),
            Mediamtx::Real(real) => format!("{}{route}", real.api_url()),
        }
    }

    pub fn rtsp(&self, name: &str) -> String {
        match self {
            Mediamtx::Sim(sim, _) => format!("{}/{name}", sim.rtsp_url()),
            Mediamtx::Real(real) => format!("{}/{name}", real.rtsp_url()),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        match self {
            Mediamtx::Sim(_, dir) => dir.path().join("mediamtx.yml"),
            Mediamtx::Real(real) => real.config_path(),
        }
    }

    /// Replaces the `paths:` section of the server's file, atomically (rename), as camsync
    /// writes it; the rest of the file is kept.
    pub fn write_paths(&self, paths_yaml: &str) {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).expect("read mediamtx.yml");
        let head = text.split("\npaths:").next().unwrap_or_default();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\npaths:\n{paths_yaml}", head.trim_end()))
            .expect("write mediamtx.yml");
        std::fs::rename(&tmp, &path).expect("rename mediamtx.yml");
    }

    /// Stops the process and starts it again, as a crash and a supervisor would.
    pub async fn restart(&mut self) {
        match self {
            Mediamtx::Sim(sim, _) => sim.restart().await,
            Mediamtx::Real(real) => real.resume().await,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Mediamtx::Sim(..) => "sim",
            Mediamtx::Real(_) => "real",
        }
    }
}

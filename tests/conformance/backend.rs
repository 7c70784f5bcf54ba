//! The two backends of each server: the simulator or the real binary, both started from a
//! YAML file in a temp directory (so persistence and file watching are real on both), with
//! the same few controls the scenarios need.

use std::path::PathBuf;

use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};

use crate::real::{Kind, RealServer};

/// What the scenarios ask of a simulator.
pub trait Simulator {
    /// Its file's name in the temp directory.
    const FILE: &'static str;
    fn api_url(&self) -> String;
    fn rtsp_url(&self) -> String;
}

impl Simulator for Go2rtcSim {
    const FILE: &'static str = "go2rtc.yaml";
    fn api_url(&self) -> String {
        Go2rtcSim::api_url(self)
    }
    fn rtsp_url(&self) -> String {
        Go2rtcSim::rtsp_url(self)
    }
}

impl Simulator for MediamtxSim {
    const FILE: &'static str = "mediamtx.yml";
    fn api_url(&self) -> String {
        MediamtxSim::api_url(self)
    }
    fn rtsp_url(&self) -> String {
        MediamtxSim::rtsp_url(self)
    }
}

/// A server to run a scenario against: the simulator `S`, or the real binary.
pub enum Backend<S> {
    Sim(S, tempfile::TempDir),
    Real(RealServer),
}

/// A go2rtc to run a scenario against.
pub type Go2rtc = Backend<Go2rtcSim>;
/// A MediaMTX to run a scenario against.
pub type Mediamtx = Backend<MediamtxSim>;

impl<S: Simulator> Backend<S> {
    /// A temp directory holding the simulator's file with `text`.
    fn sim_dir(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join(S::FILE);
        std::fs::write(&file, text).expect("write the simulator's file");
        (dir, file)
    }

    pub fn api(&self, route: &str) -> String {
        match self {
            Backend::Sim(sim, _) => format!("{}{route}", sim.api_url()),
            Backend::Real(real) => format!("{}{route}", real.api_url()),
        }
    }

    /// `rtsp://127.0.0.1:PORT/<name>` on the server's RTSP server.
    pub fn rtsp(&self, name: &str) -> String {
        match self {
            Backend::Sim(sim, _) => format!("{}/{name}", sim.rtsp_url()),
            Backend::Real(real) => format!("{}/{name}", real.rtsp_url()),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        match self {
            Backend::Sim(_, dir) => dir.path().join(S::FILE),
            Backend::Real(real) => real.config_path(),
        }
    }

    /// "sim" or "real", for messages.
    pub fn label(&self) -> &'static str {
        match self {
            Backend::Sim(..) => "sim",
            Backend::Real(_) => "real",
        }
    }
}

impl Go2rtc {
    pub async fn sim() -> Go2rtc {
        let (dir, file) = Self::sim_dir("log:\n  level: info\n");
        let sim = Go2rtcSim::start(Go2rtcSimOptions {
            config_file: Some(file),
            ..Go2rtcSimOptions::default()
        })
        .await
        .expect("start the go2rtc simulator");
        Backend::Sim(sim, dir)
    }

    pub async fn real() -> Go2rtc {
        Backend::Real(RealServer::start(Kind::Go2rtc, "").await)
    }

    /// What the server said as it died: the simulator's crash, or the real process's log.
    pub fn last_words(&self) -> String {
        match self {
            Backend::Sim(sim, _) => sim.crashed().unwrap_or_default(),
            Backend::Real(real) => real.log(),
        }
    }

    /// Stops the process and starts it again with `env` (a container started again with
    /// another env file); its file's `${VAR}`s are expanded from it.
    pub async fn restart_with_env(&mut self, env: &[(&str, &str)]) {
        match self {
            Backend::Sim(sim, _) => {
                let env = env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                sim.restart_with_env(env).await;
            }
            Backend::Real(real) => {
                real.set_env(env);
                real.resume().await;
            }
        }
    }
}

impl Mediamtx {
    pub async fn sim() -> Mediamtx {
        Self::sim_with(MediamtxSimOptions::default()).await
    }

    pub async fn real() -> Mediamtx {
        Self::real_with("").await
    }

    /// A simulator started with `opts`, its file the backend's own.
    pub async fn sim_with(opts: MediamtxSimOptions) -> Mediamtx {
        let (dir, file) = Self::sim_dir("logLevel: info\n");
        let sim = MediamtxSim::start(MediamtxSimOptions {
            config_file: Some(file),
            ..opts
        })
        .await
        .expect("start the MediaMTX simulator");
        Backend::Sim(sim, dir)
    }

    /// The real server with `tail` added to its config.
    pub async fn real_with(tail: &str) -> Mediamtx {
        Backend::Real(RealServer::start(Kind::Mediamtx, tail).await)
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

    /// Attaches a reader to path `name`: the simulator's own, or an RTSP session playing it on
    /// the real server. The reader lasts as long as the value.
    pub async fn attach_reader(&self, name: &str) -> Option<tokio::net::TcpStream> {
        match self {
            Backend::Sim(sim, _) => {
                assert!(sim.add_reader(name), "sim: a reader on {name}");
                None
            }
            Backend::Real(_) => Some(crate::player::play(&self.rtsp(name)).await),
        }
    }

    /// Stops the process and starts it again, as a crash and a supervisor would.
    pub async fn restart(&mut self) {
        match self {
            Backend::Sim(sim, _) => sim.restart().await,
            Backend::Real(real) => real.resume().await,
        }
    }
}

/// MediaMTX's `authInternalUsers:` section: each user with a password (empty for `any`) and
/// the actions it may take, from any address.
pub fn mediamtx_users(users: &[(&str, &str, &[&str])]) -> String {
    let mut text = String::from("authInternalUsers:\n");
    for (user, pass, actions) in users {
        text.push_str(&format!(
            "- user: {user}\n  pass: {pass}\n  ips: []\n  permissions:\n"
        ));
        for action in *actions {
            text.push_str(&format!("  - action: {action}\n"));
        }
    }
    text
}

//! What the soak runs camsync against: a go2rtc and a MediaMTX simulator behind API proxies,
//! a simulated camera per inventory row (and spares to move cameras to), an NVR's SQLite
//! database as the source, a user's own stream on each server, and `camsync run` as a child
//! process that can be killed and started again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use camsync::health::probe::Probe;
use camsync_sim::camera::SimCamera;
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
use futures_util::StreamExt;
use rusqlite::Connection;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::disk::LedgerDisk;
use crate::proxy::ApiProxy;

/// Every camera's password: it must never appear in anything camsync prints or serves.
pub const PASSWORD: &str = "Soak-Secret-5c1e";
/// A stream the user keeps in go2rtc's file, and a path in MediaMTX's: camsync never owns them.
pub const USER_STREAM: &str = "user_door";
pub const USER_PATH: &str = "user_yard";
const USER_SOURCE: &str = "rtsp://127.0.0.1:9/user";
/// Cameras that no inventory row uses at first: an edit moves a row to one of them.
const SPARES: usize = 30;

pub struct World {
    pub dir: tempfile::TempDir,
    pub go2rtc: Go2rtcSim,
    pub mediamtx: MediamtxSim,
    pub go2rtc_api: ApiProxy,
    pub mediamtx_api: ApiProxy,
    pub cameras: Vec<SimCamera>,
    /// The NVR's connection to its database (the source camsync reads).
    pub nvr: Connection,
    /// Camera name → index into `cameras`: what the inventory holds now.
    pub wanted: BTreeMap<String, usize>,
    /// Rows the soak deleted, to add back later.
    pub removed: BTreeSet<String>,
    pub ledger_disk: Result<LedgerDisk, String>,
    pub camsync: Camsync,
    user_stream: Option<Vec<String>>,
    user_path: Option<Value>,
}

impl World {
    pub async fn start(count: usize) -> World {
        let dir = tempfile::tempdir().unwrap();
        let go2rtc = Go2rtcSim::start(Go2rtcSimOptions {
            file_streams: BTreeMap::from([(USER_STREAM.into(), vec![USER_SOURCE.into()])]),
            ..Go2rtcSimOptions::default()
        })
        .await
        .unwrap();
        go2rtc.set_stuck_after_reboot(true);
        let mediamtx = MediamtxSim::start(MediamtxSimOptions {
            file_paths: user_paths(),
            ..MediamtxSimOptions::default()
        })
        .await
        .unwrap();
        let go2rtc_api = ApiProxy::start(&go2rtc.api_url()).await;
        let mediamtx_api = ApiProxy::start(&mediamtx.api_url()).await;
        let mut cameras = Vec::with_capacity(count + SPARES);
        for _ in 0..count + SPARES {
            cameras.push(SimCamera::start_with_auth("admin", PASSWORD).await.unwrap());
        }

        let nvr = Connection::open(dir.path().join("nvr.db")).unwrap();
        nvr.execute_batch(include_str!("../../examples/sqlite/schema.sql"))
            .unwrap();
        // A rollback journal: the NVR's exclusive lock keeps readers out ("database is locked").
        nvr.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
            .unwrap();
        let ledger_disk = LedgerDisk::mount(&dir.path().join("state"));
        std::fs::write(
            dir.path().join("camsync.yaml"),
            config(&go2rtc, &mediamtx, &go2rtc_api, &mediamtx_api),
        )
        .unwrap();

        let mut world = World {
            camsync: Camsync::start(dir.path()),
            dir,
            user_stream: go2rtc.stream_sources(USER_STREAM),
            user_path: mediamtx.path_config(USER_PATH),
            go2rtc,
            mediamtx,
            go2rtc_api,
            mediamtx_api,
            cameras,
            nvr,
            wanted: BTreeMap::new(),
            removed: BTreeSet::new(),
            ledger_disk,
        };
        assert!(world.user_stream.is_some() && world.user_path.is_some());
        world.nvr.execute_batch("BEGIN").unwrap();
        for i in 0..count {
            world.insert(&format!("cam{i:03}"), i);
        }
        world.nvr.execute_batch("COMMIT").unwrap();
        world
    }

    /// `rtsp://admin:PASSWORD@127.0.0.1:PORT/live`: the NVR keeps credentials in the URL.
    fn url(&self, camera: usize) -> String {
        format!(
            "rtsp://admin:{PASSWORD}@127.0.0.1:{}/live",
            self.cameras[camera].port()
        )
    }

    pub fn insert(&mut self, name: &str, camera: usize) {
        self.nvr
            .execute(
                "INSERT INTO streams (name, url, record) VALUES (?1, ?2, 0)",
                (name, self.url(camera)),
            )
            .unwrap();
        self.wanted.insert(name.into(), camera);
        self.removed.remove(name);
    }

    pub fn delete(&mut self, name: &str) {
        self.nvr
            .execute("DELETE FROM streams WHERE name = ?1", [name])
            .unwrap();
        self.wanted.remove(name);
        self.removed.insert(name.into());
    }

    pub fn point(&mut self, name: &str, camera: usize) {
        self.nvr
            .execute(
                "UPDATE streams SET url = ?2 WHERE name = ?1",
                (name, self.url(camera)),
            )
            .unwrap();
        self.wanted.insert(name.into(), camera);
    }

    /// A camera no inventory row points at.
    pub fn spare_camera(&self, pick: usize) -> usize {
        let used: BTreeSet<usize> = self.wanted.values().copied().collect();
        let free: Vec<usize> = (0..self.cameras.len())
            .filter(|i| !used.contains(i))
            .collect();
        free[pick % free.len()]
    }

    /// What breaks the soak's invariants at this moment, whatever faults are active: a user's
    /// stream that camsync changed, a go2rtc crashed by a read overlapping a write, overlapping
    /// MediaMTX writes.
    pub fn broken_invariant(&self) -> Option<String> {
        if self.go2rtc.stream_sources(USER_STREAM) != self.user_stream {
            return Some(format!(
                "go2rtc: the user's stream {USER_STREAM} was changed"
            ));
        }
        if self.mediamtx.path_config(USER_PATH) != self.user_path {
            return Some(format!("MediaMTX: the user's path {USER_PATH} was changed"));
        }
        if let Some(crash) = self.go2rtc.crashed() {
            return Some(format!("go2rtc crashed: {crash}"));
        }
        if self.mediamtx.overlapping_writes() > 0 {
            return Some("MediaMTX saw two writes at once".into());
        }
        None
    }

    /// Everything camsync's processes printed so far.
    pub fn camsync_output(&self) -> String {
        std::fs::read_to_string(self.camsync.log_path()).unwrap_or_default()
    }

    /// Why the servers are not as the inventory says, cheapest checks first: a stream missing
    /// or pointing at another camera, an orphan of camsync's, a stream the server does not
    /// serve (`DESCRIBE` through it). Empty when every wanted stream is served on both.
    pub async fn unserved(&self, describe: &mut BTreeSet<(usize, String)>) -> Vec<String> {
        let mut why = Vec::new();
        for (name, &camera) in &self.wanted {
            let at = format!("@127.0.0.1:{}/", self.cameras[camera].port());
            match self.go2rtc.stream_sources(name) {
                None => why.push(format!("go2rtc: {name} is missing")),
                Some(sources) if !sources.iter().any(|s| s.contains(&at)) => {
                    why.push(format!("go2rtc: {name} points at another camera"))
                }
                Some(_) => {}
            }
            match self.mediamtx.path_config(name) {
                None => why.push(format!("MediaMTX: {name} is missing")),
                Some(path) if !path["source"].as_str().is_some_and(|s| s.contains(&at)) => {
                    why.push(format!("MediaMTX: {name} points at another camera"))
                }
                Some(_) => {}
            }
        }
        for name in self.go2rtc.stream_names() {
            if name != USER_STREAM && !self.wanted.contains_key(&name) {
                why.push(format!("go2rtc: orphan {name}"));
            }
        }
        for name in self.mediamtx.path_names() {
            if !user_paths().contains_key(&name) && !self.wanted.contains_key(&name) {
                why.push(format!("MediaMTX: orphan {name}"));
            }
        }
        if !why.is_empty() {
            return why;
        }
        // Served streams stay served once their faults have ended: only the rest is asked again.
        describe.retain(|(_, name)| self.wanted.contains_key(name));
        let rtsp = [self.go2rtc.rtsp_url(), self.mediamtx.rtsp_url()];
        let failed: Vec<(usize, String, u16)> = futures_util::stream::iter(describe.iter())
            .map(|(server, name)| {
                let url = format!("{}/{name}", rtsp[*server]);
                async move { (*server, name.clone(), describe_status(&url).await) }
            })
            .buffer_unordered(32)
            .filter(|(_, _, status)| std::future::ready(*status != 200))
            .collect()
            .await;
        describe.retain(|key| failed.iter().any(|(s, n, _)| (*s, n) == (key.0, &key.1)));
        failed
            .into_iter()
            .map(|(server, name, status)| {
                let server = ["go2rtc", "MediaMTX"][server];
                format!("{server}: DESCRIBE {name} answers {status}")
            })
            .collect()
    }

    /// Every wanted stream on both servers, to be asked with `DESCRIBE`.
    pub fn all_streams(&self) -> BTreeSet<(usize, String)> {
        self.wanted
            .keys()
            .flat_map(|name| [(0, name.clone()), (1, name.clone())])
            .collect()
    }

    /// Waits until every wanted stream is served (or `bound` passes); how long it took, or why
    /// not.
    pub async fn converge(&self, bound: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let mut describe = self.all_streams();
        loop {
            if let Some(broken) = self.broken_invariant() {
                return Err(broken);
            }
            let why = self.unserved(&mut describe).await;
            if why.is_empty() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > bound {
                let shown: Vec<&String> = why.iter().take(8).collect();
                return Err(format!(
                    "not served {:?} after the faults ended ({} problems): {shown:?}",
                    bound,
                    why.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn user_paths() -> BTreeMap<String, Value> {
    BTreeMap::from([(USER_PATH.into(), json!({ "source": USER_SOURCE }))])
}

async fn describe_status(url: &str) -> u16 {
    let probe = Probe {
        url: url::Url::parse(url).unwrap(),
        credentials: None,
        timeout: Duration::from_secs(2),
    };
    probe.describe().await.map_or(0, |answer| answer.status)
}

/// Short intervals all round, so that a fault's end is acted on within seconds.
fn config(go2rtc: &Go2rtcSim, mediamtx: &MediamtxSim, g: &ApiProxy, m: &ApiProxy) -> String {
    format!(
        "source:
  sqlite:
    path: nvr.db
    poll: 250ms
    query: SELECT id, name, url, enabled FROM streams
targets:
  - name: go2rtc
    kind: go2rtc
    api: {}
    rtsp: {}
    timeout: 3s
  - name: mediamtx
    kind: mediamtx
    api: {}
    rtsp: {}
    timeout: 3s
state: state/camsync.db
resync: 5s
restart_check: 500ms
retry:
  min: 100ms
  max: 2s
health:
  interval: 500ms
  grace: 2s
  probe_timeout: 2s
  camera_watch: 100ms
api:
  listen: 127.0.0.1:0
",
        g.url(),
        go2rtc.rtsp_url(),
        m.url(),
        mediamtx.rtsp_url()
    )
}

/// `camsync run` as a child process; its stdout and stderr go to `camsync.log`, appended
/// across restarts.
pub struct Camsync {
    dir: PathBuf,
    child: Child,
    /// Where this process's output starts in the log.
    log_from: u64,
}

impl Camsync {
    pub fn start(dir: &Path) -> Camsync {
        let log_path = dir.join("camsync.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let log_from = log.metadata().unwrap().len();
        let child = Command::new(env!("CARGO_BIN_EXE_camsync"))
            .arg("run")
            .arg("--config")
            .arg(dir.join("camsync.yaml"))
            .env_remove("CAMSYNC_LOG")
            .env_remove("CAMSYNC_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Camsync {
            dir: dir.to_path_buf(),
            child,
            log_from,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("camsync.log")
    }

    /// `kill -9`, then waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Why the process is no longer running, if it is not.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// The process's resident memory (KiB) and open file descriptors.
    pub fn footprint(&self) -> (u64, usize) {
        let pid = self.child.id();
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        (rss, fds)
    }

    /// `http://ADDRESS` of this process's API, from its log (waits for it to listen).
    pub async fn api(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read(self.log_path()).unwrap_or_default();
            let text = String::from_utf8_lossy(&log[(self.log_from as usize).min(log.len())..])
                .into_owned();
            let addr = text
                .lines()
                .find(|l| l.contains("HTTP API listening"))
                .and_then(|l| l.split("addr=").nth(1))
                .and_then(|a| a.split_whitespace().next());
            if let Some(addr) = addr {
                return format!("http://{addr}");
            }
            assert!(Instant::now() < deadline, "camsync's API never listened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the log, for a failure message.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Camsync {
    fn drop(&mut self) {
        self.kill();
    }
}

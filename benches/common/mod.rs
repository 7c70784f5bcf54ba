//! Helpers shared by the benchmarks.

use std::str::FromStr;
use std::time::Duration;

use camsync::camera::{CameraSpec, ValidationContext};
use camsync::config::TargetKind;
use camsync::profile::Profiles;
use camsync::secret::Secret;
use camsync::source::{Inventory, Record, validate_records};

/// The real go2rtc and MediaMTX, started the way the tests start them (the module allows
/// its own dead code).
#[path = "../../tests/common/real.rs"]
pub mod real;
#[allow(dead_code)] // only the recovery benchmark taps its cameras
pub mod tap;

/// Whether the real servers' binaries are set (`CAMSYNC_GO2RTC_BIN` and
/// `CAMSYNC_MEDIAMTX_BIN`): then the benchmarks that have a real-server mode run against them.
#[allow(dead_code)] // not every benchmark has a real-server mode
pub fn real_servers() -> bool {
    ["CAMSYNC_GO2RTC_BIN", "CAMSYNC_MEDIAMTX_BIN"]
        .iter()
        .all(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
}

/// The number in environment variable `name`, or `default` when it is unset or not a number.
pub fn env_number<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The nearest-rank `p` quantile (0 < p ≤ 1) of `sorted`; `None` when it is empty.
#[allow(dead_code)] // sync.rs reports no quantiles
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

/// A validated inventory of the cameras `names` for `targets` (name, kind), each with a
/// username and password, on a loopback port no camera listens on (a real server that dialled
/// one would reach nothing beyond this machine).
#[allow(dead_code)] // not every benchmark builds inventories
pub fn inventory(
    names: impl IntoIterator<Item = String>,
    targets: &[(String, TargetKind)],
) -> Inventory {
    let targets = targets.iter().cloned().collect();
    let profiles = Profiles::builtin();
    let ctx = ValidationContext::new(std::path::Path::new("."), &targets, &profiles, &|_| None);
    let records = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| Record {
            location: format!("bench:{i}"),
            name: None,
            spec: Ok(std::sync::Arc::new(CameraSpec {
                url: Some(format!("rtsp://127.0.0.1:{}/{name}", 10_000 + i % 250)),
                username: Some("admin".into()),
                password: Some(Secret::new("bench-password")),
                name,
                ..CameraSpec::default()
            })),
        })
        .collect();
    validate_records(records, &ctx)
}

/// A field of /proc/self/status in KiB (`VmRSS`, `VmHWM` for the peak); 0 when unreadable.
#[allow(dead_code)] // not every benchmark reports memory
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A `camsync run` in this process, its API on 127.0.0.1:0, past its first sync.
#[allow(dead_code)] // only the benchmarks that drive the API start one
pub struct Daemon {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub progress: tokio::sync::watch::Receiver<camsync::daemon::Progress>,
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), camsync::app::AppError>>,
}

#[allow(dead_code)]
impl Daemon {
    pub async fn start(
        config: camsync::config::Config,
    ) -> Result<Daemon, Box<dyn std::error::Error + Send + Sync>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (tx, mut progress) = tokio::sync::watch::channel(camsync::daemon::Progress::default());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let wiring = camsync::daemon::Wiring {
            progress: tx,
            api: Some(listener),
        };
        let task = tokio::spawn(camsync::daemon::run_with(config, shutdown.clone(), wiring));
        tokio::time::timeout(Duration::from_secs(60), progress.wait_for(|s| s.syncs >= 1))
            .await??;
        Ok(Daemon {
            base,
            progress,
            shutdown,
            task,
        })
    }

    /// Shuts it down; its error, if it stopped with one.
    pub async fn stop(self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.shutdown.cancel();
        self.task.await??;
        Ok(())
    }
}

//! Sync throughput against the simulators on loopback. Prints wall time, write calls and
//! calls/s for:
//! 1. go2rtc alone: a cold sync of N cameras, then a resync with nothing changed;
//! 2. go2rtc + MediaMTX: the same, then a MediaMTX restart and the time until all N paths are
//!    back;
//! 3. a `mediamtx-file` target: the one atomic write of all N paths, and the time until the
//!    simulated MediaMTX, watching its file, has loaded them.
//!
//! With `CAMSYNC_GO2RTC_BIN` and `CAMSYNC_MEDIAMTX_BIN` set, the same runs go to the real
//! servers instead (see [`real`]): a cold sync into go2rtc next to a minimal sequential HTTP
//! client, N paths into MediaMTX over the API and through its file.
//!
//! Run: `cargo bench --bench sync`. Environment:
//! - `CAMSYNC_BENCH_CAMERAS` (default 1000);
//! - `CAMSYNC_BENCH_MTX_COST_US` (default 0): emulated cost of each MediaMTX write per
//!   configured path, in µs. The real server re-evaluates its whole configuration on every write
//!   (about 130 µs per path at 1,000 paths, SERVERS.md), so 130 approximates it.

mod common;

use common::real::{Kind, RealServer};
use common::{env_number, inventory, real_servers};

use std::sync::Arc;
use std::time::{Duration, Instant};

use camsync::config::{TargetConfig, TargetKind};
use camsync::ledger::Ledger;
use camsync::reconcile::Reconciler;
use camsync::source::Inventory;
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn target(name: &str, kind: TargetKind, api: String) -> BenchResult<TargetConfig> {
    Ok(TargetConfig {
        api: Some(api.parse()?),
        ..file_target(name, kind, None)
    })
}

fn file_target(name: &str, kind: TargetKind, path: Option<std::path::PathBuf>) -> TargetConfig {
    TargetConfig {
        name: name.into(),
        kind,
        api: None,
        rtsp: None,
        username: None,
        password: None,
        timeout: Duration::from_secs(30),
        path,
        inline_credentials: true,
        env_file: None,
        max_writes_per_minute: None,
        max_in_flight: 1,
    }
}

fn make_inventory(n: usize, targets: &[TargetConfig]) -> Inventory {
    let targets: Vec<(String, TargetKind)> =
        targets.iter().map(|t| (t.name.clone(), t.kind)).collect();
    inventory((0..n).map(|i| format!("cam{i:05}")), &targets)
}

/// Counts server calls across the simulators of one scenario.
struct Counters<'a> {
    go2rtc: &'a Go2rtcSim,
    mediamtx: Option<&'a MediamtxSim>,
}

impl Counters<'_> {
    fn read(&self) -> (u64, u64) {
        let (mw, mr) = self
            .mediamtx
            .map_or((0, 0), |m| (m.write_count(), m.request_count()));
        (
            self.go2rtc.write_count() + mw,
            self.go2rtc.request_count() + mr,
        )
    }
}

fn row(label: &str, wall: Duration, writes: u64, calls: u64) {
    println!(
        "{label:<34} {:>10.1} {writes:>12} {calls:>12} {:>10.0}",
        wall.as_secs_f64() * 1e3,
        calls as f64 / wall.as_secs_f64()
    );
}

async fn timed_sync(
    label: &str,
    reconciler: &Reconciler,
    inventory: &Inventory,
    counters: &Counters<'_>,
) -> BenchResult<()> {
    let (w0, c0) = counters.read();
    let started = Instant::now();
    let report = reconciler.sync(inventory).await;
    let wall = started.elapsed();
    if !report.ok() {
        return Err(format!("sync failed:\n{}", report.render_text()).into());
    }
    let (w1, c1) = counters.read();
    row(label, wall, w1 - w0, c1 - c0);
    Ok(())
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let n = env_number("CAMSYNC_BENCH_CAMERAS", 1000) as usize;
    if real_servers() {
        return real::main(n).await;
    }
    let cost = Duration::from_micros(env_number("CAMSYNC_BENCH_MTX_COST_US", 0));
    let dir = tempfile::tempdir()?;
    println!(
        "camsync sync benchmark: {n} cameras, simulated servers on 127.0.0.1, MediaMTX write cost {cost:?} per path"
    );
    println!(
        "{:<34} {:>10} {:>12} {:>12} {:>10}",
        "run", "wall ms", "write calls", "server calls", "calls/s"
    );

    let go2rtc = Go2rtcSim::start(Go2rtcSimOptions::default()).await?;
    let targets = [target("go2rtc", TargetKind::Go2rtc, go2rtc.api_url())?];
    let ledger = Arc::new(Ledger::open(&dir.path().join("go2rtc-only.db"))?);
    let reconciler = Reconciler::new(camsync::target::from_config(&targets)?, ledger, false);
    let inventory = make_inventory(n, &targets);
    let counters = Counters {
        go2rtc: &go2rtc,
        mediamtx: None,
    };
    timed_sync("go2rtc: cold sync", &reconciler, &inventory, &counters).await?;
    timed_sync(
        "go2rtc: no-change resync",
        &reconciler,
        &inventory,
        &counters,
    )
    .await?;

    let go2rtc = Go2rtcSim::start(Go2rtcSimOptions::default()).await?;
    let mediamtx = MediamtxSim::start(MediamtxSimOptions {
        write_cost_per_path: cost,
        ..MediamtxSimOptions::default()
    })
    .await?;
    let targets = [
        target("go2rtc", TargetKind::Go2rtc, go2rtc.api_url())?,
        target("mediamtx", TargetKind::Mediamtx, mediamtx.api_url())?,
    ];
    let ledger = Arc::new(Ledger::open(&dir.path().join("both.db"))?);
    let reconciler = Reconciler::new(camsync::target::from_config(&targets)?, ledger, false);
    let inventory = make_inventory(n, &targets);
    let counters = Counters {
        go2rtc: &go2rtc,
        mediamtx: Some(&mediamtx),
    };
    timed_sync("both: cold sync", &reconciler, &inventory, &counters).await?;
    timed_sync("both: no-change resync", &reconciler, &inventory, &counters).await?;
    mediamtx.restart().await;
    timed_sync(
        "both: re-apply after MediaMTX restart",
        &reconciler,
        &inventory,
        &counters,
    )
    .await?;
    if mediamtx.path_names().len() != n {
        return Err("not every path came back".into());
    }

    let file = dir.path().join("mediamtx.yml");
    std::fs::write(&file, "# MediaMTX config\npaths:\n")?;
    let mediamtx = MediamtxSim::start(MediamtxSimOptions {
        config_file: Some(file.clone()),
        ..MediamtxSimOptions::default()
    })
    .await?;
    let targets = [file_target(
        "mediamtx-file",
        TargetKind::MediamtxFile,
        Some(file),
    )];
    let ledger = Arc::new(Ledger::open(&dir.path().join("file.db"))?);
    let reconciler = Reconciler::new(camsync::target::from_config(&targets)?, ledger, false);
    let inventory = make_inventory(n, &targets);
    // camsync writes MediaMTX's file no sooner than 1.5 s after its last change (MediaMTX
    // ignores a change within 1 s of the one it reloaded); the file was just made.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let started = Instant::now();
    let report = reconciler.sync(&inventory).await;
    let written = started.elapsed();
    if !report.ok() {
        return Err(format!("sync failed:\n{}", report.render_text()).into());
    }
    while mediamtx.path_names().len() < n {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the simulated MediaMTX never loaded the file".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let loaded = started.elapsed();
    println!(
        "{:<34} {:>10.1} {:>12} {:>12}",
        "file: cold sync (one write)",
        written.as_secs_f64() * 1e3,
        1,
        "-"
    );
    let label = format!(
        "file: loaded by MediaMTX ({} reload)",
        mediamtx.reload_count()
    );
    println!(
        "{label:<34} {:>10.1} {:>12} {:>12}",
        loaded.as_secs_f64() * 1e3,
        "-",
        "-"
    );
    Ok(())
}

/// The same syncs against the real go2rtc and MediaMTX.
mod real {
    use super::*;

    /// The reconciler for `targets`, with a fresh ledger in `dir`.
    fn reconciler(dir: &std::path::Path, targets: &[TargetConfig]) -> BenchResult<Reconciler> {
        let ledger = Arc::new(Ledger::open(&dir.join("ledger.db"))?);
        Ok(Reconciler::new(
            camsync::target::from_config(targets)?,
            ledger,
            false,
        ))
    }

    /// A camsync sync; its wall time.
    async fn sync(reconciler: &Reconciler, inventory: &Inventory) -> BenchResult<Duration> {
        let started = Instant::now();
        let report = reconciler.sync(inventory).await;
        if !report.ok() {
            return Err(format!("sync failed:\n{}", report.render_text()).into());
        }
        Ok(started.elapsed())
    }

    /// The least a client can do: one `PUT /api/streams` per camera, one after another, with
    /// the same name and source camsync sends; its wall time.
    async fn minimal_client(server: &RealServer, inventory: &Inventory) -> BenchResult<Duration> {
        let client = reqwest::Client::new();
        let url = format!("{}/api/streams", server.api_url());
        let started = Instant::now();
        for camera in inventory.cameras.values() {
            let mut query = vec![("name", camera.name.clone())];
            query.extend(camera.sources.iter().map(|s| ("src", s.expose())));
            let status = client.put(&url).query(&query).send().await?.status();
            if !status.is_success() {
                return Err(format!("PUT {}: {status}", camera.name).into());
            }
        }
        Ok(started.elapsed())
    }

    /// The number of paths MediaMTX has configured.
    async fn mediamtx_paths(client: &reqwest::Client, server: &RealServer) -> BenchResult<u64> {
        let url = format!(
            "{}/v3/config/paths/list?itemsPerPage=100000",
            server.api_url()
        );
        let list: serde_json::Value = client.get(url).send().await?.json().await?;
        Ok(list["itemCount"].as_u64().unwrap_or(0))
    }

    fn ms(d: Duration) -> String {
        format!("{:.0} ms", d.as_secs_f64() * 1e3)
    }

    /// Cold syncs into go2rtc, each on a fresh server, alternating with the minimal client.
    async fn go2rtc(n: usize, rounds: usize) -> BenchResult<()> {
        println!("\ngo2rtc: cold sync of {n} cameras, each run on a fresh real go2rtc");
        for round in 1..=rounds {
            let dir = tempfile::tempdir()?;
            let server = RealServer::start(Kind::Go2rtc, "").await;
            let targets = [target("go2rtc", TargetKind::Go2rtc, server.api_url())?];
            let inventory = make_inventory(n, &targets);
            let baseline = minimal_client(&server, &inventory).await?;
            drop(server);
            let server = RealServer::start(Kind::Go2rtc, "").await;
            let targets = [target("go2rtc", TargetKind::Go2rtc, server.api_url())?];
            let reconciler = reconciler(dir.path(), &targets)?;
            let cold = sync(&reconciler, &inventory).await?;
            let again = sync(&reconciler, &inventory).await?;
            println!(
                "round {round}: minimal sequential client {}, camsync cold sync {} ({:.2}× the client, goal ≤ 1.10×), no-change resync {}",
                ms(baseline),
                ms(cold),
                cold.as_secs_f64() / baseline.as_secs_f64(),
                ms(again)
            );
        }
        Ok(())
    }

    /// N paths into MediaMTX through its API.
    async fn mediamtx_api(n: usize) -> BenchResult<()> {
        let client = reqwest::Client::new();
        let dir = tempfile::tempdir()?;
        let server = RealServer::start(Kind::Mediamtx, "").await;
        let targets = [target("mediamtx", TargetKind::Mediamtx, server.api_url())?];
        let inventory = make_inventory(n, &targets);
        let api = sync(&reconciler(dir.path(), &targets)?, &inventory).await?;
        let listed = mediamtx_paths(&client, &server).await?;
        println!(
            "\nMediaMTX, {n} on-demand paths through the API (mediamtx target): {} ({listed} paths configured)",
            ms(api)
        );
        Ok(())
    }

    /// N paths into MediaMTX through its file, which it watches and reloads.
    async fn mediamtx_file(n: usize) -> BenchResult<()> {
        let client = reqwest::Client::new();
        let dir = tempfile::tempdir()?;
        let server = RealServer::start(Kind::Mediamtx, "").await;
        let targets = [file_target(
            "mediamtx-file",
            TargetKind::MediamtxFile,
            Some(server.config_path()),
        )];
        let inventory = make_inventory(n, &targets);
        let started = Instant::now();
        let written = sync(&reconciler(dir.path(), &targets)?, &inventory).await?;
        while mediamtx_paths(&client, &server).await? < n as u64 {
            if started.elapsed() > Duration::from_secs(60) {
                return Err("the real MediaMTX never loaded the file".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "\nMediaMTX, {n} paths through its file (mediamtx-file target): written {}, all {n} served by the API {} after the sync started",
            ms(written),
            ms(started.elapsed())
        );
        Ok(())
    }

    pub async fn main(n: usize) -> BenchResult<()> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rounds = env_number("CAMSYNC_BENCH_ROUNDS", 3) as usize;
        println!(
            "camsync sync benchmark: {n} cameras, the REAL go2rtc and MediaMTX on 127.0.0.1 ({} and {})",
            std::env::var("CAMSYNC_GO2RTC_BIN").unwrap_or_default(),
            std::env::var("CAMSYNC_MEDIAMTX_BIN").unwrap_or_default()
        );
        go2rtc(n, rounds).await?;
        if std::env::var("CAMSYNC_BENCH_SKIP_MTX_API").is_ok_and(|v| v == "1") {
            println!("\n(MediaMTX through the API skipped: CAMSYNC_BENCH_SKIP_MTX_API=1)");
        } else {
            mediamtx_api(n).await?;
        }
        mediamtx_file(n).await
    }
}

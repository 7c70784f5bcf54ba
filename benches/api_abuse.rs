//! The daemon's HTTP API under abuse, on loopback: a running daemon (in-process, API on
//! 127.0.0.1:0) with `CAMSYNC_BENCH_CAMERAS` (default 300) cameras on a simulated go2rtc and
//! MediaMTX.
//!
//! 1. Load: 50 concurrent clients call `GET /healthz` and `GET /v1/cameras` for 5 s while a
//!    `POST /v1/sync` every 200 ms keeps the daemon syncing. Prints requests/s, p50/p99.
//! 2. Slowloris: 200 connections each send half a request header and then one byte a second,
//!    never finishing, for 15 s; meanwhile one well-behaved caller asks `GET /healthz` and
//!    `GET /v1/cameras` in turn. Prints its p50/p99/max and failures, and how many of the 200
//!    the daemon closed (`api.header_timeout`, 10 s by default).
//! 3. Memory: the process's RSS before, after, and at its peak (daemon, simulators and the
//!    load generators are one process).
//!
//! Run: `cargo bench --bench api_abuse`.

mod common;

use common::{Daemon, env_number, percentile, proc_status_kib};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const CLIENTS: usize = 50;
const SLOW: usize = 200;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn quantiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let q = |p| percentile(&samples, p).map_or(0.0, ms);
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        q(0.5),
        q(0.99),
        samples.last().copied().map_or(0.0, ms)
    )
}

/// One GET; its latency, or an error.
async fn get(http: &reqwest::Client, url: &str) -> BenchResult<Duration> {
    let started = Instant::now();
    let response = http.get(url).send().await?;
    let ok = response.status().is_success();
    response.bytes().await?;
    if !ok {
        return Err("not a success".into());
    }
    Ok(started.elapsed())
}

async fn load(base: &str, http: &reqwest::Client) -> BenchResult<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        let (http, stop, errors) = (http.clone(), stop.clone(), errors.clone());
        let url = if i % 2 == 0 {
            format!("{base}/healthz")
        } else {
            format!("{base}/v1/cameras")
        };
        clients.spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match get(&http, &url).await {
                    Ok(took) => latencies.push(took),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        });
    }
    let started = Instant::now();
    let mut syncs = 0;
    while started.elapsed() < Duration::from_secs(5) {
        http.post(format!("{base}/v1/sync")).send().await?;
        syncs += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    while let Some(latencies) = clients.join_next().await {
        all.extend(latencies?);
    }
    let wall = started.elapsed();
    println!(
        "load: {CLIENTS} clients, {} requests in {:.1} s = {:.0}/s while {syncs} syncs were asked for; {}; {} errors",
        all.len(),
        wall.as_secs_f64(),
        all.len() as f64 / wall.as_secs_f64(),
        quantiles(all),
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Half a header, then a byte a second; whether the daemon closed the connection.
async fn slow_caller(addr: String, until: Instant) -> bool {
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return true;
    };
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: camsync\r\n")
        .await
        .is_err()
    {
        return true;
    }
    let mut buf = [0u8; 512];
    while Instant::now() < until {
        tokio::select! {
            read = stream.read(&mut buf) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return true;
                }
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if stream.write_all(b"X").await.is_err() {
                    return true;
                }
            }
        }
    }
    false
}

async fn slowloris(base: &str, http: &reqwest::Client) -> BenchResult<()> {
    let addr = base.trim_start_matches("http://").to_owned();
    let until = Instant::now() + Duration::from_secs(15);
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..SLOW {
        slow.spawn(slow_caller(addr.clone(), until));
    }
    let (mut latencies, mut failures) = (Vec::new(), 0);
    let mut turn = 0;
    while Instant::now() < until {
        let route = if turn % 2 == 0 {
            "/healthz"
        } else {
            "/v1/cameras"
        };
        turn += 1;
        match get(http, &format!("{base}{route}")).await {
            Ok(took) => latencies.push(took),
            Err(_) => failures += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut closed = 0;
    while let Some(done) = slow.join_next().await {
        closed += usize::from(done?);
    }
    println!(
        "slowloris: {SLOW} slow connections for 15 s; a caller beside them: {} answers, {}; {failures} failures; the daemon closed {closed} of the {SLOW}",
        latencies.len(),
        quantiles(latencies)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let cameras = env_number("CAMSYNC_BENCH_CAMERAS", 300usize).max(1);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let go2rtc = Go2rtcSim::start(Go2rtcSimOptions::default()).await?;
    let mediamtx = MediamtxSim::start(MediamtxSimOptions::default()).await?;
    std::fs::write(
        dir.path().join("camsync.yaml"),
        format!(
            "source:\n  file: cameras.yaml\ntargets:\n  - name: go2rtc\n    kind: go2rtc\n    api: {}\n  - name: mediamtx\n    kind: mediamtx\n    api: {}\n\
             state: camsync.db\nresync: 1h\nhealth:\n  enabled: false\n",
            go2rtc.api_url(),
            mediamtx.api_url()
        ),
    )?;
    let mut inventory = String::from("cameras:\n");
    for i in 0..cameras {
        inventory.push_str(&format!(
            "  - name: cam{i}\n    url: rtsp://192.0.2.{}:554/cam{i}\n",
            i % 250 + 1
        ));
    }
    std::fs::write(dir.path().join("cameras.yaml"), inventory)?;
    let config = camsync::config::load(&dir.path().join("camsync.yaml"), &|_| None)?;
    let daemon = Daemon::start(config).await?;
    let base = daemon.base.clone();
    let before = proc_status_kib("VmRSS");
    println!(
        "camsync API abuse benchmark: {cameras} cameras on go2rtc + MediaMTX (simulated, 127.0.0.1); RSS after start {before} KiB"
    );
    let http = reqwest::Client::new();
    load(&base, &http).await?;
    slowloris(&base, &http).await?;
    println!(
        "memory: RSS {before} KiB before, {} KiB after, peak {} KiB (daemon, simulators and callers in one process)",
        proc_status_kib("VmRSS"),
        proc_status_kib("VmHWM")
    );
    daemon.stop().await?;
    Ok(())
}

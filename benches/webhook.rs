//! The webhook path end to end, against both simulators on loopback: a running daemon
//! (in-process, API on 127.0.0.1:0, signed webhooks), a go2rtc and a MediaMTX target.
//!
//! 1. Latency: `CAMSYNC_BENCH_CHANGES` (default 1,000) changes one after another. Each one
//!    rewrites the inventory file (atomic rename, as editors do) with one camera's URL changed,
//!    posts a signed `{"name": …}` webhook, and waits until both simulated servers hold the new
//!    source. Prints p50/p90/p99/max of webhook sent → updated on both.
//! 2. Burst: `CAMSYNC_BENCH_BURST` (default 10,000) webhooks from 64 concurrent senders while
//!    the inventory is rewritten every 100 webhooks. Checks that every request id resolves to a
//!    successful sync, that both servers end with the last version of every camera, and prints
//!    the syncs that served the burst and the peak RSS of the process (daemon and simulators
//!    together, from /proc/self/status).
//!
//! Run: `cargo bench --bench webhook`. `CAMSYNC_BENCH_CAMERAS` (default 100) sets the inventory
//! size.

mod common;

use common::{Daemon, env_number, percentile, proc_status_kib};

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use camsync::api::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
use tokio::sync::Semaphore;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const KEY: &str = "bench-webhook-key";
const PASSWORD: &str = "bench-password";
const SENDERS: usize = 64;

fn url(camera: usize, version: usize) -> String {
    format!(
        "rtsp://192.0.2.{}:554/v{version}/cam{camera}",
        camera % 250 + 1
    )
}

/// Writes the inventory with camera `i` at `versions[i]`, atomically.
fn write_inventory(dir: &Path, versions: &[usize]) -> BenchResult<()> {
    let mut text = String::from("cameras:\n");
    for (i, version) in versions.iter().enumerate() {
        text.push_str(&format!(
            "  - name: cam{i}\n    url: {}\n    username: admin\n    password_file: cam.password\n",
            url(i, *version)
        ));
    }
    let tmp = dir.join(".cameras.yaml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, dir.join("cameras.yaml"))?;
    Ok(())
}

/// Whether both servers hold `camera` at `version`.
fn applied(go2rtc: &Go2rtcSim, mediamtx: &MediamtxSim, camera: usize, version: usize) -> bool {
    let expected = url(camera, version).replacen("://", &format!("://admin:{PASSWORD}@"), 1);
    let name = format!("cam{camera}");
    go2rtc.stream_sources(&name) == Some(vec![expected.clone()])
        && mediamtx
            .path_config(&name)
            .is_some_and(|p| p["source"] == expected.as_str())
}

struct Bench {
    base: String,
    http: reqwest::Client,
}

impl Bench {
    async fn webhook(&self, body: String) -> BenchResult<u64> {
        let ts = format!(
            "{:.6}",
            SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64()
        );
        let response = self
            .http
            .post(format!("{}/v1/webhook/camera-changed", self.base))
            .header(TIMESTAMP_HEADER, &ts)
            .header(SIGNATURE_HEADER, sign(KEY, &ts, body.as_bytes()))
            .body(body)
            .send()
            .await?;
        if response.status() != 202 {
            return Err(format!("webhook answered {}", response.status()).into());
        }
        let accepted: serde_json::Value = response.json().await?;
        accepted["id"].as_u64().ok_or_else(|| "no id".into())
    }

    /// Follows request ids first..=last through `GET /v1/syncs/{id}`, a served range at a
    /// time; returns the number of syncs that served them.
    async fn resolve_all(&self, first: u64, last: u64, deadline: Duration) -> BenchResult<usize> {
        let started = Instant::now();
        let (mut next, mut syncs) = (first, 0);
        while next <= last {
            if started.elapsed() > deadline {
                return Err(format!("request {next} unresolved after {deadline:?}").into());
            }
            let response = self
                .http
                .get(format!("{}/v1/syncs/{next}", self.base))
                .send()
                .await?;
            if response.status() != 200 {
                return Err(format!("request {next}: {}", response.status()).into());
            }
            let state: serde_json::Value = response.json().await?;
            if state["state"] != "done" {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            if state["result"]["ok"] != true {
                return Err(format!("request {next} served by a failed sync: {state}").into());
            }
            let upto = state["result"]["requests"][1].as_u64().ok_or("no range")?;
            syncs += 1;
            next = upto + 1;
        }
        Ok(syncs)
    }
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let cameras = env_number("CAMSYNC_BENCH_CAMERAS", 100).max(1);
    let changes = env_number("CAMSYNC_BENCH_CHANGES", 1000);
    let burst = env_number("CAMSYNC_BENCH_BURST", 10_000);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let go2rtc = Go2rtcSim::start(Go2rtcSimOptions::default()).await?;
    let mediamtx = MediamtxSim::start(MediamtxSimOptions::default()).await?;
    std::fs::write(dir.path().join("cam.password"), PASSWORD)?;
    std::fs::write(dir.path().join("hook.key"), KEY)?;
    std::fs::write(
        dir.path().join("camsync.yaml"),
        format!(
            "source:\n  file: cameras.yaml\ntargets:\n  - name: go2rtc\n    kind: go2rtc\n    api: {}\n  - name: mediamtx\n    kind: mediamtx\n    api: {}\n\
             state: camsync.db\nresync: 1h\nhealth:\n  enabled: false\napi:\n  webhook_secret_file: hook.key\n",
            go2rtc.api_url(),
            mediamtx.api_url()
        ),
    )?;
    let mut versions = vec![0; cameras];
    write_inventory(dir.path(), &versions)?;
    let config = camsync::config::load(&dir.path().join("camsync.yaml"), &|_| None)?;
    let daemon = Daemon::start(config).await?;
    let bench = Bench {
        base: daemon.base.clone(),
        http: reqwest::Client::new(),
    };
    println!(
        "camsync webhook benchmark: {cameras} cameras on go2rtc + MediaMTX (simulated, 127.0.0.1); peak RSS after start {} KiB",
        proc_status_kib("VmHWM")
    );

    // 1. One change at a time.
    let mut latencies = Vec::with_capacity(changes);
    for n in 0..changes {
        let camera = n % cameras;
        versions[camera] += 1;
        write_inventory(dir.path(), &versions)?;
        let sent = Instant::now();
        bench
            .webhook(format!(
                r#"{{"name": "cam{camera}", "nonce": "latency-{n}"}}"#
            ))
            .await?;
        while !applied(&go2rtc, &mediamtx, camera, versions[camera]) {
            if sent.elapsed() > Duration::from_secs(30) {
                return Err(format!("change {n} never applied").into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(sent.elapsed());
    }
    if !latencies.is_empty() {
        latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "latency, webhook -> both servers updated, {changes} changes: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(percentile(&latencies, 0.5).unwrap_or_default()),
            ms(percentile(&latencies, 0.9).unwrap_or_default()),
            ms(percentile(&latencies, 0.99).unwrap_or_default()),
            ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        );
    }

    // 2. A burst.
    let first_id = bench.webhook("{}".into()).await?;
    bench
        .resolve_all(first_id, first_id, Duration::from_secs(60))
        .await?;
    let syncs_before = daemon.progress.borrow().syncs;
    let rss_before = proc_status_kib("VmHWM");
    let bench = Arc::new(bench);
    let permits = Arc::new(Semaphore::new(SENDERS));
    let mut senders = tokio::task::JoinSet::new();
    let mut last_id = first_id;
    let started = Instant::now();
    for n in 0..burst {
        // Collect finished senders as we go, so the bench itself holds little.
        while let Some(sent) = senders.try_join_next() {
            last_id = last_id.max(sent??);
        }
        if n % 100 == 0 {
            versions.iter_mut().for_each(|v| *v += 1);
            write_inventory(dir.path(), &versions)?;
        }
        let permit = permits.clone().acquire_owned().await?;
        let bench = bench.clone();
        senders.spawn(async move {
            let _permit = permit;
            bench
                .webhook(format!(
                    r#"{{"name": "cam{}", "nonce": "burst-{n}"}}"#,
                    n % cameras
                ))
                .await
        });
    }
    while let Some(sent) = senders.join_next().await {
        last_id = last_id.max(sent??);
    }
    let accepted = started.elapsed();
    if last_id != first_id + burst as u64 {
        return Err(format!("ids {}..={last_id} for {burst} webhooks", first_id + 1).into());
    }
    let served_by = bench
        .resolve_all(first_id + 1, last_id, Duration::from_secs(300))
        .await?;
    let resolved = started.elapsed();
    for (camera, version) in versions.iter().enumerate() {
        if !applied(&go2rtc, &mediamtx, camera, *version) {
            return Err(format!("cam{camera} is not at its last version {version}").into());
        }
    }
    let syncs = daemon.progress.borrow().syncs - syncs_before;
    println!(
        "burst: {burst} webhooks accepted in {:.2} s ({:.0}/s), all {burst} ids resolved to successful syncs after {:.2} s",
        accepted.as_secs_f64(),
        burst as f64 / accepted.as_secs_f64(),
        resolved.as_secs_f64(),
    );
    println!(
        "burst: served by {served_by} syncs ({syncs} ran); every camera at its last version on both servers"
    );
    println!(
        "burst: peak RSS {} KiB before, {} KiB after (daemon and both simulators in one process)",
        rss_before,
        proc_status_kib("VmHWM")
    );
    daemon.stop().await?;
    Ok(())
}

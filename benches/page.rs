//! The status page in headless Chromium (through ChromeDriver), against a running daemon with
//! `CAMSYNC_BENCH_CAMERAS` cameras (default 1,000) on a go2rtc and a MediaMTX simulator, all on
//! 127.0.0.1.
//!
//! 1. Load: from navigation to the complete grid (the page's `camsync-grid` performance mark),
//!    `CAMSYNC_BENCH_LOADS` times (default 5).
//! 2. Change → cell: `CAMSYNC_BENCH_CHANGES` reconnects (default 200, each of another camera)
//!    through the API. For each, the time from the daemon's event (its `time`, stamped when
//!    the state changed) to the first frame painted after the camera's row was redrawn,
//!    measured in the page (same machine clock). Twice: one change at a time (the next once
//!    the page shows the last), and all of them back to back (a burst, the page behind).
//!    Prints p50/p99/max of each.
//!
//! Run: `cargo bench --bench page` with `CAMSYNC_CHROMEDRIVER` naming chromedriver (Debian's
//! chromium-driver); without it the benchmark says so and measures nothing.

mod common;
#[allow(dead_code)] // the benchmark uses a part of the tests' browser
#[path = "../tests/common/webdriver.rs"]
mod webdriver;

use std::time::Duration;

use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
use common::{Daemon, env_number, percentile};
use serde_json::json;
use webdriver::{Browser, DESKTOP, Engine};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Records, in the page, when each camera's first event after now was stamped and when its
/// row was redrawn and painted; `window.benchLatencies()` pairs them up.
const PROBE: &str = r#"
const events = new Map();
const renders = new Map();
const stream = new EventSource('/v1/events');
stream.onmessage = (m) => {
  const e = JSON.parse(m.data);
  if (e.type === 'sync_action' && e.camera && !events.has(e.camera)) events.set(e.camera, Date.parse(e.time));
};
new MutationObserver((records) => {
  const now = [];
  for (const r of records) for (const n of r.addedNodes) {
    if (n.classList && n.classList.contains('camera')) now.push(n.dataset.camera);
  }
  if (now.length) requestAnimationFrame(() => {
    const t = Date.now();
    for (const name of now) { if (!renders.has(name)) renders.set(name, []); renders.get(name).push(t); }
  });
}).observe(document.getElementById('grid-body'), { childList: true });
window.benchLatencies = () => [...events].map(([name, at]) => {
  const painted = (renders.get(name) || []).find((t) => t >= at);
  return painted === undefined ? null : painted - at;
});
window.benchEvents = () => events.size;
window.benchReset = () => { events.clear(); renders.clear(); };
// Resolves once `name` had an event and a redraw after it.
window.benchShown = (name) => new Promise((resolve) => {
  const check = () => {
    const at = events.get(name);
    if (at !== undefined && (renders.get(name) || []).some((t) => t >= at)) resolve(true);
    else setTimeout(check, 1);
  };
  check();
});
return true;
"#;

#[tokio::main]
async fn main() -> BenchResult<()> {
    if std::env::var_os("CAMSYNC_CHROMEDRIVER").is_none() {
        println!(
            "page benchmark SKIPPED: set CAMSYNC_CHROMEDRIVER to chromedriver (apt-get install chromium chromium-driver)"
        );
        return Ok(());
    }
    let cameras = env_number("CAMSYNC_BENCH_CAMERAS", 1000).max(1);
    let loads = env_number("CAMSYNC_BENCH_LOADS", 5).max(1);
    let changes = env_number("CAMSYNC_BENCH_CHANGES", 200).clamp(1, cameras);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let go2rtc = Go2rtcSim::start(Go2rtcSimOptions::default()).await?;
    let mediamtx = MediamtxSim::start(MediamtxSimOptions::default()).await?;
    let mut inventory = String::from("cameras:\n");
    for i in 0..cameras {
        // Never dialled: health monitoring is off and the simulators do not pull.
        inventory.push_str(&format!(
            "  - name: cam{i:04}\n    url: rtsp://127.0.0.1:9/cam{i}\n"
        ));
    }
    std::fs::write(dir.path().join("cameras.yaml"), inventory)?;
    std::fs::write(
        dir.path().join("camsync.yaml"),
        format!(
            "source:\n  file: cameras.yaml\ntargets:\n  - name: go2rtc\n    kind: go2rtc\n    api: {}\n  - name: mediamtx\n    kind: mediamtx\n    api: {}\n\
             state: camsync.db\nresync: 1h\nrestart_check: 1h\nhealth:\n  enabled: false\n",
            go2rtc.api_url(),
            mediamtx.api_url()
        ),
    )?;
    let config = camsync::config::load(&dir.path().join("camsync.yaml"), &|_| None)?;
    let daemon = Daemon::start(config).await?;
    println!(
        "camsync status page benchmark: {cameras} cameras × 2 targets (simulated, 127.0.0.1), headless Chromium"
    );

    let browser = Browser::start(Engine::Chromium, DESKTOP).await;
    let page = format!("{}/", daemon.base);
    let mut load_ms = Vec::new();
    for _ in 0..loads {
        browser.goto(&page).await;
        browser
            .until(
                "the complete grid",
                "performance.getEntriesByName('camsync-grid').length > 0",
            )
            .await;
        let ms = browser
            .run(
                "return performance.getEntriesByName('camsync-grid')[0].startTime;",
                json!([]),
            )
            .await
            .as_f64()
            .unwrap_or(f64::NAN);
        let rows = browser
            .run(
                "return document.querySelectorAll('tr.camera').length;",
                json!([]),
            )
            .await;
        assert_eq!(rows, json!(cameras), "every camera has its row");
        load_ms.push(ms);
    }
    let shown: Vec<String> = load_ms.iter().map(|ms| format!("{ms:.0}")).collect();
    let mut sorted = load_ms.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "load → complete grid of {cameras} cameras: median {:.0} ms (each: {} ms)",
        sorted[sorted.len() / 2],
        shown.join(", ")
    );

    browser
        .until(
            "a live page",
            "document.getElementById('connection').textContent === 'Live'",
        )
        .await;
    browser.run(PROBE, json!([])).await;
    let http = reqwest::Client::new();
    let reconnect = |camera: usize| {
        let request = http.post(format!(
            "{}/v1/cameras/cam{camera:04}/reconnect?target=go2rtc",
            daemon.base
        ));
        async move {
            let answer = request.send().await?;
            if !answer.status().is_success() {
                return Err(format!("reconnect: {}", answer.status()).into());
            }
            BenchResult::Ok(())
        }
    };
    for i in 0..changes {
        let camera = i * cameras / changes;
        reconnect(camera).await?;
        browser
            .run_async(
                "window.benchShown(arguments[0]).then(arguments[arguments.length - 1]);",
                json!([format!("cam{camera:04}")]),
            )
            .await;
    }
    report(&browser, changes, "one at a time").await;
    browser.run("window.benchReset();", json!([])).await;
    for i in 0..changes {
        reconnect((i * cameras / changes + 1) % cameras).await?;
    }
    browser
        .until(
            "every change on the page",
            &format!("window.benchEvents() === {changes} && window.benchLatencies().every(l => l !== null)"),
        )
        .await;
    report(&browser, changes, "back to back").await;
    browser.close().await;
    daemon.stop().await?;
    Ok(())
}

/// Prints the quantiles of what the page measured.
async fn report(browser: &Browser, changes: usize, how: &str) {
    let measured = browser
        .run("return window.benchLatencies();", json!([]))
        .await;
    let mut latencies: Vec<Duration> = measured
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|ms| ms.as_f64())
                .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
                .collect()
        })
        .unwrap_or_default();
    latencies.sort();
    let ms = |p: f64| percentile(&latencies, p).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    println!(
        "state change in the daemon → cell redrawn on the page, {changes} changes {how}: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (goal: p99 ≤ 100 ms)",
        ms(0.5),
        ms(0.99),
        ms(1.0)
    );
}

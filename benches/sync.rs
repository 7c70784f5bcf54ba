//! Sync throughput against the go2rtc simulator on loopback: a cold sync of N cameras, then a
//! resync with nothing changed. Prints wall time, write calls and calls/s.
//!
//! Run: `cargo bench --bench sync` (N defaults to 1000; `CAMSYNC_BENCH_CAMERAS=5000` for more).

use std::sync::Arc;
use std::time::Instant;

use camsync::camera::{CameraSpec, ValidationContext};
use camsync::config::{TargetConfig, TargetKind};
use camsync::ledger::Ledger;
use camsync::profile::Profiles;
use camsync::reconcile::Reconciler;
use camsync::reconcile::report::SyncReport;
use camsync::secret::Secret;
use camsync::sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync::source::{Inventory, Record, validate_records};

fn inventory(n: usize, target: &str) -> Inventory {
    let targets = [(target.to_string(), TargetKind::Go2rtc)].into();
    let profiles = Profiles::builtin();
    let ctx = ValidationContext {
        base_dir: std::path::Path::new("."),
        targets: &targets,
        profiles: &profiles,
        env: &|_| None,
    };
    let records = (0..n)
        .map(|i| Record {
            location: format!("bench:{i}"),
            name: None,
            spec: Ok(CameraSpec {
                name: format!("cam{i:05}"),
                url: Some(format!("rtsp://192.0.2.{}:554/stream{i}", i % 250 + 1)),
                username: Some("admin".into()),
                password: Some(Secret::new("bench-password")),
                ..CameraSpec::default()
            }),
        })
        .collect();
    validate_records(records, &ctx)
}

fn writes(report: &SyncReport) -> usize {
    report
        .targets
        .iter()
        .map(|t| t.counts.create + t.counts.adopt + t.counts.update + t.counts.delete)
        .sum()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("CAMSYNC_BENCH_CAMERAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let sim = Go2rtcSim::start(Go2rtcSimOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let target = TargetConfig {
        name: "go2rtc".into(),
        kind: TargetKind::Go2rtc,
        api: sim.api_url().parse()?,
        rtsp: None,
        username: None,
        password: None,
        timeout: std::time::Duration::from_secs(10),
    };
    let targets = camsync::target::from_config(&[target])?;
    let ledger = Arc::new(Ledger::open(&dir.path().join("bench.db"))?);
    let reconciler = Reconciler::new(targets, ledger, false);
    let inventory = inventory(n, "go2rtc");

    println!("camsync sync benchmark: {n} cameras, one simulated go2rtc on 127.0.0.1");
    println!(
        "{:<22} {:>10} {:>12} {:>12} {:>10}",
        "run", "wall ms", "write calls", "server calls", "calls/s"
    );
    for label in ["cold sync", "no-change resync"] {
        let (w0, r0) = (sim.write_count(), sim.request_count());
        let started = Instant::now();
        let report = reconciler.sync(&inventory).await;
        let wall = started.elapsed();
        if !report.ok() {
            return Err(format!("sync failed:\n{}", report.render_text()).into());
        }
        let write_calls = sim.write_count() - w0;
        let calls = sim.request_count() - r0;
        assert_eq!(write_calls as usize, writes(&report));
        println!(
            "{label:<22} {:>10.1} {write_calls:>12} {calls:>12} {:>10.0}",
            wall.as_secs_f64() * 1e3,
            calls as f64 / wall.as_secs_f64()
        );
    }
    Ok(())
}

//! Nest cameras kept alive by one account's command queue at Google's quota (10 commands a
//! minute, streams of five minutes), against the in-memory SDM API of the tests under tokio's
//! paused clock: two simulated hours in a fraction of a second. For 20, 50 and 100 cameras it
//! prints how many are kept alive and how many are reported over-quota, the commands sent per
//! minute (on average and in the busiest 60 s), the commands Google would have refused, how
//! long until every admitted camera played, and the fraction of the time each stream was
//! valid: over the admitted cameras after their start, and over every camera wanted.
//!
//! Run: `cargo bench --bench nest`. Environment: `CAMSYNC_BENCH_NEST_CAMERAS` (default
//! `20,50,100`), `CAMSYNC_BENCH_NEST_HOURS` (default 2).

#[path = "../tests/common/fake_sdm.rs"]
mod fake_sdm;

use std::collections::BTreeMap;
use std::time::Duration;

use camsync::resolve::account::{Account, Settings, StreamState};
use fake_sdm::FakeSdm;
use tokio::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let counts = std::env::var("CAMSYNC_BENCH_NEST_CAMERAS").unwrap_or_else(|_| "20,50,100".into());
    let hours: u64 = std::env::var("CAMSYNC_BENCH_NEST_HOURS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(2);
    println!(
        "Nest cameras, one account at 10 commands/minute, 5-minute streams, {hours} simulated hours"
    );
    println!(
        "{:>7} {:>6} {:>10} {:>9} {:>12} {:>8} {:>13} {:>14} {:>12}",
        "cameras",
        "alive",
        "over-quota",
        "cmd/min",
        "busiest 60s",
        "refused",
        "all alive at",
        "valid(alive)",
        "valid(all)"
    );
    for n in counts
        .split(',')
        .filter_map(|c| c.trim().parse::<usize>().ok())
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()?;
        let row = runtime.block_on(run(n, Duration::from_secs(hours * 3600)));
        println!(
            "{:>7} {:>6} {:>10} {:>9.2} {:>12} {:>8} {:>12.0}s {:>13.4}% {:>11.2}%",
            n,
            row.alive,
            row.over_quota,
            row.per_minute,
            row.busiest,
            row.refused,
            row.all_alive_after.as_secs_f64(),
            row.valid_alive * 100.0,
            row.valid_all * 100.0
        );
    }
    Ok(())
}

struct Row {
    alive: usize,
    over_quota: usize,
    per_minute: f64,
    busiest: usize,
    refused: usize,
    all_alive_after: Duration,
    valid_alive: f64,
    valid_all: f64,
}

async fn run(n: usize, length: Duration) -> Row {
    let sdm = FakeSdm::default();
    let account = Account::start(
        "bench",
        sdm.clone(),
        Settings {
            jitter: || 0.5,
            ..Settings::default()
        },
    );
    let cameras: BTreeMap<String, String> = (0..n)
        .map(|i| {
            (
                format!("cam-{i:03}"),
                format!("enterprises/p/devices/d{i:03}"),
            )
        })
        .collect();
    let start = Instant::now();
    account.want(cameras.clone());
    let mut resolutions = account.resolutions();
    let _ = resolutions
        .wait_for(|r| r.len() == n && r.values().all(|c| c.state != StreamState::Pending))
        .await;
    let all_alive_after = start.elapsed();
    tokio::time::sleep_until(start + length).await;
    let end = Instant::now();

    let final_states = account.resolutions().borrow().clone();
    let alive: Vec<&String> = cameras
        .keys()
        .filter(|c| {
            final_states
                .get(*c)
                .is_some_and(|r| r.state == StreamState::Live)
        })
        .collect();
    let seen = sdm.seen();
    let sent = seen.iter().filter(|s| !s.limited).count();
    let busiest = seen
        .iter()
        .map(|s| {
            seen.iter()
                .filter(|e| e.at >= s.at && e.at < s.at + Duration::from_secs(60))
                .count()
        })
        .max()
        .unwrap_or(0);
    let valid = |names: &mut dyn Iterator<Item = &String>, from: Instant| {
        let fractions: Vec<f64> = names
            .map(|c| sdm.valid_fraction(&cameras[c], from, end))
            .collect();
        fractions.iter().sum::<f64>() / fractions.len().max(1) as f64
    };
    Row {
        alive: alive.len(),
        over_quota: final_states
            .values()
            .filter(|r| r.state == StreamState::OverQuota)
            .count(),
        per_minute: sent as f64 / length.as_secs_f64() * 60.0,
        busiest,
        refused: sdm.over_quota().len(),
        all_alive_after,
        valid_alive: valid(&mut alive.iter().copied(), start + all_alive_after),
        valid_all: valid(&mut cameras.keys(), start),
    }
}

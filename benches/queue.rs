//! The per-target work queue and its worker, on loopback. Prints:
//! 1. the queue alone: push, pop and finish N distinct items, and N asks for one stream merging
//!    into one waiting item (µs per item);
//! 2. the worker: N streams asked for one by one through a worker whose server answers at once
//!    (an in-memory server and ledger): first written (each write is two ledger commits), then
//!    asked again with nothing to write (the queue's and the worker's own cost per item);
//! 3. recovery latency against a simulated MediaMTX holding `CAMSYNC_BENCH_CAMERAS` + 50
//!    paths (after a cold sync, whose time is printed): a lost path re-added through the worker,
//!    alone, then while a change of every other path (each moves to another URL) runs on the
//!    same worker, p50/p99 of both and their ratio. The server's size is the same in both, so
//!    the ratio is what the bulk change's queue costs a recovery (during a cold sync the
//!    server grows, and its every write with it). With `CAMSYNC_MEDIAMTX_BIN` set, the same
//!    again against the real MediaMTX.
//!
//! Run: `cargo bench --bench queue`. Environment: `CAMSYNC_BENCH_ITEMS` (default 10,000) for
//! 1 and 2; `CAMSYNC_BENCH_CAMERAS` (default 1,000) and `CAMSYNC_BENCH_MTX_COST_US` (default 0:
//! free writes; 88 emulates the real server, whose every write re-evaluates all its paths);
//! `CAMSYNC_BENCH_AT_ONCE=1` asks each recovery during the bulk change as soon as its path is
//! deleted, instead of at a spread point of the item in flight.

mod common;

use common::real::{Kind, RealServer};
use common::{env_number, inventory, percentile};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camsync::camera::Camera;
use camsync::config::{TargetConfig, TargetKind};
use camsync::ledger::Ledger;
use camsync::queue::Merge;
use camsync::reconcile::queue::{Key, Priority, TargetQueue};
use camsync::reconcile::ticket::Ticket;
use camsync::reconcile::worker::{self, Quiet, WorkerHandle, WorkerParts, WorkerSettings};
use camsync::reconcile::{Reconciler, Workers};
use camsync::source::Inventory;
use camsync::source_url::SourceUrl;
use camsync::target::{Applied, BoxFuture, RunCheck, StreamObservation, Target, TargetError};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Recoveries measured in each phase.
const RECOVERIES: usize = 50;

#[derive(Default)]
struct Nothing;
impl Merge for Nothing {
    fn merge(&mut self, _: Nothing) {}
}

fn per_item(wall: Duration, n: usize) -> f64 {
    wall.as_secs_f64() * 1e6 / n as f64
}

fn the_queue_alone(n: usize) {
    let mut queue = TargetQueue::<Nothing>::default();
    let now = tokio::time::Instant::now();
    let started = Instant::now();
    for i in 0..n {
        let priority = Priority::ALL[i % 3];
        queue.push(
            Key::Stream(format!("cam{i:05}")),
            priority,
            now,
            now,
            Nothing,
        );
    }
    while let Some(popped) = queue.pop(now, 1) {
        queue.done(&popped.key);
    }
    let distinct = started.elapsed();
    let started = Instant::now();
    for _ in 0..n {
        queue.push(
            Key::Stream("cam".into()),
            Priority::Change,
            now,
            now,
            Nothing,
        );
    }
    let merged = started.elapsed();
    println!(
        "queue alone, {n} distinct items pushed, popped, finished: {:.2} µs per item",
        per_item(distinct, n)
    );
    println!(
        "queue alone, {n} asks for one stream merged into one item: {:.2} µs per ask",
        per_item(merged, n)
    );
}

/// A server that answers at once and remembers what it holds.
#[derive(Default)]
struct InstantServer {
    streams: Mutex<BTreeSet<String>>,
    writes: Mutex<u64>,
}

impl InstantServer {
    fn writes(&self) -> u64 {
        *self.writes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Target for InstantServer {
    fn name(&self) -> &str {
        "instant"
    }
    fn render(&self, camera: &Camera) -> String {
        camera.sources[0].expose()
    }
    fn list(&self) -> BoxFuture<'_, Result<BTreeSet<String>, TargetError>> {
        let streams = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Box::pin(async move { Ok(streams) })
    }
    fn observe(&self) -> BoxFuture<'_, Result<BTreeMap<String, StreamObservation>, TargetError>> {
        Box::pin(async { Ok(BTreeMap::new()) })
    }
    fn upsert<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(async move {
            *self.writes.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            self.streams
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(camera.name.clone());
            Ok(Applied::Done)
        })
    }
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(async move {
            self.streams
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
            Ok(Applied::Done)
        })
    }
    fn run_check<'a>(&'a self, _: Option<&'a str>) -> BoxFuture<'a, Result<RunCheck, TargetError>> {
        Box::pin(async { Ok(RunCheck::default()) })
    }
}

async fn ask_each(worker: &WorkerHandle, names: &[String]) -> Duration {
    let ticket = Ticket::new();
    let started = Instant::now();
    for name in names {
        worker.converge(name, Priority::Change, std::slice::from_ref(&ticket));
    }
    ticket.release();
    ticket.wait().await;
    started.elapsed()
}

async fn the_worker(n: usize) -> BenchResult<()> {
    let server = Arc::new(InstantServer::default());
    let names: Vec<String> = (0..n).map(|i| format!("cam{i:05}")).collect();
    let targets = [("instant".to_string(), TargetKind::Go2rtc)];
    let (inventory_tx, inventory_rx) = watch::channel(Arc::new(Inventory::default()));
    inventory_tx.send_replace(Arc::new(inventory(names.clone(), &targets)));
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let worker = worker::spawn(
        WorkerParts {
            target: server.clone(),
            ledger: Arc::new(Ledger::in_memory()?),
            inventory: inventory_rx,
            settings: WorkerSettings::default(),
            observer: Arc::new(Quiet),
            jitter: || 0.0,
        },
        shutdown.clone(),
        &tasks,
    )?;
    let written = ask_each(&worker, &names).await;
    let writes = server.writes();
    let unchanged = ask_each(&worker, &names).await;
    if server.writes() != writes || writes != n as u64 {
        return Err(format!(
            "expected {n} writes, then none; got {writes}, then {}",
            server.writes()
        )
        .into());
    }
    println!(
        "worker, {n} streams asked for one by one, each written (two ledger commits): {:.1} µs per item",
        per_item(written, n)
    );
    println!(
        "worker, the same {n} asked again, nothing to write (queue + worker cost): {:.1} µs per item",
        per_item(unchanged, n)
    );
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Deletes `name` behind camsync's back, waits `lead`, asks the worker to recover it, and
/// times the ask → the path is back.
async fn recover_once(
    http: &reqwest::Client,
    api: &str,
    worker: &WorkerHandle,
    name: &str,
    lead: Duration,
) -> BenchResult<Duration> {
    let url = format!("{api}/v3/config/paths/delete/{name}");
    let deleted = http.delete(url).send().await?;
    if !deleted.status().is_success() {
        return Err(format!("deleting {name}: {}", deleted.status()).into());
    }
    tokio::time::sleep(lead).await;
    let ticket = Ticket::new();
    let started = Instant::now();
    worker.recover(name, false, "bench", std::slice::from_ref(&ticket));
    ticket.release();
    ticket.wait().await;
    let took = started.elapsed();
    let back = http
        .get(format!("{api}/v3/config/paths/get/{name}"))
        .send()
        .await?;
    if !back.status().is_success() {
        return Err(format!("{name} was not recovered: {}", back.status()).into());
    }
    Ok(took)
}

/// `inventory` with every camera whose name starts with `prefix` on another URL.
fn moved(mut inventory: Inventory, prefix: &str) -> BenchResult<Inventory> {
    for camera in inventory.cameras.values_mut() {
        if camera.name.starts_with(prefix) {
            let url = format!("rtsp://127.0.0.1:9/{}/moved", camera.name);
            let sources = vec![SourceUrl::parse(&url)?];
            *camera = Arc::new(Camera {
                sources,
                ..(**camera).clone()
            });
        }
    }
    Ok(inventory)
}

fn quantiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let q = |p| percentile(&samples, p).unwrap_or_default();
    (q(0.5), q(0.99))
}

/// Recoveries through a worker on the MediaMTX at `api`, alone and during a bulk change of
/// `bulk` other paths; with `spread`, each asked a spread fraction of one recovery after its
/// delete.
async fn recovery_during_bulk(api: &str, bulk: usize, spread: bool) -> BenchResult<()> {
    let config = TargetConfig {
        name: "mediamtx".into(),
        kind: TargetKind::Mediamtx,
        api: Some(api.parse()?),
        rtsp: None,
        username: None,
        password: None,
        timeout: Duration::from_secs(60),
        path: None,
        inline_credentials: false,
        env_file: None,
        max_writes_per_minute: None,
        max_in_flight: 1,
    };
    let targets = [(config.name.clone(), config.kind)];
    let reconciler = Reconciler::new(
        camsync::target::from_config(std::slice::from_ref(&config))?,
        Arc::new(Ledger::in_memory()?),
        false,
    );
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let workers: Workers = reconciler.start(Arc::new(Quiet), &shutdown, &tasks)?;
    let worker = workers.handles()[0].clone();
    let watched: Vec<String> = (0..RECOVERIES).map(|i| format!("watched{i:02}")).collect();
    let everything = watched
        .iter()
        .cloned()
        .chain((0..bulk).map(|i| format!("bulk{i:05}")));
    let first = inventory(everything, &targets);
    workers.publish(Arc::new(first.clone()));
    let cold_started = Instant::now();
    workers.converge_all(Priority::Change, None).wait().await;
    let cold = cold_started.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "cold sync of {} paths: {:.2} s, {:.2} ms per path on average",
        RECOVERIES + bulk,
        cold.as_secs_f64(),
        ms(cold) / (RECOVERIES + bulk) as f64
    );

    // Alone: the server holds every path, nothing else is queued.
    let http = reqwest::Client::new();
    let mut alone = Vec::new();
    for name in &watched {
        alone.push(recover_once(&http, api, &worker, name, Duration::ZERO).await?);
    }

    // During: every bulk camera moves to another URL, one write each; the server's size stays
    // what it was when the recoveries were timed alone.
    workers.publish(Arc::new(moved(first, "bulk")?));
    let bulk_started = Instant::now();
    let changes = workers.converge_all(Priority::Resync, None);
    // The bench's own delete is a write the server takes in turn (the real MediaMTX takes one
    // at a time), so the worker's next item starts as the delete returns. A lead of a spread
    // fraction of one recovery (about one item) lands each ask at another point of that item,
    // as a lost stream found by the health monitor would be.
    let (a50, a99) = quantiles(alone);
    let mut during = Vec::new();
    for (i, name) in watched.iter().enumerate() {
        if changes.is_done() {
            break;
        }
        let lead = match spread {
            true => a50.mul_f64((i as f64 * 0.618_034).fract()),
            false => Duration::ZERO,
        };
        during.push(recover_once(&http, api, &worker, name, lead).await?);
    }
    let bulk_left = !changes.is_done();
    changes.wait().await;
    let bulk_took = bulk_started.elapsed();
    if during.len() < RECOVERIES / 2 || !bulk_left {
        return Err(format!(
            "the bulk change ended before the recoveries ({} measured); use more cameras",
            during.len()
        )
        .into());
    }
    let measured = during.len();
    let (d50, d99) = quantiles(during);
    println!(
        "recovery alone ({RECOVERIES}):                 p50 {:>7.2} ms  p99 {:>7.2} ms",
        ms(a50),
        ms(a99)
    );
    println!(
        "recovery during a change of {bulk} ({measured}): p50 {:>7.2} ms  p99 {:>7.2} ms",
        ms(d50),
        ms(d99)
    );
    println!(
        "ratio during / alone:                    p50 {:>7.2}     p99 {:>7.2}",
        d50.as_secs_f64() / a50.as_secs_f64(),
        d99.as_secs_f64() / a99.as_secs_f64()
    );
    // A recovery asked for at a random moment of the bulk change waits for the rest of the
    // item in flight: half an item on average.
    let item = bulk_took / (bulk + measured) as u32;
    println!(
        "one item of the bulk change {:.2} ms on average; waiting for half of one: expected p50 ratio {:.2}",
        ms(item),
        1.0 + ms(item) / 2.0 / ms(a50)
    );
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let items = env_number("CAMSYNC_BENCH_ITEMS", 10_000usize);
    let bulk = env_number("CAMSYNC_BENCH_CAMERAS", 1_000usize);
    let cost = Duration::from_micros(env_number("CAMSYNC_BENCH_MTX_COST_US", 0));
    let spread = env_number("CAMSYNC_BENCH_AT_ONCE", 0u8) == 0;
    println!(
        "camsync queue benchmark: {items} items; recoveries during a change of {bulk} MediaMTX paths, simulated write cost {cost:?} per path"
    );
    the_queue_alone(items);
    the_worker(items).await?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = MediamtxSim::start(MediamtxSimOptions {
        write_cost_per_path: cost,
        ..MediamtxSimOptions::default()
    })
    .await?;
    println!("on the MediaMTX simulator:");
    recovery_during_bulk(&sim.api_url(), bulk, spread).await?;
    if std::env::var_os("CAMSYNC_MEDIAMTX_BIN").is_some_and(|v| !v.is_empty()) {
        println!("on the real MediaMTX ($CAMSYNC_MEDIAMTX_BIN):");
        let real = RealServer::start(Kind::Mediamtx, "").await;
        recovery_during_bulk(&real.api_url(), bulk, spread).await?;
    }
    Ok(())
}

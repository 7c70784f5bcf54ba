//! The per-target work queue and its worker, on loopback. Prints:
//! 1. the queue alone: push, pop and finish N distinct items, and N asks for one stream merging
//!    into one waiting item (µs per item);
//! 2. the worker: N streams asked for one by one through a worker whose server answers at once
//!    (an in-memory server and ledger): first written (each write is two ledger commits), then
//!    asked again with nothing to write (the queue's and the worker's own cost per item);
//! 3. recovery latency against a simulated MediaMTX: a lost path re-added through the worker,
//!    alone, then while a cold sync of `CAMSYNC_BENCH_CAMERAS` other paths runs on the same
//!    worker, p50/p99 of both and their ratio.
//!
//! Run: `cargo bench --bench queue`. Environment: `CAMSYNC_BENCH_ITEMS` (default 10,000) for
//! 1 and 2; `CAMSYNC_BENCH_CAMERAS` (default 1,000) and `CAMSYNC_BENCH_MTX_COST_US` (default 0:
//! free writes; 88 emulates the real server, whose every write re-evaluates all its paths).

mod common;

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

/// Deletes `name` behind camsync's back, asks the worker to recover it, and times the ask →
/// the path is back.
async fn recover_once(
    http: &reqwest::Client,
    mediamtx: &MediamtxSim,
    worker: &WorkerHandle,
    name: &str,
) -> BenchResult<Duration> {
    let url = format!("{}/v3/config/paths/delete/{name}", mediamtx.api_url());
    let deleted = http.delete(url).send().await?;
    if !deleted.status().is_success() {
        return Err(format!("deleting {name}: {}", deleted.status()).into());
    }
    let ticket = Ticket::new();
    let started = Instant::now();
    worker.recover(name, false, "bench", std::slice::from_ref(&ticket));
    ticket.release();
    ticket.wait().await;
    let took = started.elapsed();
    if mediamtx.path_config(name).is_none() {
        return Err(format!("{name} was not recovered").into());
    }
    Ok(took)
}

fn quantiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let q = |p| percentile(&samples, p).unwrap_or_default();
    (q(0.5), q(0.99))
}

async fn recovery_during_bulk(bulk: usize, cost: Duration) -> BenchResult<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mediamtx = MediamtxSim::start(MediamtxSimOptions {
        write_cost_per_path: cost,
        ..MediamtxSimOptions::default()
    })
    .await?;
    let config = TargetConfig {
        name: "mediamtx".into(),
        kind: TargetKind::Mediamtx,
        api: Some(mediamtx.api_url().parse()?),
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
    workers.publish(Arc::new(inventory(watched.clone(), &targets)));
    workers.converge_all(Priority::Change, None).wait().await;

    let http = reqwest::Client::new();
    let mut alone = Vec::new();
    for name in &watched {
        alone.push(recover_once(&http, &mediamtx, &worker, name).await?);
    }

    let everything = watched
        .iter()
        .cloned()
        .chain((0..bulk).map(|i| format!("bulk{i:05}")));
    workers.publish(Arc::new(inventory(everything, &targets)));
    let cold_started = Instant::now();
    let cold = workers.converge_all(Priority::Resync, None);
    let mut during = Vec::new();
    for name in &watched {
        if cold.is_done() {
            break;
        }
        during.push(recover_once(&http, &mediamtx, &worker, name).await?);
        // Land the next one at another point of the write in flight.
        tokio::time::sleep(Duration::from_micros(1_300)).await;
    }
    let bulk_left = !cold.is_done();
    cold.wait().await;
    let cold_took = cold_started.elapsed();
    if during.len() < RECOVERIES / 2 || !bulk_left {
        return Err(format!(
            "the cold sync ended before the recoveries ({} measured); use more cameras",
            during.len()
        )
        .into());
    }
    let (a50, a99) = quantiles(alone);
    let measured = during.len();
    let (d50, d99) = quantiles(during);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "recovery alone ({RECOVERIES}):              p50 {:>7.2} ms  p99 {:>7.2} ms",
        ms(a50),
        ms(a99)
    );
    println!(
        "recovery during a cold sync of {bulk} ({measured}): p50 {:>7.2} ms  p99 {:>7.2} ms",
        ms(d50),
        ms(d99)
    );
    println!(
        "ratio during / alone:                 p50 {:>7.2}     p99 {:>7.2}",
        d50.as_secs_f64() / a50.as_secs_f64(),
        d99.as_secs_f64() / a99.as_secs_f64()
    );
    // A recovery asked for at a random moment of the cold sync waits for the rest of the
    // write in flight: half a write on average.
    let write = cold_took / (bulk + measured) as u32;
    println!(
        "one write of the cold sync {:.2} ms on average; waiting for half of one: expected p50 ratio {:.2}",
        ms(write),
        1.0 + ms(write) / 2.0 / ms(a50)
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
    println!(
        "camsync queue benchmark: {items} items; recoveries during a cold sync of {bulk} MediaMTX paths, write cost {cost:?} per path"
    );
    the_queue_alone(items);
    the_worker(items).await?;
    recovery_during_bulk(bulk, cost).await?;
    Ok(())
}

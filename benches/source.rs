//! Camera databases as sources, with `camsync run` syncing into simulated go2rtc and MediaMTX
//! servers on loopback:
//! 1. change latency: one row's URL changed in the database → both servers serve the new URL;
//!    p50/p99 over `CAMSYNC_BENCH_CHANGES` changes (default 30), for SQLite (found by the poll,
//!    `CAMSYNC_BENCH_POLL`, default 1s) and Postgres (a NOTIFY from the example trigger);
//!    Changes to SQLite come at spread-out moments of the poll cycle, as real edits do;
//! 2. a household (30 rows) and a large inventory (`CAMSYNC_BENCH_ROWS`, default 10,000): the
//!    time one re-read takes, and a sync with nothing changed into both servers;
//! 3. SQLite, both journal modes: how long the NVR's commits take while camsync re-reads the
//!    large inventory back to back, against the same commits with no reader.
//!
//! Postgres runs only when `CAMSYNC_TEST_POSTGRES` holds a connection string (`source
//! .ci/postgres && start_postgres` starts a private server); otherwise it says it was skipped.
//!
//! Run: `cargo bench --bench source`.

mod common;

use common::{env_number, percentile};

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use camsync::app::{LedgerMode, reconciler};
use camsync::config::{self, Config};
use camsync::daemon::{Progress, run_with_progress};
use camsync::source::Source;
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const SQLITE_SCHEMA: &str = include_str!("../examples/sqlite/schema.sql");
const POSTGRES_SCHEMA: &str = include_str!("../examples/postgres/schema.sql");
const LATENCY_CAMERAS: usize = 100;

fn url(camera: usize, version: usize) -> String {
    format!(
        "rtsp://192.0.2.{}:554/cam{camera}/v{version}",
        camera % 250 + 1
    )
}

fn name(camera: usize) -> String {
    format!("cam{camera:05}")
}

/// The database the rows live in, written the way its owner writes it.
enum Db {
    Sqlite(rusqlite::Connection),
    Postgres {
        client: tokio_postgres::Client,
        schema: String,
    },
}

impl Db {
    async fn fill(&self, rows: usize) -> BenchResult<()> {
        match self {
            Db::Sqlite(conn) => {
                conn.execute_batch("DELETE FROM streams; BEGIN;")?;
                let mut insert = conn.prepare("INSERT INTO streams (name, url) VALUES (?1, ?2)")?;
                for i in 0..rows {
                    insert.execute((name(i), url(i, 0)))?;
                }
                conn.execute_batch("COMMIT;")?;
            }
            Db::Postgres { client, schema } => {
                client
                    .batch_execute(&format!(
                        "TRUNCATE {schema}.cameras;
                         INSERT INTO {schema}.cameras (name, url)
                         SELECT format('cam%s', lpad(i::text, 5, '0')),
                                format('rtsp://192.0.2.%s:554/cam%s/v0', i % 250 + 1, i)
                           FROM generate_series(0, {}) AS i;",
                        rows - 1
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    async fn set_url(&self, camera: usize, url: &str) -> BenchResult<()> {
        match self {
            Db::Sqlite(conn) => {
                conn.execute(
                    "UPDATE streams SET url = ?1 WHERE name = ?2",
                    (url, name(camera)),
                )?;
            }
            Db::Postgres { client, schema } => {
                client
                    .execute(
                        &format!("UPDATE {schema}.cameras SET url = $1 WHERE name = $2"),
                        &[&url, &name(camera)],
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

struct Servers {
    go2rtc: Go2rtcSim,
    mediamtx: MediamtxSim,
}

impl Servers {
    async fn start() -> BenchResult<Servers> {
        Ok(Servers {
            go2rtc: Go2rtcSim::start(Go2rtcSimOptions::default()).await?,
            mediamtx: MediamtxSim::start(MediamtxSimOptions::default()).await?,
        })
    }

    fn serve(&self, camera: usize, url: &str) -> bool {
        let name = name(camera);
        self.go2rtc.stream_sources(&name) == Some(vec![url.to_owned()])
            && self
                .mediamtx
                .path_config(&name)
                .is_some_and(|p| p["source"] == url)
    }

    /// camsync.yaml in `dir` with `source` (YAML lines) and both servers as targets.
    fn config(&self, dir: &Path, source: &str) -> BenchResult<Config> {
        let text = format!(
            "{source}targets:\n  - name: go2rtc\n    kind: go2rtc\n    api: {}\n    timeout: 30s\n  - name: mediamtx\n    kind: mediamtx\n    api: {}\n    timeout: 30s\nstate: state.db\nresync: 1h\nhealth:\n  enabled: false\n",
            self.go2rtc.api_url(),
            self.mediamtx.api_url()
        );
        let path = dir.join("camsync.yaml");
        std::fs::write(&path, text)?;
        Ok(config::load(&path, &|_| None)?)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{} µs", d.as_micros())
}

/// Changes one row at a time while the daemon runs, timing each until both servers serve it.
/// With `spread`, each change waits a different fraction of it first, so that changes fall at
/// every moment of a poll cycle.
async fn change_latency(
    label: &str,
    config: Config,
    db: &Db,
    servers: &Servers,
    spread: Option<Duration>,
) -> BenchResult<()> {
    let changes = env_number("CAMSYNC_BENCH_CHANGES", 30) as usize;
    let (tx, mut status) = watch::channel(Progress::default());
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(run_with_progress(config, shutdown.clone(), tx));
    tokio::time::timeout(Duration::from_secs(60), status.wait_for(|s| s.syncs >= 1)).await??;
    let mut latencies = Vec::with_capacity(changes);
    for version in 1..=changes {
        let camera = version * 7 % LATENCY_CAMERAS;
        let new = url(camera, version);
        if let Some(spread) = spread {
            tokio::time::sleep(spread * (version as u32 * 37 % 100) / 100).await;
        }
        db.set_url(camera, &new).await?;
        let changed = Instant::now();
        while !servers.serve(camera, &new) {
            if changed.elapsed() > Duration::from_secs(30) {
                return Err(format!("{label}: change {version} never reached both servers").into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(changed.elapsed());
    }
    shutdown.cancel();
    daemon.await??;
    latencies.sort();
    println!(
        "{label:<44} p50 {:>10}   p99 {:>10}   max {:>10}   ({changes} changes)",
        ms(percentile(&latencies, 0.50).unwrap_or_default()),
        ms(percentile(&latencies, 0.99).unwrap_or_default()),
        ms(latencies[latencies.len() - 1]),
    );
    Ok(())
}

/// Re-reads with `rows` cameras in the database.
async fn reread(label: &str, config: &Config, db: &Db, rows: usize) -> BenchResult<()> {
    db.fill(rows).await?;
    let source = Source::new(config);
    let mut reads = Vec::new();
    let mut inventory = source.load().await?;
    for _ in 0..10 {
        let started = Instant::now();
        inventory = source.load().await?;
        reads.push(started.elapsed());
    }
    if inventory.cameras.len() != rows {
        return Err(format!("{label}: read {} cameras", inventory.cameras.len()).into());
    }
    reads.sort();
    println!(
        "{label:<44} re-read of {rows:>5} rows: median {:>10}   max {:>10}",
        ms(percentile(&reads, 0.50).unwrap_or_default()),
        ms(reads[reads.len() - 1])
    );
    Ok(())
}

async fn no_change_sync(config: &Config, rows: usize) -> BenchResult<()> {
    let source = Source::new(config);
    let inventory = source.load().await?;
    let reconciler = reconciler(config, LedgerMode::ReadWrite)?;
    let started = Instant::now();
    let report = reconciler.sync(&inventory).await;
    let cold = started.elapsed();
    if !report.ok() {
        return Err(format!("cold sync failed:\n{}", report.render_text()).into());
    }
    let mut runs = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let inventory = source.load().await?;
        let report = reconciler.sync(&inventory).await;
        runs.push(started.elapsed());
        if !report.ok() {
            return Err("no-change sync failed".into());
        }
    }
    runs.sort();
    println!(
        "{:<44} cold sync {:>10}   re-read + no-change sync: median {:>10}",
        format!("both servers, {rows} cameras"),
        ms(cold),
        ms(percentile(&runs, 0.50).unwrap_or_default())
    );
    Ok(())
}

async fn sqlite(rows: usize) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let conn = rusqlite::Connection::open(dir.path().join("nvr.db"))?;
    conn.execute_batch(SQLITE_SCHEMA)?;
    let db = Db::Sqlite(conn);
    let poll = std::env::var("CAMSYNC_BENCH_POLL").unwrap_or_else(|_| "1s".into());
    let source = format!(
        "source:\n  sqlite:\n    path: nvr.db\n    poll: {poll}\n    query: SELECT id, name, url, enabled FROM streams\n"
    );
    let servers = Servers::start().await?;
    db.fill(LATENCY_CAMERAS).await?;
    let config = servers.config(dir.path(), &source)?;
    change_latency(
        &format!("sqlite (poll {poll}): row change → both servers"),
        config.clone(),
        &db,
        &servers,
        Some(humantime::parse_duration(&poll)?),
    )
    .await?;
    reread("sqlite (WAL)", &config, &db, 30).await?;
    reread("sqlite (WAL)", &config, &db, rows).await?;
    no_change_sync(&config, rows).await?;
    for (mode, label) in [("wal", "WAL"), ("delete", "rollback journal")] {
        if let Db::Sqlite(conn) = &db {
            let set: String =
                conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))?;
            if set != mode {
                return Err(format!("journal mode {set}, not {mode}").into());
            }
        }
        writer_while_reading(label, &config, &dir.path().join("nvr.db")).await?;
    }
    Ok(())
}

/// The NVR's commits (one small UPDATE each) with no reader, then while camsync re-reads the
/// database `READS` times back to back.
async fn writer_while_reading(label: &str, config: &Config, path: &Path) -> BenchResult<()> {
    const ALONE: usize = 1000;
    const READS: usize = 20;
    let reads = Arc::new(AtomicUsize::new(0));
    // Commits until `reads` reaches READS, or ALONE commits when `reads` is None.
    let commits = |reads: Option<Arc<AtomicUsize>>| {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || -> Result<Vec<Duration>, String> {
            let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            let mut took = Vec::new();
            for i in 0..1_000_000_i64 {
                let done = match &reads {
                    Some(reads) => reads.load(Ordering::Relaxed) >= READS,
                    None => i >= ALONE as i64,
                };
                if done {
                    break;
                }
                let started = Instant::now();
                conn.execute("UPDATE streams SET fps = ?1 WHERE id = 1", [i])
                    .map_err(|e| e.to_string())?;
                took.push(started.elapsed());
            }
            took.sort();
            Ok(took)
        })
    };
    let alone = commits(None).await??;
    let source = Source::new(config);
    let writer = commits(Some(reads.clone()));
    for _ in 0..READS {
        source.load().await?;
        reads.fetch_add(1, Ordering::Relaxed);
    }
    let busy = writer.await??;
    println!(
        "{:<44} alone p50 {:>7} p99 {:>7} max {:>8};  during {READS} re-reads ({} commits) p50 {:>7} p99 {:>7} max {:>8}",
        format!("sqlite {label}: NVR commit"),
        us(percentile(&alone, 0.50).unwrap_or_default()),
        us(percentile(&alone, 0.99).unwrap_or_default()),
        us(alone[alone.len() - 1]),
        busy.len(),
        us(percentile(&busy, 0.50).unwrap_or_default()),
        us(percentile(&busy, 0.99).unwrap_or_default()),
        us(busy[busy.len() - 1]),
    );
    Ok(())
}

async fn postgres(url: &str, rows: usize) -> BenchResult<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let schema = format!("camsync_bench_{}", std::process::id());
    let channel = format!("cameras_changed_{}", std::process::id());
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema}; {}",
            POSTGRES_SCHEMA.replace("cameras_changed", &channel)
        ))
        .await?;
    let db = Db::Postgres {
        client,
        schema: schema.clone(),
    };
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("pg.url"), url)?;
    let source = format!(
        "source:\n  postgres:\n    url_file: pg.url\n    listen: {channel}\n    query: SELECT id, name, url, username, password, profile, enabled, targets, mediamtx FROM {schema}.cameras\n"
    );
    let servers = Servers::start().await?;
    db.fill(LATENCY_CAMERAS).await?;
    let config = servers.config(dir.path(), &source)?;
    let result = async {
        change_latency(
            "postgres (NOTIFY): row change → both servers",
            config.clone(),
            &db,
            &servers,
            None,
        )
        .await?;
        reread("postgres", &config, &db, 30).await?;
        reread("postgres", &config, &db, rows).await
    }
    .await;
    if let Db::Postgres { client, .. } = &db {
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await?;
    }
    result
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let rows = env_number("CAMSYNC_BENCH_ROWS", 10_000) as usize;
    println!("camsync source benchmark: simulated go2rtc and MediaMTX on 127.0.0.1");
    sqlite(rows).await?;
    match std::env::var("CAMSYNC_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => postgres(&url, rows).await?,
        _ => println!(
            "postgres: skipped (CAMSYNC_TEST_POSTGRES is not set; `source .ci/postgres && start_postgres` starts a private server)"
        ),
    }
    Ok(())
}

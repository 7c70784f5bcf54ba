//! `camsync demo`: the whole loop in one process against the built-in simulators of go2rtc and
//! MediaMTX, on loopback only. It writes a sample config and inventory to a temporary
//! directory, syncs, edits the inventory, restarts both servers, and prints each step's plan
//! and result.

use crate::output::outln;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use crate::app::{AppError, LedgerMode, load_inventory, reconciler};
use crate::camera::Cameras;
use crate::config;
use crate::config::process_env;
use crate::health::monitor::{Settings, TargetMonitor};
use crate::health::runner::apply;
use crate::health::state::{Policy, State};
use crate::reconcile::Reconciler;
use crate::reconcile::ticket::Ticket;
use crate::reconcile::worker::{Quiet, WorkerHandle};
use camsync_sim::camera::SimCamera;
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
use std::time::Duration;
use tokio::time::Instant;

const HAND_MADE: &str = "doorbell_by_hand";

/// The simulated servers, for counting their writes.
struct Servers {
    go2rtc: Go2rtcSim,
    mediamtx: MediamtxSim,
}

impl Servers {
    fn writes(&self) -> (u64, u64) {
        (self.go2rtc.write_count(), self.mediamtx.write_count())
    }

    fn hand_made_kept(&self) -> bool {
        self.go2rtc.stream_names().iter().any(|n| n == HAND_MADE)
            && self.mediamtx.path_names().iter().any(|n| n == HAND_MADE)
    }
}

pub async fn run() -> Result<ExitCode, AppError> {
    let io = |what: &'static str| move |source: std::io::Error| AppError::Io { what, source };
    let dir = tempfile::tempdir().map_err(io("create a temporary directory"))?;
    let cameras = [
        SimCamera::start()
            .await
            .map_err(io("start a simulated camera"))?,
        SimCamera::start()
            .await
            .map_err(io("start a simulated camera"))?,
        SimCamera::start()
            .await
            .map_err(io("start a simulated camera"))?,
    ];
    let go2rtc = Go2rtcSim::start(Go2rtcSimOptions {
        // Like a go2rtc whose config file is generated and mounted read-only (Frigate does
        // this): streams added through its API live only in memory.
        config_writable: false,
        file_streams: BTreeMap::from([(HAND_MADE.to_owned(), vec![cameras[2].url("doorbell")])]),
        ..Go2rtcSimOptions::default()
    })
    .await
    .map_err(io("start the go2rtc simulator"))?;
    let mediamtx = MediamtxSim::start(MediamtxSimOptions {
        file_paths: BTreeMap::from([(
            HAND_MADE.to_owned(),
            serde_json::json!({ "source": cameras[2].url("doorbell") }),
        )]),
        ..MediamtxSimOptions::default()
    })
    .await
    .map_err(io("start the MediaMTX simulator"))?;

    outln!("camsync demo: everything below runs on 127.0.0.1 in this process.\n");
    outln!(
        "  simulated go2rtc  API {}  RTSP {}",
        go2rtc.api_url(),
        go2rtc.rtsp_url()
    );
    outln!(
        "  simulated cameras {}",
        cameras
            .iter()
            .map(|c| c.url(""))
            .collect::<Vec<_>>()
            .join("  ")
    );
    outln!(
        "  go2rtc already has {HAND_MADE:?}, a stream its user made by hand: camsync must leave it alone."
    );
    outln!("  files in {}\n", dir.path().display());

    let config_path = dir.path().join("camsync.yaml");
    let write =
        |path: &Path, text: String| std::fs::write(path, text).map_err(io("write a demo file"));
    write(
        &config_path,
        format!(
            "source:\n  file: cameras.yaml\ntargets:\n  - name: go2rtc\n    kind: go2rtc\n    api: {}\n    rtsp: {}\n  - name: mediamtx\n    kind: mediamtx\n    api: {}\n    rtsp: {}\nstate: camsync-state.db\nresync: 30s\n",
            go2rtc.api_url(),
            go2rtc.rtsp_url(),
            mediamtx.api_url(),
            mediamtx.rtsp_url()
        ),
    )?;
    write(
        &dir.path().join("front_door.password"),
        "demo-secret-not-shown\n".into(),
    )?;
    let inventory_path = dir.path().join("cameras.yaml");
    let camera_entry = |name: &str, url: String| format!("  - name: {name}\n    url: {url}\n");
    let front_door = format!(
        "{}    username: admin\n    password_file: front_door.password\n    profile: recording\n",
        camera_entry("front_door", cameras[0].url("stream1"))
    );
    let write_inventory = |garage_url: String, last: String| {
        let garage = camera_entry("garage", garage_url);
        write(
            &inventory_path,
            format!("cameras:\n{front_door}{garage}{last}"),
        )
    };
    write_inventory(
        cameras[1].url("main"),
        camera_entry("backyard", cameras[1].url("sub")),
    )?;

    let config = config::load(&config_path, &process_env)?;
    let reconciler = reconciler(&config, LedgerMode::ReadWrite)?;
    let servers = Servers { go2rtc, mediamtx };
    let mut ok = true;

    ok &= step(
        &reconciler,
        &config,
        &servers,
        "1. first sync: three cameras in cameras.yaml",
    )
    .await?;
    if let Some(path) = servers.mediamtx.path_config("front_door") {
        outln!(
            "   front_door uses the `recording` profile: MediaMTX record={} sourceOnDemand={}; go2rtc preloads {:?}\n",
            path["record"],
            path["sourceOnDemand"],
            servers.go2rtc.preloads()
        );
    }
    ok &= step(
        &reconciler,
        &config,
        &servers,
        "2. sync again, nothing changed: no write call",
    )
    .await?;

    write_inventory(
        cameras[1].url("main_hd"),
        camera_entry("driveway", cameras[2].url("drive")),
    )?;
    ok &= step(
        &reconciler,
        &config,
        &servers,
        "3. cameras.yaml edited: garage has a new URL, backyard removed, driveway added",
    )
    .await?;

    servers.go2rtc.restart().await;
    servers.mediamtx.restart().await;
    outln!(
        "   (both servers restarted: go2rtc has only its file's streams {:?}, MediaMTX only its file's paths {:?})\n",
        servers.go2rtc.stream_names(),
        servers.mediamtx.path_names()
    );
    ok &= step(
        &reconciler,
        &config,
        &servers,
        "4. resync after the restarts: what was lost comes back",
    )
    .await?;
    ok &= nightly_reboot(&reconciler, &config, &cameras[0]).await?;

    outln!(
        "streams on go2rtc now: {}",
        servers.go2rtc.stream_names().join(", ")
    );
    outln!(
        "paths on MediaMTX now: {}",
        servers.mediamtx.path_names().join(", ")
    );
    let hand_made_kept = servers.hand_made_kept();
    let verdict = if hand_made_kept {
        "untouched on both"
    } else {
        "GONE (a bug)"
    };
    outln!("{HAND_MADE:?} is {verdict}");
    ok &= hand_made_kept && servers.go2rtc.crashed().is_none();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Step 5: the front door camera reboots; the health monitor's timeline on both servers.
async fn nightly_reboot(
    reconciler: &Reconciler,
    config: &config::Config,
    camera: &SimCamera,
) -> Result<bool, AppError> {
    outln!("── 5. the front_door camera reboots at night; the health monitor watches both servers");
    let settings = Settings {
        idle_probe: Duration::ZERO,
        probe_timeout: Duration::from_secs(3),
        camera_timeout: Duration::from_millis(500),
        policy: Policy {
            grace: Duration::ZERO,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        },
        ..Settings::default()
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop_workers = stop.clone().drop_guard();
    let tasks = tokio_util::task::TaskTracker::new();
    let workers = reconciler.start(std::sync::Arc::new(Quiet), &stop, &tasks)?;
    let mut monitors: Vec<(TargetMonitor, WorkerHandle)> = reconciler
        .targets()
        .into_iter()
        .zip(&config.targets)
        .zip(workers.handles())
        .map(|((target, c), worker)| {
            (
                TargetMonitor::new(target, c.rtsp.clone(), settings),
                worker.clone(),
            )
        })
        .collect();
    let inventory = load_inventory(config).await?;
    workers.publish(std::sync::Arc::new(inventory.clone()));
    let cameras: Cameras = inventory
        .cameras
        .into_iter()
        .filter(|(name, _)| name == "front_door")
        .collect();
    let start = Instant::now();
    watch_round(&mut monitors, &cameras, start).await;
    camera.stop().await;
    outln!(
        "   t={:>5} ms  the camera goes down",
        start.elapsed().as_millis()
    );
    let offline = |monitors: &[(TargetMonitor, WorkerHandle)]| {
        monitors
            .iter()
            .all(|(m, _)| m.state("front_door") == Some(State::CameraOffline))
    };
    while !offline(&monitors) && start.elapsed() < Duration::from_secs(10) {
        watch_round(&mut monitors, &cameras, start).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    camera.resume().await.map_err(|source| AppError::Io {
        what: "restart the simulated camera",
        source,
    })?;
    let back = Instant::now();
    outln!(
        "   t={:>5} ms  the camera answers again",
        start.elapsed().as_millis()
    );
    let healthy = |monitors: &[(TargetMonitor, WorkerHandle)]| {
        monitors
            .iter()
            .all(|(m, _)| m.state("front_door") == Some(State::Healthy))
    };
    while !healthy(&monitors) && back.elapsed() < Duration::from_secs(15) {
        watch_round(&mut monitors, &cameras, start).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let served = healthy(&monitors);
    outln!(
        "   {} {} ms after the camera came back (MediaMTX alone retries a down source every 5 s; go2rtc redials up to 60 s apart)\n",
        if served {
            "front_door healthy on both servers"
        } else {
            "front_door NOT healthy"
        },
        back.elapsed().as_millis()
    );
    Ok(served)
}

/// One monitor round over each target, printing every transition with its time; what the
/// monitor decides is carried out by the target's worker before the next round.
async fn watch_round(
    monitors: &mut [(TargetMonitor, WorkerHandle)],
    cameras: &Cameras,
    start: Instant,
) {
    for (monitor, worker) in monitors.iter_mut() {
        let outcome = monitor.round(cameras, Instant::now()).await;
        let done = Ticket::new();
        apply(worker, &outcome.intents, std::slice::from_ref(&done));
        done.release();
        done.wait().await;
        for event in outcome.events {
            let t = &event.transition;
            let recovered = t.recovered_after.map_or(String::new(), |d| {
                format!(", recovered after {} ms", d.as_millis())
            });
            outln!(
                "   t={:>5} ms  {:<8} {} → {}: {}{recovered}",
                start.elapsed().as_millis(),
                event.target,
                t.from.name(),
                t.to.name(),
                t.reason
            );
        }
    }
}

/// Plans, syncs, and prints both with the number of write calls each server saw.
async fn step(
    reconciler: &Reconciler,
    config: &config::Config,
    servers: &Servers,
    title: &str,
) -> Result<bool, AppError> {
    outln!("── {title}");
    let inventory = load_inventory(config).await?;
    let plan = reconciler.plan(&inventory).await;
    outln!("plan:\n{}", indent(&plan.render_text()));
    let before = servers.writes();
    let result = reconciler.sync(&inventory).await;
    outln!("result:\n{}", indent(&result.render_text()));
    let after = servers.writes();
    outln!(
        "   write calls seen: go2rtc {}, MediaMTX {}\n",
        after.0 - before.0,
        after.1 - before.1
    );
    Ok(result.ok())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   {l}\n")).collect()
}

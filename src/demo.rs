//! `camsync demo`: the whole loop in one process against the built-in simulators of go2rtc and
//! MediaMTX, on loopback only. It writes a sample config and inventory to a temporary
//! directory, syncs, edits the inventory, restarts both servers, watches a camera reboot,
//! keeps a Nest camera's expiring stream alive, and prints each step's plan and result.

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
use crate::resolve::Resolver;
use crate::source::Inventory;
use camsync_sim::camera::SimCamera;
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
use camsync_sim::nest::{EXTEND, NestSim, NestSimOptions};
use std::sync::Arc;
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
    ok &= nest_camera(&reconciler, &config_path, &inventory_path, &servers).await?;

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
    let resolver = Resolver::start(config)?;
    let inventory = load_inventory(config).await?;
    workers.publish(std::sync::Arc::new(inventory.clone()));
    let cameras: Cameras = inventory
        .cameras
        .into_iter()
        .filter(|(name, _)| name == "front_door")
        .collect();
    let start = Instant::now();
    watch_round(&mut monitors, &resolver, &cameras, start).await;
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
        watch_round(&mut monitors, &resolver, &cameras, start).await;
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
        watch_round(&mut monitors, &resolver, &cameras, start).await;
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

/// Step 6: a Nest camera joins; its stream is generated through the simulated SDM API, given
/// to both servers, extended without a write, and generated anew after Google ends it.
async fn nest_camera(
    reconciler: &Reconciler,
    config_path: &Path,
    inventory_path: &Path,
    servers: &Servers,
) -> Result<bool, AppError> {
    outln!(
        "── 6. a Google Nest camera: its stream URL comes from Google's SDM API and expires (here in 4 s, Google's in 5 min)"
    );
    let io = |what: &'static str| move |source: std::io::Error| AppError::Io { what, source };
    let sim = NestSimOptions::default();
    let nest = NestSim::start(NestSimOptions {
        devices: vec!["porch".into()],
        stream_lifetime: Duration::from_secs(4),
        commands_per_minute: 600,
        ..NestSimOptions::default()
    })
    .await
    .map_err(io("start the Nest simulator"))?;
    let dir = config_path.parent().unwrap_or(Path::new("."));
    let append = |path: &Path, text: String| -> Result<(), AppError> {
        let old = std::fs::read_to_string(path).map_err(io("read a demo file"))?;
        std::fs::write(path, old + &text).map_err(io("write a demo file"))
    };
    std::fs::write(dir.join("nest.secret"), &sim.client_secret).map_err(io("write a demo file"))?;
    std::fs::write(dir.join("nest.token"), &sim.refresh_token).map_err(io("write a demo file"))?;
    append(
        config_path,
        format!(
            "nest_accounts:\n  - name: home\n    project_id: {}\n    client_id: {}\n    client_secret_file: nest.secret\n    refresh_token_file: nest.token\n    max_per_minute: 600\n    renew_before: 3s\n    sdm_url: {}\n    token_url: {}\n",
            sim.project,
            sim.client_id,
            nest.sdm_url(),
            nest.token_url()
        ),
    )?;
    append(
        inventory_path,
        "  - name: porch\n    nest: { account: home, device: porch }\n".into(),
    )?;
    let config = config::load(config_path, &process_env)?;
    let resolver = Resolver::start(&config)?;
    let inventory = Arc::new(load_inventory(&config).await?);
    resolver.want(&inventory);
    let deadline = Duration::from_secs(10);
    // Exposed only to compare two streams; printed redacted.
    let source = |inventory: &Inventory| {
        inventory.cameras["porch"]
            .sources
            .first()
            .map(|s| s.expose())
    };
    // The inventory with porch's stream, once it is another than `before`.
    let resolved = |before: Option<String>| {
        let (resolver, inventory) = (&resolver, &inventory);
        async move {
            let start = Instant::now();
            loop {
                let current = resolver.apply(inventory);
                let fresh = source(&current);
                if (fresh.is_some() && fresh != before) || start.elapsed() > deadline {
                    return current;
                }
                let _ = tokio::time::timeout(deadline, resolver.changed()).await;
            }
        }
    };
    let shown = |inventory: &Inventory| {
        inventory.cameras["porch"]
            .sources
            .first()
            .map_or("nothing".into(), |s| s.redacted())
    };
    let first = resolved(None).await;
    outln!("   GenerateRtspStream → porch plays {}", shown(&first));
    let mut ok = sync_and_count(reconciler, &first, servers).await;

    let start = Instant::now();
    while nest.answered(EXTEND) < 2 && start.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    outln!(
        "   {} ms later: 2 × ExtendRtspStream (new tokens each time); the servers keep playing the stream they have:",
        start.elapsed().as_millis()
    );
    ok &= sync_and_count(reconciler, &resolver.apply(&inventory), servers).await;

    nest.end_streams();
    outln!("   Google ends the stream (the camera went offline); the next extension is refused:");
    let second = resolved(source(&first)).await;
    outln!("   GenerateRtspStream → porch plays {}", shown(&second));
    ok &= sync_and_count(reconciler, &second, servers).await;
    let commands: Vec<String> = nest
        .commands()
        .iter()
        .map(|c| {
            let name = c.command.rsplit('.').next().unwrap_or_default();
            format!("{name} {}", c.status)
        })
        .collect();
    outln!("   commands Google saw: {}\n", commands.join(", "));
    Ok(ok && source(&first).is_some() && source(&second) != source(&first))
}

/// Syncs `inventory` and prints the result with the number of write calls each server saw.
async fn sync_and_count(reconciler: &Reconciler, inventory: &Inventory, servers: &Servers) -> bool {
    let before = servers.writes();
    let result = reconciler.sync(inventory).await;
    let after = servers.writes();
    let porch: Vec<String> = result
        .targets
        .iter()
        .flat_map(|t| {
            t.steps
                .iter()
                .filter(|s| s.stream == "porch")
                .map(|s| format!("{} {}", t.target, s.action.name()))
        })
        .collect();
    outln!(
        "   sync: porch {}; write calls seen: go2rtc {}, MediaMTX {}",
        if porch.is_empty() {
            "unchanged".to_owned()
        } else {
            porch.join(", ")
        },
        after.0 - before.0,
        after.1 - before.1
    );
    result.ok()
}

/// One monitor round over each target, printing every transition with its time; what the
/// monitor decides is carried out by the target's worker before the next round.
async fn watch_round(
    monitors: &mut [(TargetMonitor, WorkerHandle)],
    resolver: &Resolver,
    cameras: &Cameras,
    start: Instant,
) {
    for (monitor, worker) in monitors.iter_mut() {
        let outcome = monitor.round(cameras, Instant::now()).await;
        let done = Ticket::new();
        apply(
            worker,
            resolver,
            &outcome.intents,
            std::slice::from_ref(&done),
        );
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

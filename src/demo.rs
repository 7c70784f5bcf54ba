//! `camsync demo`: the whole loop in one process against the built-in simulators, on loopback
//! only. It writes a sample config and inventory to a temporary directory, syncs, edits the
//! inventory, simulates a go2rtc restart, and prints each step's plan and result.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use crate::app::{AppError, LedgerMode, load_inventory, process_env, reconciler};
use crate::config;
use crate::reconcile::Reconciler;
use crate::sim::camera::SimCamera;
use crate::sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};

const HAND_MADE: &str = "doorbell_by_hand";

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

    println!("camsync demo: everything below runs on 127.0.0.1 in this process.\n");
    println!(
        "  simulated go2rtc  API {}  RTSP {}",
        go2rtc.api_url(),
        go2rtc.rtsp_url()
    );
    println!(
        "  simulated cameras {}",
        cameras
            .iter()
            .map(|c| c.url(""))
            .collect::<Vec<_>>()
            .join("  ")
    );
    println!(
        "  go2rtc already has {HAND_MADE:?}, a stream its user made by hand: camsync must leave it alone."
    );
    println!("  files in {}\n", dir.path().display());

    let config_path = dir.path().join("camsync.yaml");
    let write =
        |path: &Path, text: String| std::fs::write(path, text).map_err(io("write a demo file"));
    write(
        &config_path,
        format!(
            "source:\n  file: cameras.yaml\ntargets:\n  - name: go2rtc\n    kind: go2rtc\n    api: {}\n    rtsp: {}\nstate: camsync-state.db\nresync: 30s\n",
            go2rtc.api_url(),
            go2rtc.rtsp_url()
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
    write(
        &inventory_path,
        format!(
            "cameras:\n{front_door}{}{}",
            camera_entry("garage", cameras[1].url("main")),
            camera_entry("backyard", cameras[1].url("sub"))
        ),
    )?;

    let config = config::load(&config_path, &process_env)?;
    let reconciler = reconciler(&config, LedgerMode::ReadWrite)?;
    let mut ok = true;

    ok &= step(
        &reconciler,
        &config,
        &go2rtc,
        "1. first sync: three cameras in cameras.yaml",
    )
    .await?;
    ok &= step(
        &reconciler,
        &config,
        &go2rtc,
        "2. sync again, nothing changed: no write call",
    )
    .await?;

    write(
        &inventory_path,
        format!(
            "cameras:\n{front_door}{}{}",
            camera_entry("garage", cameras[1].url("main_hd")),
            camera_entry("driveway", cameras[2].url("drive"))
        ),
    )?;
    ok &= step(
        &reconciler,
        &config,
        &go2rtc,
        "3. cameras.yaml edited: garage has a new URL, backyard removed, driveway added",
    )
    .await?;

    go2rtc.restart().await;
    println!(
        "   (go2rtc restarted; it now has only what its file holds: {:?})\n",
        go2rtc.stream_names()
    );
    ok &= step(
        &reconciler,
        &config,
        &go2rtc,
        "4. resync after the go2rtc restart: the lost streams come back",
    )
    .await?;

    println!(
        "streams on go2rtc now: {}",
        go2rtc.stream_names().join(", ")
    );
    let hand_made_kept = go2rtc.stream_names().iter().any(|n| n == HAND_MADE);
    println!(
        "{HAND_MADE:?} is {}",
        if hand_made_kept {
            "untouched"
        } else {
            "GONE (a bug)"
        }
    );
    ok &= hand_made_kept && go2rtc.crashed().is_none();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Plans, syncs, and prints both with the number of write calls the server saw.
async fn step(
    reconciler: &Reconciler,
    config: &config::Config,
    go2rtc: &Go2rtcSim,
    title: &str,
) -> Result<bool, AppError> {
    println!("── {title}");
    let inventory = load_inventory(config)?;
    let plan = reconciler.plan(&inventory).await;
    println!("plan:\n{}", indent(&plan.render_text()));
    let writes_before = go2rtc.write_count();
    let result = reconciler.sync(&inventory).await;
    println!("result:\n{}", indent(&result.render_text()));
    println!(
        "   write calls seen by go2rtc: {}\n",
        go2rtc.write_count() - writes_before
    );
    Ok(result.ok())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   {l}\n")).collect()
}

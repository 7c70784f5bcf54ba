//! The health monitor against the simulators: lost paths come back, a down camera is waited
//! for without churn, a down server API is left alone, a stuck stream is restarted.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use camsync::camera::Camera;
use camsync::health::monitor::{Settings, TargetMonitor};
use camsync::health::state::{Policy, State};
use camsync::sim::camera::SimCamera;
use camsync::sim::mediamtx::MediamtxSimOptions;
use common::*;
use tokio::time::Instant;

/// Probe on every round, no grace: each round is a full verdict.
fn eager() -> Settings {
    Settings {
        idle_probe: Duration::ZERO,
        probe_timeout: Duration::from_secs(2),
        policy: Policy {
            grace: Duration::ZERO,
            base_backoff: Duration::ZERO,
            ..Policy::default()
        },
        ..Settings::default()
    }
}

struct Setup {
    f: Fixture,
    cameras: BTreeMap<String, Camera>,
}

impl Setup {
    /// On-demand (viewing) streams: a preloaded go2rtc stream answers DESCRIBE from cached
    /// tracks while its camera is down, so only its counters tell (SERVERS.md).
    async fn new(entries: &[(&str, String)]) -> Setup {
        let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
        let text: String = entries
            .iter()
            .map(|(n, u)| format!("  - name: {n}\n    url: {u}\n"))
            .collect();
        std::fs::write(f.path("cameras.yaml"), format!("cameras:\n{text}")).unwrap();
        assert!(f.sync().await.ok());
        let cameras = camsync::app::load_inventory(&f.config())
            .await
            .unwrap()
            .cameras;
        Setup { f, cameras }
    }

    fn monitor(&self, target: &str) -> TargetMonitor {
        let config = self.f.config();
        let index = config
            .targets
            .iter()
            .position(|t| t.name == target)
            .unwrap();
        let targets = camsync::target::from_config(&config.targets).unwrap();
        TargetMonitor::new(
            targets[index].clone(),
            config.targets[index].rtsp.clone(),
            eager(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_deleted_behind_camsyncs_back_is_re_added_in_one_round() {
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::new(&[("door", camera.url("s"))]).await;
    let mut monitor = s.monitor("mediamtx");
    monitor.round(&s.cameras, Instant::now()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v3/config/paths/delete/door", s.f.mtx().api_url());
    assert!(
        client
            .delete(url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert!(s.f.mtx().path_names().is_empty());

    let outcome = monitor.round(&s.cameras, Instant::now()).await;
    assert_eq!(outcome.writes, 1);
    assert_eq!(
        outcome.events[0].transition.reason,
        "the server no longer lists the stream"
    );
    assert_eq!(s.f.mtx().path_names(), ["door"]);
    let healed = eventually_round(&mut monitor, &s.cameras, |m| {
        m.state("door") == Some(State::Healthy)
    })
    .await;
    assert!(healed, "{:?}", monitor.state("door"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_camera_is_waited_for_without_churn_and_served_again_when_back() {
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::new(&[("door", camera.url("s"))]).await;
    let mut monitor = s.monitor("go2rtc");
    monitor.round(&s.cameras, Instant::now()).await;
    camera.stop().await;
    let writes = s.f.go2rtc.write_count();
    for _ in 0..3 {
        let outcome = monitor.round(&s.cameras, Instant::now()).await;
        assert_eq!(outcome.writes, 0);
    }
    assert_eq!(monitor.state("door"), Some(State::CameraOffline));
    assert_eq!(
        s.f.go2rtc.write_count(),
        writes,
        "nothing is churned while the camera is down"
    );

    camera.resume().await.unwrap();
    let back = eventually_round(&mut monitor, &s.cameras, |m| {
        m.state("door") == Some(State::Healthy)
    })
    .await;
    assert!(back, "{:?}", monitor.state("door"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_server_api_is_left_alone_and_its_return_asks_for_a_resync() {
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::new(&[("door", camera.url("s"))]).await;
    let mut monitor = s.monitor("go2rtc");
    monitor.round(&s.cameras, Instant::now()).await;
    s.f.go2rtc.shutdown().await;
    let outcome = monitor.round(&s.cameras, Instant::now()).await;
    assert_eq!(
        (outcome.writes, monitor.state("door")),
        (0, Some(State::TargetDown))
    );
    s.f.go2rtc.restart().await;
    let outcome = monitor.round(&s.cameras, Instant::now()).await;
    assert!(outcome.resync, "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_camera_answers_but_is_not_served_is_restarted() {
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::new(&[("door", camera.url("s"))]).await;
    let mut monitor = s.monitor("go2rtc");
    monitor.round(&s.cameras, Instant::now()).await;
    // The camera accepts connections but answers nothing: go2rtc cannot serve the stream,
    // yet the camera is there. That is a stuck stream to restart, not a camera to wait for.
    camera.hang();
    let writes = s.f.go2rtc.write_count();
    let outcome = monitor.round(&s.cameras, Instant::now()).await;
    assert_eq!(
        outcome.events.last().map(|e| e.transition.reason),
        Some("the camera answers but the server does not serve the stream")
    );
    assert!(outcome.writes >= 2, "delete + add: {outcome:?}");
    assert!(s.f.go2rtc.write_count() >= writes + 2);
    assert_eq!(s.f.go2rtc.stream_names(), ["door"]);
}

async fn eventually_round(
    monitor: &mut TargetMonitor,
    cameras: &BTreeMap<String, Camera>,
    done: impl Fn(&TargetMonitor) -> bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        monitor.round(cameras, Instant::now()).await;
        if done(monitor) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_health_loop_heals_a_deleted_path_long_before_any_resync() {
    use camsync::daemon::{Status, run_with_status};
    let camera = SimCamera::start().await.unwrap();
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    f.write_config_with_resync(
        "1h",
        "restart_check: 1h\nhealth:\n  interval: 100ms\n  grace: 1ms\n",
    );
    std::fs::write(
        f.path("cameras.yaml"),
        format!("cameras:\n  - name: door\n    url: {}\n", camera.url("s")),
    )
    .unwrap();
    let (tx, mut status) = tokio::sync::watch::channel(Status::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(run_with_status(f.config(), shutdown.clone(), tx));
    let first = tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.syncs >= 1))
        .await
        .map(|r| r.is_ok());
    assert_eq!(first, Ok(true));

    let url = format!("{}/v3/config/paths/delete/door", f.mtx().api_url());
    assert!(
        reqwest::Client::new()
            .delete(url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert!(eventually(Duration::from_secs(10), || f.mtx().path_names() == ["door"]).await);
    assert_eq!(
        status.borrow().syncs,
        1,
        "healed by the health loop, not by a sync"
    );
    shutdown.cancel();
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(10), daemon).await,
        Ok(Ok(Ok(())))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mediamtx_file_target_with_api_recovers_a_lost_path_through_the_api_as_the_file_says() {
    use camsync::app::{LedgerMode, load_inventory, process_env, reconciler};
    let camera = SimCamera::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mediamtx.yml");
    std::fs::write(&file, "paths:\n").unwrap();
    let mtx = camsync::sim::mediamtx::MediamtxSim::start(MediamtxSimOptions {
        config_file: Some(file.clone()),
        ..MediamtxSimOptions::default()
    })
    .await
    .unwrap();
    std::fs::write(
        dir.path().join("camsync.yaml"),
        format!(
            "source:\n  file: cameras.yaml\ntargets:\n  - name: mtx\n    kind: mediamtx-file\n    path: mediamtx.yml\n    api: {}\n    rtsp: {}\nstate: camsync.db\n",
            mtx.api_url(),
            mtx.rtsp_url()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("cameras.yaml"),
        format!("cameras:\n  - name: door\n    url: {}\n", camera.url("s")),
    )
    .unwrap();
    let config = camsync::config::load(&dir.path().join("camsync.yaml"), &process_env).unwrap();
    let inventory = load_inventory(&config).await.unwrap();
    assert!(
        reconciler(&config, LedgerMode::ReadWrite)
            .unwrap()
            .sync(&inventory)
            .await
            .ok()
    );
    assert!(eventually(Duration::from_secs(10), || mtx.path_names() == ["door"]).await);
    let written = std::fs::read_to_string(&file).unwrap();

    // Deleted through the API behind camsync's back: the file still has it.
    let url = format!("{}/v3/config/paths/delete/door", mtx.api_url());
    assert!(
        reqwest::Client::new()
            .delete(url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert!(mtx.path_names().is_empty());

    let targets = camsync::target::from_config(&config.targets).unwrap();
    let mut monitor =
        TargetMonitor::new(targets[0].clone(), config.targets[0].rtsp.clone(), eager());
    let outcome = monitor.round(&inventory.cameras, Instant::now()).await;
    assert_eq!(outcome.writes, 1, "{outcome:?}");
    assert_eq!(mtx.path_names(), ["door"], "re-created through the API");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        written,
        "the file is not rewritten"
    );
    assert_eq!(mtx.path_config("door").unwrap()["source"], camera.url("s"));

    // A later reload of the file finds the identical path and leaves it (and its readers) alone.
    assert!(mtx.add_reader("door"));
    let reloads = mtx.reload_count();
    // A change within 1 s of the last reload is ignored, so edit until one is picked up.
    // Each edit replaces the file whole: a reload must never see a half-written file.
    let mut edits = 0;
    let reloaded = eventually(Duration::from_secs(10), || {
        edits += 1;
        let edited = format!("# edited by hand ({edits})\n{written}");
        camsync::atomic_file::write(&file, edited.as_bytes()).unwrap();
        mtx.reload_count() > reloads
    })
    .await;
    assert!(reloaded);
    assert_eq!(
        (mtx.path_names(), mtx.readers("door")),
        (vec!["door".to_string()], 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_no_longer_owned_when_the_round_acts_is_not_re_added() {
    use camsync::health::monitor::ActGuard;
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::new(&[("door", camera.url("s"))]).await;
    let mut monitor = s.monitor("mediamtx");
    monitor.round(&s.cameras, Instant::now()).await;
    // A sync deletes the path (the camera left the inventory) while a round still has the
    // camera in its snapshot.
    let url = format!("{}/v3/config/paths/delete/door", s.f.mtx().api_url());
    assert!(
        reqwest::Client::new()
            .delete(url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let gate = tokio::sync::RwLock::new(());
    let owned = |_: &str| false;
    let guard = ActGuard {
        gate: &gate,
        owned: &owned,
    };
    let outcome = monitor
        .round_guarded(&s.cameras, Instant::now(), Some(&guard))
        .await;
    assert_eq!(outcome.writes, 0);
    assert!(s.f.mtx().path_names().is_empty(), "no orphan re-created");
}

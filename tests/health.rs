//! The health monitor against the simulators: lost paths come back, a down camera is waited
//! for without churn, a down server API is left alone, a stuck stream is restarted.

mod common;

use std::sync::Arc;
use std::time::Duration;

use camsync::camera::Cameras;
use camsync::config::Config;
use camsync::health::monitor::{Intent, RoundOutcome, Settings, TargetMonitor};
use camsync::health::runner::apply;
use camsync::health::state::{Policy, State};
use camsync::reconcile::Workers;
use camsync::reconcile::ticket::Ticket;
use camsync::reconcile::worker::{Quiet, WorkerHandle};
use camsync::resolve::Resolver;
use camsync_sim::camera::SimCamera;
use camsync_sim::mediamtx::MediamtxSimOptions;
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

/// The workers of a config, running until dropped, and its resolver.
struct Running {
    workers: Workers,
    resolver: Arc<Resolver>,
    _stop: tokio_util::sync::DropGuard,
}

impl Running {
    fn start(config: &Config, inventory: camsync::source::Inventory) -> Running {
        let stop = tokio_util::sync::CancellationToken::new();
        let tasks = tokio_util::task::TaskTracker::new();
        let workers = camsync::app::reconciler(config, camsync::app::LedgerMode::ReadWrite)
            .unwrap()
            .start(std::sync::Arc::new(Quiet), &stop, &tasks)
            .unwrap();
        workers.publish(Arc::new(inventory));
        Running {
            workers,
            resolver: Arc::new(Resolver::start(config).unwrap()),
            _stop: stop.drop_guard(),
        }
    }

    fn worker(&self, target: &str) -> WorkerHandle {
        self.workers.get(target).unwrap().clone()
    }
}

/// A monitor with its target's worker: each round's intents are carried out before it returns.
struct Watched {
    monitor: TargetMonitor,
    worker: WorkerHandle,
    resolver: Arc<Resolver>,
}

impl Watched {
    async fn round(&mut self, cameras: &Cameras) -> RoundOutcome {
        let outcome = self.monitor.round(cameras, Instant::now()).await;
        let done = Ticket::new();
        self.apply(&outcome, &done);
        done.release();
        done.wait().await;
        outcome
    }

    /// Hands `outcome`'s intents on, each carrying `done`.
    fn apply(&self, outcome: &RoundOutcome, done: &Ticket) {
        let done = std::slice::from_ref(done);
        apply(&self.worker, &self.resolver, &outcome.intents, done);
    }

    fn state(&self, camera: &str) -> Option<State> {
        self.monitor.state(camera)
    }
}

struct Setup {
    f: Fixture,
    cameras: Cameras,
    running: Running,
}

impl Setup {
    /// On-demand (viewing) streams: a preloaded go2rtc stream answers DESCRIBE from cached
    /// tracks while its camera is down, so only its counters tell (SERVERS.md).
    async fn new(entries: &[(&str, String)]) -> Setup {
        Setup::with_profile(entries, "viewing").await
    }

    async fn with_profile(entries: &[(&str, String)], profile: &str) -> Setup {
        let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
        let text: String = entries
            .iter()
            .map(|(n, u)| format!("  - name: {n}\n    url: {u}\n    profile: {profile}\n"))
            .collect();
        std::fs::write(f.path("cameras.yaml"), format!("cameras:\n{text}")).unwrap();
        assert!(f.sync().await.ok());
        let inventory = camsync::app::load_inventory(&f.config()).await.unwrap();
        let cameras = inventory.cameras.clone();
        let running = Running::start(&f.config(), inventory);
        Setup {
            f,
            cameras,
            running,
        }
    }

    fn monitor(&self, target: &str) -> Watched {
        self.monitor_with(target, eager())
    }

    fn monitor_with(&self, target: &str, settings: Settings) -> Watched {
        watched(&self.f.config(), &self.running, target, settings)
    }
}

/// The monitor of `target` in `config`, acting through its running worker.
fn watched(config: &Config, running: &Running, target: &str, settings: Settings) -> Watched {
    let index = config
        .targets
        .iter()
        .position(|t| t.name == target)
        .unwrap();
    let targets = camsync::target::from_config(&config.targets).unwrap();
    Watched {
        monitor: TargetMonitor::new(
            targets[index].clone(),
            config.targets[index].rtsp.clone(),
            settings,
        ),
        worker: running.worker(target),
        resolver: running.resolver.clone(),
    }
}

/// Whether `outcome` asks to recover `camera` (by delete + add when `restart`).
fn asks_recovery(outcome: &RoundOutcome, camera: &str, restart: bool) -> bool {
    outcome.intents.iter().any(|i| {
        matches!(i, Intent::Recover { camera: c, restart: r, .. } if c == camera && *r == restart)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_deleted_behind_camsyncs_back_is_re_added_in_one_round() {
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::new(&[("door", camera.url("s"))]).await;
    let mut monitor = s.monitor("mediamtx");
    monitor.round(&s.cameras).await;
    delete_by_hand(s.f.mtx(), "door").await;
    assert!(s.f.mtx().path_names().is_empty());

    let outcome = monitor.round(&s.cameras).await;
    assert_eq!(outcome.intents.len(), 1);
    assert!(asks_recovery(&outcome, "door", false), "{outcome:?}");
    assert_eq!(
        outcome.events[0].transition.reason,
        "the server no longer lists the stream"
    );
    assert_eq!(s.f.mtx().path_names(), ["door"]);
    assert_heals(&mut monitor, &s.cameras, "door").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_camera_is_waited_for_without_churn_and_served_again_when_back() {
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::new(&[("door", camera.url("s"))]).await;
    let mut monitor = s.monitor("go2rtc");
    monitor.round(&s.cameras).await;
    camera.stop().await;
    let writes = s.f.go2rtc.write_count();
    for _ in 0..3 {
        let outcome = monitor.round(&s.cameras).await;
        assert!(outcome.intents.is_empty(), "{outcome:?}");
    }
    assert_eq!(monitor.state("door"), Some(State::CameraOffline));
    assert_eq!(
        s.f.go2rtc.write_count(),
        writes,
        "nothing is churned while the camera is down"
    );

    camera.resume().await.unwrap();
    assert_heals(&mut monitor, &s.cameras, "door").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_server_api_is_left_alone_and_its_return_asks_for_a_resync() {
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::new(&[("door", camera.url("s"))]).await;
    let mut monitor = s.monitor("go2rtc");
    monitor.round(&s.cameras).await;
    s.f.go2rtc.shutdown().await;
    let outcome = monitor.round(&s.cameras).await;
    assert_eq!(
        (outcome.intents.as_slice(), monitor.state("door")),
        ([].as_slice(), Some(State::TargetDown))
    );
    s.f.go2rtc.restart().await;
    let outcome = monitor.round(&s.cameras).await;
    assert_eq!(outcome.intents, [Intent::Resync]);
    assert_eq!(
        s.f.go2rtc.stream_names(),
        ["door"],
        "the resync put it back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_camera_answers_but_is_not_served_is_restarted() {
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::new(&[("door", camera.url("s"))]).await;
    let mut monitor = s.monitor("go2rtc");
    monitor.round(&s.cameras).await;
    // The camera accepts connections but answers nothing: go2rtc cannot serve the stream,
    // yet the camera is there. That is a stuck stream to restart, not a camera to wait for.
    camera.hang();
    let writes = s.f.go2rtc.write_count();
    let outcome = monitor.round(&s.cameras).await;
    assert_eq!(
        outcome.events.last().map(|e| e.transition.reason),
        Some("the camera answers but the server does not serve the stream")
    );
    assert!(
        asks_recovery(&outcome, "door", true),
        "delete + add: {outcome:?}"
    );
    assert!(s.f.go2rtc.write_count() >= writes + 2);
    assert_eq!(s.f.go2rtc.stream_names(), ["door"]);
}

/// Deletes a path through MediaMTX's API, behind camsync's back.
async fn delete_by_hand(mtx: &camsync_sim::mediamtx::MediamtxSim, name: &str) {
    let url = format!("{}/v3/config/paths/delete/{name}", mtx.api_url());
    let answer = reqwest::Client::new().delete(url).send().await.unwrap();
    assert!(answer.status().is_success());
}

/// Rounds until `camera` is healthy; fails the test after the deadline.
async fn assert_heals(monitor: &mut Watched, cameras: &Cameras, camera: &str) {
    let healed = eventually_round(monitor, cameras, |m| {
        m.state(camera) == Some(State::Healthy)
    })
    .await;
    assert!(healed, "{camera}: {:?}", monitor.state(camera));
}

async fn eventually_round(
    monitor: &mut Watched,
    cameras: &Cameras,
    done: impl Fn(&Watched) -> bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        monitor.round(cameras).await;
        if done(monitor) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_health_loop_heals_a_deleted_path_long_before_any_resync() {
    use camsync::daemon::{Progress, run_with_progress};
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
    let (tx, mut status) = tokio::sync::watch::channel(Progress::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(run_with_progress(f.config(), shutdown.clone(), tx));
    let first = tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.syncs >= 1))
        .await
        .map(|r| r.is_ok());
    assert_eq!(first, Ok(true));

    delete_by_hand(f.mtx(), "door").await;
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
    use camsync::app::{LedgerMode, load_inventory, reconciler};
    use camsync::config::process_env;
    let camera = SimCamera::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mediamtx.yml");
    std::fs::write(&file, "paths:\n").unwrap();
    let mtx = camsync_sim::mediamtx::MediamtxSim::start(MediamtxSimOptions {
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
    delete_by_hand(&mtx, "door").await;
    assert!(mtx.path_names().is_empty());

    let running = Running::start(&config, inventory.clone());
    let mut monitor = watched(&config, &running, "mtx", eager());
    let outcome = monitor.round(&inventory.cameras).await;
    assert!(asks_recovery(&outcome, "door", false), "{outcome:?}");
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
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::new(&[("door", camera.url("s")), ("yard", camera.url("y"))]).await;
    let mut monitor = s.monitor("mediamtx");
    monitor.round(&s.cameras).await;
    // The camera leaves the inventory and its path is deleted, while the monitor still has the
    // camera in its snapshot.
    let mut without = camsync::app::load_inventory(&s.f.config()).await.unwrap();
    without.cameras.remove("door");
    s.running.workers.publish(std::sync::Arc::new(without));
    let gone = s.running.workers.converge(
        &["door".to_string()].into(),
        camsync::reconcile::queue::Priority::Change,
        None,
    );
    gone.wait().await;
    assert_eq!(s.f.mtx().path_names(), ["yard"]);

    let outcome = monitor.round(&s.cameras).await;
    assert!(asks_recovery(&outcome, "door", false), "{outcome:?}");
    assert_eq!(s.f.mtx().path_names(), ["yard"], "no orphan re-created");
}

/// The status of one `DESCRIBE` of `name` through the go2rtc simulator's RTSP proxy.
async fn describe(f: &Fixture, name: &str) -> u16 {
    let probe = camsync::health::probe::Probe {
        url: url::Url::parse(&format!("{}/{name}", f.go2rtc.rtsp_url())).unwrap(),
        credentials: None,
        timeout: Duration::from_secs(2),
    };
    probe.describe().await.map_or(0, |answer| answer.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go2rtc_stream_stuck_after_a_camera_reboot_is_replaced_and_serves_again() {
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::new(&[("door", camera.url("s"))]).await;
    s.f.go2rtc.set_stuck_after_reboot(true);
    let mut monitor = s.monitor("go2rtc");
    monitor.round(&s.cameras).await;
    assert_eq!(monitor.state("door"), Some(State::Healthy));

    // The camera reboots between two rounds; a viewer's request meets it down (go2rtc issue
    // #762): from then on go2rtc answers 404 although the camera is back.
    camera.stop().await;
    assert_eq!(describe(&s.f, "door").await, 404);
    camera.resume().await.unwrap();
    assert_eq!(describe(&s.f, "door").await, 404);
    assert!(s.f.go2rtc.is_stuck("door"));

    let outcome = monitor.round(&s.cameras).await;
    assert_eq!(
        outcome.events.first().map(|e| e.transition.reason),
        Some("the camera answers but the server does not serve the stream")
    );
    assert!(
        asks_recovery(&outcome, "door", true),
        "delete + add: {outcome:?}"
    );
    assert!(!s.f.go2rtc.is_stuck("door"));
    assert_eq!(describe(&s.f, "door").await, 200);
    assert_heals(&mut monitor, &s.cameras, "door").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preloaded_go2rtc_stream_is_judged_by_its_counters_and_restarted_when_its_camera_returns()
{
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::with_profile(&[("door", camera.url("s"))], "recording").await;
    assert_eq!(s.f.go2rtc.preloads(), ["door"]);
    s.f.go2rtc.set_stuck_after_reboot(true);
    let mut monitor = s.monitor("go2rtc");
    assert_heals(&mut monitor, &s.cameras, "door").await;

    camera.stop().await;
    assert!(
        eventually(Duration::from_secs(5), || !s
            .f
            .go2rtc
            .producer_connected("door"))
        .await
    );
    // go2rtc still answers DESCRIBE from cached tracks: only the frozen counters tell.
    assert_eq!(describe(&s.f, "door").await, 200);
    let writes = s.f.go2rtc.write_count();
    for _ in 0..3 {
        let outcome = monitor.round(&s.cameras).await;
        assert!(
            outcome.intents.is_empty(),
            "nothing churned while the camera is down: {outcome:?}"
        );
    }
    assert_eq!(monitor.state("door"), Some(State::CameraOffline));
    assert_eq!(s.f.go2rtc.write_count(), writes);

    // Back: go2rtc's own redial reconnects it stuck (no data); camsync replaces it and re-arms
    // the preload.
    camera.resume().await.unwrap();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && monitor.state("door") != Some(State::Healthy) {
        events.extend(monitor.round(&s.cameras).await.events);
    }
    assert_eq!(monitor.state("door"), Some(State::Healthy), "{events:?}");
    assert!(!s.f.go2rtc.is_stuck("door"));
    assert_eq!(s.f.go2rtc.preloads(), ["door"], "the preload is re-armed");
    let before = s.f.go2rtc.bytes_recv("door");
    assert!(
        eventually(Duration::from_secs(5), || s.f.go2rtc.bytes_recv("door")
            > before)
        .await
    );
    let recovered = events.iter().find_map(|e| e.transition.recovered_after);
    assert!(recovered.is_some(), "recovery time recorded: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_counters_while_the_camera_answers_restart_the_stream_until_data_flows() {
    let camera = SimCamera::start().await.unwrap();
    let s = Setup::with_profile(&[("door", camera.url("s"))], "recording").await;
    let mut monitor = s.monitor("go2rtc");
    assert_heals(&mut monitor, &s.cameras, "door").await;
    // The camera keeps its port open but sends nothing: consumers attached, counters frozen.
    camera.hang();
    // Two reads 20 ms apart are equal only once the counter froze (it grows 1 kB per 20 ms).
    let mut last = s.f.go2rtc.bytes_recv("door");
    let frozen = eventually(Duration::from_secs(5), || {
        let now = s.f.go2rtc.bytes_recv("door");
        std::mem::replace(&mut last, now) == now
    })
    .await;
    assert!(frozen, "the counter freezes while the camera hangs");
    let mut outcome = RoundOutcome::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && outcome.events.is_empty() {
        outcome = monitor.monitor.round(&s.cameras, Instant::now()).await;
    }
    assert_eq!(
        outcome.events.first().map(|e| e.transition.reason),
        Some("no data moves although the stream is in use or kept connected"),
        "{outcome:?}"
    );
    assert!(asks_recovery(&outcome, "door", true), "{outcome:?}");
    // The camera's stream comes back before camsync acts (a restart while it still hangs
    // would only wait out go2rtc's dial timeouts).
    camera.answer();
    let done = Ticket::new();
    monitor.apply(&outcome, &done);
    done.release();
    done.wait().await;
    assert_heals(&mut monitor, &s.cameras, "door").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_does_not_wait_behind_a_large_resync_of_its_target() {
    use camsync::app::load_inventory;
    use camsync::reconcile::queue::Priority;
    let camera = SimCamera::start().await.unwrap();
    // Each MediaMTX write costs more as paths accumulate, as in the real server.
    let f = Fixture::with_mediamtx(MediamtxSimOptions {
        write_cost_per_path: Duration::from_micros(30),
        ..MediamtxSimOptions::default()
    })
    .await;
    let door = format!("  - name: door\n    url: {}\n", camera.url("s"));
    std::fs::write(f.path("cameras.yaml"), format!("cameras:\n{door}")).unwrap();
    let config = f.config();
    let first = load_inventory(&config).await.unwrap();
    let running = Running::start(&config, first.clone());
    running
        .workers
        .converge_all(Priority::Change, None)
        .wait()
        .await;

    // 400 cameras arrive: a resync of MediaMTX that takes seconds.
    let bulk: String = (0..400)
        .map(|i| {
            format!("  - name: bulk{i}\n    url: rtsp://192.0.2.1/{i}\n    targets: [mediamtx]\n")
        })
        .collect();
    std::fs::write(f.path("cameras.yaml"), format!("cameras:\n{door}{bulk}")).unwrap();
    running
        .workers
        .publish(std::sync::Arc::new(load_inventory(&config).await.unwrap()));
    let resync = running.workers.converge_all(Priority::Resync, None);
    assert!(eventually(Duration::from_secs(10), || f.mtx().path_names().len() > 20).await);
    delete_by_hand(f.mtx(), "door").await;

    let mut monitor = watched(&config, &running, "mediamtx", eager());
    let outcome = monitor.round(&first.cameras).await;
    assert!(asks_recovery(&outcome, "door", false), "{outcome:?}");
    assert!(f.mtx().path_names().contains(&"door".to_string()));
    assert!(
        !resync.is_done(),
        "the stream came back while the resync was still running"
    );
    resync.wait().await;
    let report = running.workers.report(&resync, Vec::new());
    assert!(report.ok(), "{}", report.render_text());
    assert_eq!(f.mtx().path_names().len(), 401);
}

/// Rounds until `rounds` have passed; the server restarts they made.
async fn server_restarts(monitor: &mut Watched, cameras: &Cameras, rounds: usize) -> usize {
    let mut restarts = 0;
    for _ in 0..rounds {
        let outcome = monitor.round(cameras).await;
        restarts += usize::from(outcome.intents.contains(&Intent::RestartServer));
    }
    restarts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_go2rtc_is_never_restarted_unless_the_operator_opted_in() {
    let (a, b) = (
        SimCamera::start().await.unwrap(),
        SimCamera::start().await.unwrap(),
    );
    let s = Setup::new(&[("a", a.url("s")), ("b", b.url("s"))]).await;
    let mut monitor = s.monitor("go2rtc");
    assert_eq!(server_restarts(&mut monitor, &s.cameras, 1).await, 0);
    s.f.go2rtc.set_wedged(true);
    assert_eq!(server_restarts(&mut monitor, &s.cameras, 5).await, 0);
    assert_eq!(s.f.go2rtc.restart_calls(), 0);
    assert!(matches!(monitor.state("a"), Some(State::Recovering { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_a_wedged_go2rtc_is_restarted_once_per_window_after_stream_restarts_failed() {
    let (a, b) = (
        SimCamera::start().await.unwrap(),
        SimCamera::start().await.unwrap(),
    );
    let s = Setup::new(&[("a", a.url("s")), ("b", b.url("s"))]).await;
    let mut monitor = s.monitor_with(
        "go2rtc",
        Settings {
            restart_server: Some(Duration::from_secs(3600)),
            ..eager()
        },
    );
    assert_eq!(server_restarts(&mut monitor, &s.cameras, 1).await, 0);
    s.f.go2rtc.set_wedged(true);
    // First each stream is restarted on its own; only when that fails twice for most of them
    // while their cameras answer is the server restarted.
    let first = monitor.round(&s.cameras).await;
    assert!(
        asks_recovery(&first, "a", true) && asks_recovery(&first, "b", true),
        "{first:?}"
    );
    assert!(!first.intents.contains(&Intent::RestartServer));
    let second = monitor.round(&s.cameras).await;
    assert!(
        second.intents.contains(&Intent::RestartServer),
        "{second:?}"
    );
    assert_eq!(s.f.go2rtc.restart_calls(), 1);
    let healed = eventually_round(&mut monitor, &s.cameras, |m| {
        m.state("a") == Some(State::Healthy) && m.state("b") == Some(State::Healthy)
    })
    .await;
    assert!(healed, "{:?} {:?}", monitor.state("a"), monitor.state("b"));

    // Wedged again within the window: streams are restarted, the server is not.
    s.f.go2rtc.set_wedged(true);
    assert_eq!(server_restarts(&mut monitor, &s.cameras, 5).await, 0);
    assert_eq!(s.f.go2rtc.restart_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_acts_the_moment_an_offline_camera_answers_not_at_the_next_round() {
    use camsync::daemon::{Progress, run_with_progress};
    let camera = SimCamera::start().await.unwrap();
    camera.stop().await;
    let f = Fixture::new().await;
    // Rounds an hour apart: only the camera watch between rounds can bring the stream back.
    f.write_config_with_resync(
        "1h",
        "restart_check: 1h\nhealth:\n  interval: 1h\n  grace: 1ms\n  camera_watch: 50ms\n",
    );
    std::fs::write(
        f.path("cameras.yaml"),
        format!(
            "cameras:\n  - name: door\n    url: {}\n    profile: recording\n",
            camera.url("s")
        ),
    )
    .unwrap();
    let (tx, mut status) = tokio::sync::watch::channel(Progress::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(run_with_progress(f.config(), shutdown.clone(), tx));
    // The first round, right after the first sync, finds the recording camera down.
    let offline = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.health_events >= 1),
    )
    .await
    .is_ok_and(|seen| seen.is_ok());
    assert!(offline);
    assert!(!f.go2rtc.producer_connected("door"), "the preload waits");

    camera.resume().await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || f
            .go2rtc
            .producer_connected("door"))
        .await,
        "restarted and preloaded as soon as the camera answered: {:?} {:?}",
        status.borrow().clone(),
        f.go2rtc.preloads()
    );
    assert_eq!(status.borrow().syncs, 1);
    shutdown.cancel();
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(10), daemon).await,
        Ok(Ok(Ok(())))
    ));
}

//! camsync end to end against the real go2rtc and MediaMTX (`CAMSYNC_GO2RTC_BIN`,
//! `CAMSYNC_MEDIAMTX_BIN`; ignored without them) with the streaming simulated camera:
//! `camsync sync` creates, updates and deletes on both while the users' own entries stay,
//! `camsync probe` tells served streams from those whose camera is down, and `camsync run`
//! re-applies its paths after MediaMTX restarts or reloads its file and its streams after
//! go2rtc restarts with an older file, keeps a watched MediaMTX file in step through quick
//! edits, and heals a camera reboot without restarting either server; a `go2rtc-file`
//! target's cameras with passwords are served once the operator restarts go2rtc with camsync's
//! env file.

mod common;
#[path = "common/real.rs"]
mod real;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use camsync::config;
use camsync_sim::camera::SimCamera;
use common::daemon::{Running, start};
use real::RealServer;
use serde_json::Value;

/// A test against the real servers it names (`go2rtc`, `mediamtx` or `both`): on a runtime of
/// its own with two threads, and reported as ignored, saying which variable to set, when a
/// server's binary is not configured.
macro_rules! real_server_test {
    (both, $test:item) => {
        real_server_test!(
            @ all(camsync_go2rtc, camsync_mediamtx),
            "set CAMSYNC_GO2RTC_BIN and CAMSYNC_MEDIAMTX_BIN to the servers' binaries",
            $test
        );
    };
    (go2rtc, $test:item) => {
        real_server_test!(@ camsync_go2rtc, "set CAMSYNC_GO2RTC_BIN to a go2rtc binary", $test);
    };
    (mediamtx, $test:item) => {
        real_server_test!(@ camsync_mediamtx, "set CAMSYNC_MEDIAMTX_BIN to a MediaMTX binary", $test);
    };
    (@ $needs:meta, $why:literal, $test:item) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(not($needs), ignore = $why)]
        $test
    };
}

const BIN: &str = env!("CARGO_BIN_EXE_camsync");
const DEADLINE: Duration = Duration::from_secs(15);

async fn get(url: &str) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::new().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Polls `check` every 100 ms until it holds or [`DEADLINE`] passes; says what it waited for.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn write_config(dir: &Path, go2rtc: Option<&RealServer>, mediamtx: &RealServer, extra: &str) {
    let mut targets = String::new();
    if let Some(g) = go2rtc {
        targets.push_str(&format!(
            "  - name: go2rtc\n    kind: go2rtc\n    api: {}\n    rtsp: {}\n    timeout: 15s\n",
            g.api_url(),
            g.rtsp_url()
        ));
    }
    targets.push_str(&format!(
        "  - name: mediamtx\n    kind: mediamtx\n    api: {}\n    rtsp: {}\n    timeout: 15s\n",
        mediamtx.api_url(),
        mediamtx.rtsp_url()
    ));
    // Health monitoring is off unless `extra` configures it.
    let health = if extra.contains("health:") {
        ""
    } else {
        "health:\n  enabled: false\n"
    };
    std::fs::write(
        dir.join("camsync.yaml"),
        format!(
            "source:\n  file: cameras.yaml\ntargets:\n{targets}state: camsync.db\nresync: 1h\n\
             {health}{extra}"
        ),
    )
    .unwrap();
}

fn write_cameras(dir: &Path, cameras: &[(&str, String)]) {
    let mut text = String::from("cameras:\n");
    for (name, url) in cameras {
        // Recording: always-on on MediaMTX (recording into its temp dir), preloaded on go2rtc.
        text.push_str(&format!(
            "  - name: {name}\n    url: {url}\n    profile: recording\n"
        ));
    }
    std::fs::write(dir.join("cameras.yaml"), text).unwrap();
}

async fn sync(dir: &Path) {
    let mut command = Command::new(BIN);
    command
        .arg("sync")
        .env("CAMSYNC_CONFIG", dir.join("camsync.yaml"))
        .env_remove("CAMSYNC_LOG")
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "camsync sync: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `camsync run` in-process with `dir`'s camsync.yaml, once its first sync succeeded.
async fn run_synced(dir: &Path) -> Running {
    let config = config::load(&dir.join("camsync.yaml"), &camsync::config::process_env).unwrap();
    let daemon = start(config);
    daemon
        .until("the first sync", |s| s.syncs >= 1 && s.last_sync_ok)
        .await;
    daemon
}

async fn go2rtc_source(g: &RealServer, name: &str) -> Option<String> {
    let (status, json) = get(&format!("{}/api/streams?src={name}", g.api_url())).await;
    (status == 200).then(|| {
        json["producers"][0]["url"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    })
}

async fn mediamtx_source(m: &RealServer, name: &str) -> Option<String> {
    let (status, json) = get(&format!("{}/v3/config/paths/get/{name}", m.api_url())).await;
    (status == 200).then(|| json["source"].as_str().unwrap_or("").to_owned())
}

real_server_test!(
    both,
    async fn sync_creates_updates_and_deletes_on_both_and_leaves_users_entries_alone() {
        let g = RealServer::go2rtc("streams:\n  doorbell: rtsp://127.0.0.1:9/users-own\n").await;
        let m = RealServer::mediamtx("paths:\n  users_own:\n    source: publisher\n").await;
        let camera = SimCamera::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), Some(&g), &m, "");
        let cams = |front: &str| {
            [
                ("front", camera.url(front)),
                ("back", camera.url("back")),
                ("side", camera.url("side")),
            ]
        };

        write_cameras(dir.path(), &cams("front"));
        sync(dir.path()).await;
        for name in ["front", "back", "side"] {
            assert_eq!(go2rtc_source(&g, name).await, Some(camera.url(name)));
            assert_eq!(mediamtx_source(&m, name).await, Some(camera.url(name)));
        }
        let ready = format!("{}/v3/paths/get/front", m.api_url());
        eventually("front ready on MediaMTX with bytes", || async {
            let (_, json) = get(&ready).await;
            json["ready"] == true && json["bytesReceived"].as_u64() > Some(0)
        })
        .await;
        let preloaded = format!("{}/api/streams?src=front", g.api_url());
        eventually("front preloaded on go2rtc with bytes", || async {
            let (_, json) = get(&preloaded).await;
            json["producers"][0]["bytes_recv"].as_u64() > Some(0)
        })
        .await;

        write_cameras(dir.path(), &cams("front-hd"));
        sync(dir.path()).await;
        assert_eq!(
            go2rtc_source(&g, "front").await,
            Some(camera.url("front-hd"))
        );
        assert_eq!(
            mediamtx_source(&m, "front").await,
            Some(camera.url("front-hd"))
        );

        write_cameras(dir.path(), &cams("front-hd")[..2]);
        sync(dir.path()).await;
        assert_eq!(go2rtc_source(&g, "side").await, None, "deleted on go2rtc");
        assert_eq!(
            mediamtx_source(&m, "side").await,
            None,
            "deleted on MediaMTX"
        );
        assert!(go2rtc_source(&g, "back").await.is_some());

        let users = go2rtc_source(&g, "doorbell").await;
        assert_eq!(users.as_deref(), Some("rtsp://127.0.0.1:9/users-own"));
        assert_eq!(
            mediamtx_source(&m, "users_own").await.as_deref(),
            Some("publisher")
        );
        let file = std::fs::read_to_string(g.config_path()).unwrap();
        assert!(
            file.contains("doorbell: rtsp://127.0.0.1:9/users-own"),
            "{file}"
        );
    }
);

real_server_test!(
    mediamtx,
    async fn run_reapplies_its_paths_after_mediamtx_restarts_or_reloads_its_file() {
        let mut m = RealServer::mediamtx("").await;
        let camera = SimCamera::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), None, &m, "restart_check: 200ms\n");
        write_cameras(dir.path(), &[("front", camera.url("front"))]);
        let daemon = run_synced(dir.path()).await;
        assert_eq!(
            mediamtx_source(&m, "front").await,
            Some(camera.url("front"))
        );

        m.kill();
        m.resume().await;
        // The restart forgot the path (tests/conformance: a_restart_forgets_api_paths); camsync
        // may already have put it back by now.
        eventually("front re-applied after the restart", || async {
            mediamtx_source(&m, "front").await == Some(camera.url("front"))
        })
        .await;
        let ready = format!("{}/v3/paths/get/front", m.api_url());
        eventually("front ready again", || async {
            get(&ready).await.1["ready"] == true
        })
        .await;

        // Someone adds a path of their own to MediaMTX's file. MediaMTX reloads the file, which
        // drops every path added through the API (tests/conformance:
        // a_file_reload_replaces_api_paths); camsync's canary sees it and re-applies.
        let losses = daemon.current().restarts_seen;
        let file = m.config_path();
        let text = std::fs::read_to_string(&file).unwrap();
        let tmp = file.with_extension("tmp");
        std::fs::write(
            &tmp,
            format!("{text}paths:\n  users_new:\n    source: publisher\n"),
        )
        .unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        daemon
            .until("the reload noticed", |s| s.restarts_seen > losses)
            .await;
        eventually("front re-applied after the reload", || async {
            mediamtx_source(&m, "front").await == Some(camera.url("front"))
                && mediamtx_source(&m, "users_new").await.as_deref() == Some("publisher")
        })
        .await;
        eventually("front ready again", || async {
            get(&ready).await.1["ready"] == true
        })
        .await;
        daemon.stop().await;
    }
);

/// The status of one `DESCRIBE` of `url` (0 when nothing answered).
async fn describe(url: &str) -> u16 {
    let probe = camsync::health::probe::Probe {
        url: url::Url::parse(url).unwrap(),
        credentials: None,
        timeout: Duration::from_secs(12),
    };
    probe.describe().await.map_or(0, |answer| answer.status)
}

/// `camsync probe --output json`, and its exit status.
async fn probe(dir: &Path) -> (bool, Value) {
    let mut command = Command::new(BIN);
    command
        .args(["probe", "--output", "json", "--timeout", "12s"])
        .env("CAMSYNC_CONFIG", dir.join("camsync.yaml"))
        .env_remove("CAMSYNC_LOG")
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "camsync probe printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), json)
}

/// The verdicts of a probe's JSON: (camera, target) → verdict.
fn verdicts(checks: &Value) -> Vec<(String, String, String)> {
    checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap_or("").to_owned();
            (field("camera"), field("target"), field("verdict"))
        })
        .collect()
}

real_server_test!(
    both,
    async fn probe_tells_served_streams_from_those_whose_camera_is_down_on_both() {
        let g = RealServer::go2rtc("").await;
        let m = RealServer::mediamtx("").await;
        let up = SimCamera::start().await.unwrap();
        let down = SimCamera::start().await.unwrap();
        down.stop().await;
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), Some(&g), &m, "");
        write_cameras(
            dir.path(),
            &[("front", up.url("front")), ("garage", down.url("garage"))],
        );
        sync(dir.path()).await;

        let (all_ok, checks) = probe(dir.path()).await;
        let got = verdicts(&checks);
        let want: Vec<(String, String, String)> = [
            ("front", "go2rtc", "ok"),
            ("front", "mediamtx", "ok"),
            ("garage", "go2rtc", "not-served"),
            ("garage", "mediamtx", "not-served"),
        ]
        .iter()
        .map(|(c, t, v)| (c.to_string(), t.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want, "{checks:#}");
        assert!(!all_ok, "a stream that is not served fails the probe");
        let front = &checks[0];
        assert_eq!(front["rtsp_status"], 200);
        assert!(
            front["detail"].as_str().is_some_and(|d| d.contains("H264")),
            "the camera's media, as the proxy describes it: {front}"
        );

        down.resume().await.unwrap();
        let dir = dir.path();
        eventually("garage served on both once its camera is back", || async {
            let (ok, _) = probe(dir).await;
            ok
        })
        .await;
    }
);

real_server_test!(
    both,
    async fn run_heals_a_camera_reboot_on_both_without_restarting_a_server() {
        let g = RealServer::go2rtc("").await;
        let m = RealServer::mediamtx("").await;
        let camera = SimCamera::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let health = "health:\n  interval: 200ms\n  grace: 1s\n  camera_watch: 100ms\n";
        write_config(dir.path(), Some(&g), &m, health);
        write_cameras(dir.path(), &[("front", camera.url("front"))]);
        let daemon = run_synced(dir.path()).await;
        daemon
            .until("both streams judged healthy", |s| s.health_events >= 2)
            .await;
        let started = get(&format!("{}/v3/info", m.api_url())).await.1["started"].clone();

        // The camera reboots: off the network for three seconds.
        let before = daemon.current().health_events;
        camera.stop().await;
        daemon
            .until("the outage seen on both", |s| s.health_events >= before + 2)
            .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        camera.resume().await.unwrap();
        daemon
            .until("both streams healthy again", |s| s.recoveries >= 2)
            .await;
        let status = daemon.current();
        assert_eq!(status.server_restarts, 0, "{status:?}");
        assert!(
            status.recovery_writes >= 1,
            "camsync re-armed the stream: {status:?}"
        );
        daemon.stop().await;

        // Nothing writes any more: go2rtc's API may be read without meeting a write.
        let ready = format!("{}/v3/paths/get/front", m.api_url());
        eventually("front ready on MediaMTX again", || async {
            get(&ready).await.1["ready"] == true
        })
        .await;
        let info = get(&format!("{}/v3/info", m.api_url())).await.1;
        assert_eq!(info["started"], started, "MediaMTX was not restarted");
        let stream = format!("{}/api/streams?src=front", g.api_url());
        let bytes = || async { get(&stream).await.1["producers"][0]["bytes_recv"].as_u64() };
        let first = bytes().await;
        eventually("media flowing into go2rtc again", || async {
            bytes().await > first
        })
        .await;
        let starts = g.log().matches("INF go2rtc platform=").count();
        assert_eq!(starts, 1, "go2rtc was not restarted:\n{}", g.log());
    }
);

real_server_test!(
    mediamtx,
    async fn run_keeps_a_watched_mediamtx_file_in_step_through_quick_edits() {
        let m = RealServer::mediamtx("paths:\n  users_own:\n    source: publisher\n").await;
        let camera = SimCamera::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
        dir.path().join("camsync.yaml"),
        format!(
            "source:\n  file: cameras.yaml\ntargets:\n  - name: mediamtx\n    kind: mediamtx-file\n    \
             path: {}\n    api: {}\nstate: camsync.db\nresync: 1h\nhealth:\n  enabled: false\n",
            m.config_path().display(),
            m.api_url()
        ),
    )
    .unwrap();
        write_cameras(dir.path(), &[("front", camera.url("front"))]);
        let daemon = run_synced(dir.path()).await;
        eventually("front loaded by MediaMTX from its file", || async {
            mediamtx_source(&m, "front").await == Some(camera.url("front"))
        })
        .await;

        // Two edits of the inventory half a second apart: MediaMTX would ignore a second file
        // change that soon after its reload; camsync spaces its writes so that both are loaded.
        let syncs = daemon.current().syncs;
        write_cameras(
            dir.path(),
            &[("front", camera.url("front")), ("back", camera.url("back"))],
        );
        daemon
            .until("the first edit synced", |s| s.syncs > syncs)
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        write_cameras(
            dir.path(),
            &[("back", camera.url("back")), ("side", camera.url("side"))],
        );
        eventually("both edits loaded by MediaMTX", || async {
            mediamtx_source(&m, "front").await.is_none()
                && mediamtx_source(&m, "back").await == Some(camera.url("back"))
                && mediamtx_source(&m, "side").await == Some(camera.url("side"))
        })
        .await;
        let ready = format!("{}/v3/paths/get/side", m.api_url());
        eventually("side ready", || async {
            get(&ready).await.1["ready"] == true
        })
        .await;
        assert_eq!(
            mediamtx_source(&m, "users_own").await.as_deref(),
            Some("publisher"),
            "the user's path stays"
        );
        daemon.stop().await;
        let file = std::fs::read_to_string(m.config_path()).unwrap();
        assert!(file.contains("users_own:\n    source: publisher"), "{file}");
        assert!(m.log().contains("reloading configuration"), "{}", m.log());
    }
);

real_server_test!(
    both,
    async fn run_puts_its_streams_back_when_go2rtc_restarts_with_an_older_file() {
        let mut g =
            RealServer::go2rtc("streams:\n  doorbell: rtsp://127.0.0.1:9/users-own\n").await;
        let m = RealServer::mediamtx("").await;
        let camera = SimCamera::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), Some(&g), &m, "restart_check: 200ms\n");
        write_cameras(
            dir.path(),
            &[("front", camera.url("front")), ("back", camera.url("back"))],
        );
        let older = std::fs::read_to_string(g.config_path()).unwrap();
        let daemon = run_synced(dir.path()).await;

        // go2rtc's container comes back with the file it was deployed with: camsync's streams,
        // which go2rtc had saved into its file, are gone from it.
        g.kill();
        std::fs::write(g.config_path(), &older).unwrap();
        g.resume().await;
        daemon
            .until("the restart noticed", |s| s.restarts_seen >= 1)
            .await;
        // Asked through its RTSP proxy: an API read could meet camsync's writes (SERVERS.md).
        for name in ["front", "back"] {
            let url = format!("{}/{name}", g.rtsp_url());
            eventually(&format!("{name} served by go2rtc again"), || async {
                describe(&url).await == 200
            })
            .await;
        }
        daemon.stop().await;
        for name in ["front", "back"] {
            assert_eq!(go2rtc_source(&g, name).await, Some(camera.url(name)));
        }
        assert_eq!(
            go2rtc_source(&g, "doorbell").await.as_deref(),
            Some("rtsp://127.0.0.1:9/users-own")
        );
    }
);

real_server_test!(
    go2rtc,
    async fn a_go2rtc_file_target_serves_its_password_cameras_after_the_operator_restarts_go2rtc() {
        // A password that needs percent-encoding in a URL.
        const PASSWORD: &str = "p@ss:w/rd %1";
        let mut g =
            RealServer::go2rtc("streams:\n  doorbell: rtsp://127.0.0.1:9/users-own\n").await;
        let camera = SimCamera::start_with_auth("admin", PASSWORD).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("go2rtc.env");
        std::fs::write(
        dir.path().join("camsync.yaml"),
        format!(
            "source:\n  file: cameras.yaml\ntargets:\n  - name: go2rtc\n    kind: go2rtc-file\n    \
             path: {}\n    env_file: {}\n    api: {}\nstate: camsync.db\nresync: 1h\nhealth:\n  enabled: false\n",
            g.config_path().display(),
            env_file.display(),
            g.api_url()
        ),
    )
    .unwrap();
        std::fs::write(dir.path().join("front.password"), PASSWORD).unwrap();
        std::fs::write(
        dir.path().join("cameras.yaml"),
        format!(
            "cameras:\n  - name: front\n    url: {}\n    username: admin\n    password_file: front.password\n",
            camera.url("front")
        ),
    )
    .unwrap();
        let daemon = run_synced(dir.path()).await;
        daemon.stop().await;

        let file = std::fs::read_to_string(g.config_path()).unwrap();
        assert!(
            !file.contains("p@ss"),
            "no password in go2rtc's file: {file}"
        );
        assert!(file.contains("${CAMSYNC_FRONT_PASSWORD}"), "{file}");
        assert!(
            file.contains("doorbell: rtsp://127.0.0.1:9/users-own"),
            "{file}"
        );
        let env = std::fs::read_to_string(&env_file).unwrap();
        let vars: Vec<(&str, &str)> = env.lines().filter_map(|l| l.split_once('=')).collect();
        assert_eq!(vars.len(), 1, "{env:?}");

        // The operator restarts go2rtc's container with the env file: go2rtc expands the variable
        // and dials the camera with the password.
        g.kill();
        g.set_env(&vars);
        g.resume().await;
        let url = format!("{}/front", g.rtsp_url());
        eventually("front served through go2rtc with its password", || async {
            describe(&url).await == 200
        })
        .await;
        assert_eq!(
            go2rtc_source(&g, "front").await,
            Some(camera.url("front").replacen("://", "://admin:***@", 1)),
            "go2rtc shows the expanded password masked"
        );
        assert_eq!(
            go2rtc_source(&g, "doorbell").await.as_deref(),
            Some("rtsp://127.0.0.1:9/users-own")
        );
    }
);

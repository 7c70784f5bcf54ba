//! `camsync run` stopping and speaking: a shutdown in the middle of a sync loses nothing, the
//! process answers SIGTERM (and a second one at once), and a camera password appears nowhere
//! in the API, the events, the metrics or the logs in either format.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use camsync::api::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use camsync::daemon::{Progress, run_with_progress};
use camsync::ledger::Ledger;
use camsync_sim::go2rtc::Go2rtcSimOptions;
use camsync_sim::nest::{NestSim, NestSimOptions};
use common::*;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_camsync");
const DEADLINE: Duration = Duration::from_secs(10);
const HOOK_KEY: &str = "Hook-2b9d41";

fn cameras(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("cam{i:02}"), format!("rtsp://192.0.2.{}/s", i + 1)))
        .collect()
}

fn write(f: &Fixture, cameras: &[(String, String)]) {
    let pairs: Vec<(&str, &str)> = cameras
        .iter()
        .map(|(n, u)| (n.as_str(), u.as_str()))
        .collect();
    f.write_cameras(&pairs);
}

/// What the ledger says camsync owns on go2rtc, and whether each write was confirmed.
fn owned(f: &Fixture) -> Vec<(String, bool)> {
    let ledger = Ledger::open(&f.config().state).unwrap();
    ledger
        .owned("go2rtc")
        .unwrap()
        .into_iter()
        .map(|(name, fp)| (name, fp.is_some()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_in_the_middle_of_a_sync_loses_nothing() {
    let f = Fixture::with(Go2rtcSimOptions {
        write_hold: Duration::from_millis(40),
        ..Default::default()
    })
    .await;
    let all = cameras(40);
    write(&f, &all);
    let (tx, status) = watch::channel(Progress::default());
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(run_with_progress(f.config(), shutdown.clone(), tx));
    assert!(eventually(DEADLINE, || f.go2rtc.write_count() >= 5).await);
    shutdown.cancel();
    let stopped = tokio::time::timeout(DEADLINE, daemon).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "stops cleanly");
    let written = f.go2rtc.write_count();
    assert!(written < 40, "stopped mid-sync, after {written} writes");
    assert_eq!(
        status.borrow().syncs,
        1,
        "the interrupted sync still reports"
    );

    // Every stream on the server is in the ledger, confirmed: the write in flight finished.
    let on_server = f.names();
    let ledger = owned(&f);
    assert_eq!(on_server.len() as u64, written);
    assert_eq!(
        ledger,
        on_server
            .iter()
            .map(|n| (n.clone(), true))
            .collect::<Vec<_>>()
    );

    // The next run converges, and the ledger matches the server exactly.
    let report = f.sync().await;
    assert!(report.ok(), "{}", report.render_text());
    assert_eq!(report.targets[0].counts.unchanged as u64, written);
    let names: Vec<String> = all.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(f.names(), names);
    assert_eq!(
        owned(&f),
        names.iter().map(|n| (n.clone(), true)).collect::<Vec<_>>()
    );
}

/// `camsync run` as a child process with its stderr collected.
struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    fn start(f: &Fixture, args: &[&str]) -> Daemon {
        let mut child = Command::new(BIN)
            .arg("run")
            .args(args)
            .env("CAMSYNC_CONFIG", f.config_path())
            .env_remove("CAMSYNC_LOG")
            .env_remove("CAMSYNC_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Daemon { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn wait_log(&self, what: &str) {
        let seen = eventually(DEADLINE, || self.log().contains(what)).await;
        assert!(seen, "{what:?} never logged:\n{}", self.log());
    }

    /// The API's address, from the "HTTP API listening" line (the config binds port 0).
    async fn api(&self) -> String {
        self.wait_log("HTTP API listening").await;
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("HTTP API listening"))
            .unwrap();
        let at = line.find("127.0.0.1:").unwrap();
        let addr: String = line[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        format!("http://{addr}")
    }

    fn signal(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL: no shutdown, nothing finished.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the process to exit; its exit code.
    async fn exit(mut self) -> (Option<i32>, String) {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the pipe.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return (status.code(), self.log());
            }
            if tokio::time::Instant::now() >= until {
                let _ = self.child.kill();
                panic!("still running:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn api_config(f: &Fixture) {
    std::fs::write(f.path("hook.key"), HOOK_KEY).unwrap();
    f.write_config("api:\n  listen: 127.0.0.1:0\n  webhook_secret_file: hook.key\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_daemon_after_the_write_in_flight_and_a_second_one_at_once() {
    let f = Fixture::with(Go2rtcSimOptions {
        write_hold: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    write(&f, &cameras(30));
    api_config(&f);
    for signals in [1, 2] {
        let daemon = Daemon::start(&f, &[]);
        let writes = f.go2rtc.write_count();
        assert!(eventually(DEADLINE, || f.go2rtc.write_count() > writes).await);
        daemon.signal();
        daemon.wait_log("shutting down").await;
        if signals == 2 {
            daemon.signal();
        }
        let (code, log) = daemon.exit().await;
        if signals == 1 {
            assert_eq!(code, Some(0), "{log}");
            assert!(log.contains("camsync stopped"), "{log}");
            assert_eq!(
                f.go2rtc.write_count(),
                writes + 1,
                "the write in flight finished, no other began"
            );
        } else {
            assert_eq!(code, Some(130), "{log}");
            assert!(!log.contains("camsync stopped"), "{log}");
        }
    }
}

/// Drives every route of a running daemon, making `change` to the inventory once it listens
/// to events; returns everything it answered.
async fn drive_the_api(base: &str, change: impl FnOnce()) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let mut seen = String::new();
    let mut events = http.get(format!("{base}/v1/events")).send().await.unwrap();
    change();
    let webhook = |body: &'static str| {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        http.post(format!("{base}/v1/webhook/camera-changed"))
            .header(TIMESTAMP_HEADER, &ts)
            .header(SIGNATURE_HEADER, sign(HOOK_KEY, &ts, body.as_bytes()))
            .body(body)
    };
    let mut answers = vec![
        webhook(r#"{"name": "front"}"#).send().await.unwrap(),
        webhook(r#"{"name": "nope"}"#).send().await.unwrap(),
        webhook(r#"{"name": "#).send().await.unwrap(),
        http.post(format!("{base}/v1/webhook/camera-changed"))
            .body("{}")
            .send()
            .await
            .unwrap(),
        http.post(format!("{base}/v1/sync")).send().await.unwrap(),
    ];
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/openapi.json",
        "/v1/plan",
        "/v1/cameras",
        "/v1/cameras/front",
        "/v1/cameras/inline",
        "/v1/cameras/porch",
        "/v1/syncs/1",
        "/v1/syncs/2",
    ] {
        answers.push(http.get(format!("{base}{path}")).send().await.unwrap());
    }
    for path in [
        "/v1/cameras/front/reconnect",
        "/v1/cameras/inline/reconnect",
        "/v1/cameras/nested/reconnect?target=go2rtc",
    ] {
        answers.push(http.post(format!("{base}{path}")).send().await.unwrap());
    }
    for answer in answers {
        seen.push_str(&format!("{} ", answer.status()));
        seen.push_str(&answer.text().await.unwrap());
        seen.push('\n');
    }
    // The events of all that, up to the reconnect of the last camera.
    let until = tokio::time::Instant::now() + DEADLINE;
    while !seen.contains(r#""type":"reconnect","camera":"nested""#) {
        assert!(tokio::time::Instant::now() < until, "events:\n{seen}");
        match tokio::time::timeout(DEADLINE, events.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the event stream ended: {other:?}\n{seen}"),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_appears_nowhere_in_the_api_the_events_the_metrics_or_the_logs() {
    // go2rtc cannot save its file: writes come back "partial" with the server's own words.
    let f = Fixture::with(Go2rtcSimOptions {
        config_writable: false,
        ..Default::default()
    })
    .await;
    // A Nest camera whose streams last seconds: tokens come and go while the test runs.
    let nest = NestSim::start(NestSimOptions {
        stream_lifetime: Duration::from_secs(3),
        commands_per_minute: 600,
        ..NestSimOptions::default()
    })
    .await
    .unwrap();
    let sim = NestSimOptions::default();
    std::fs::write(f.path("hook.key"), HOOK_KEY).unwrap();
    std::fs::write(f.path("nest.secret"), &sim.client_secret).unwrap();
    std::fs::write(f.path("nest.token"), &sim.refresh_token).unwrap();
    f.write_config(&format!(
        "api:\n  listen: 127.0.0.1:0\n  webhook_secret_file: hook.key\n\
         nest_accounts:\n  - name: home\n    project_id: {}\n    client_id: {}\n    \
         client_secret_file: nest.secret\n    refresh_token_file: nest.token\n    \
         max_per_minute: 600\n    renew_before: 2s\n    sdm_url: {}\n    token_url: {}\n",
        sim.project,
        sim.client_id,
        nest.sdm_url(),
        nest.token_url()
    ));
    // Every secret of the Nest camera: the account's, and those Google hands out (the
    // simulator's access, stream and extension tokens carry these markers).
    let no_nest_secret = |text: &str| {
        for secret in [
            sim.client_secret.as_str(),
            sim.refresh_token.as_str(),
            "ya29.sim-access",
            "sim-stream-",
            "sim-extension-",
        ] {
            assert!(!text.contains(secret), "{secret} leaked into:\n{text}");
        }
    };
    let cameras = |path: &str| {
        format!(
            "{}  - name: inline\n    url: rtsp://admin:{PASSWORD}@192.0.2.30/{path}\n\
             \x20 - name: nested\n    url: ffmpeg:rtsp://admin:{PASSWORD}@192.0.2.31/y#video=copy\n\
             \x20 - name: broken\n    url: rtsp://admin:{PASSWORD}@192.0.2.32/z\n    password: also\n\
             \x20 - name: porch\n    nest:\n      account: home\n      device: cam-1\n",
            inventory(&[("front", "rtsp://192.0.2.10/a")])
        )
    };
    for format in ["json", "text"] {
        std::fs::write(f.path("cameras.yaml"), cameras("before")).unwrap();
        let daemon = Daemon::start(&f, &["--log", "trace", "--log-format", format]);
        let base = daemon.api().await;
        daemon.wait_log("sync done").await;
        let porch = || f.go2rtc.stream_sources("porch").is_some();
        assert!(eventually(DEADLINE, porch).await, "{}", daemon.log());
        let answers = drive_the_api(&base, || {
            std::fs::write(f.path("cameras.yaml"), cameras("after")).unwrap();
        })
        .await;
        assert!(answers.contains("camsync_syncs_total"), "{answers}");
        assert!(answers.contains(r#""type":"sync_action""#), "{answers}");
        assert!(
            answers.contains("\"broken\""),
            "the rejected camera is reported"
        );
        assert!(answers.contains("admin:***@192.0.2.30"), "{answers}");
        assert!(
            answers.contains(&format!("\"{}/***\"", nest.rtsp_url())),
            "the resolved stream shows its host alone: {answers}"
        );
        assert!(!answers.contains("/sdm/cam-1"), "{answers}");
        assert_no_secret(&answers);
        no_nest_secret(&answers);

        for output in [
            &["status", "--api", &base][..],
            &["status", "--api", &base, "--output", "json"],
        ] {
            let out = Command::new(BIN)
                .args(output)
                .args(["--log", "trace", "--log-format", format])
                .env("CAMSYNC_CONFIG", f.config_path())
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(text.contains("front"), "{text}");
            assert_no_secret(&text);
            no_nest_secret(&text);
        }

        daemon.signal();
        let (code, log) = daemon.exit().await;
        assert_eq!(code, Some(0), "{log}");
        if format == "json" {
            for line in log.lines() {
                let entry: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
                assert!(entry["level"].is_string(), "{line}");
            }
            assert!(log.contains(r#""span":{"#), "spans are in the JSON lines");
        } else {
            assert!(log.contains(" INFO "), "{log}");
        }
        assert!(log.contains("HTTP API listening") && log.contains("reconnect"));
        assert_no_secret(&log);
        no_nest_secret(&log);
    }
}

/// A reconnect deletes and re-adds a stream; a camsync killed between the two comes back,
/// re-adds it, and still knows it as its own (the ledger's intent covers recoveries too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_killed_mid_write_leaves_no_orphan_and_no_duplicate() {
    let f = Fixture::with(Go2rtcSimOptions {
        write_hold: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    f.go2rtc
        .add_stream_by_hand("users_own", &["rtsp://192.0.2.99/own"]);
    let all = cameras(3);
    write(&f, &all);
    api_config(&f);
    let everything = || sorted(&["cam00", "cam01", "cam02", "users_own"]);
    let confirmed = |f: &Fixture| owned(f).len() == 3 && owned(f).iter().all(|(_, c)| *c);

    let daemon = Daemon::start(&f, &[]);
    let base = daemon.api().await;
    assert!(eventually(DEADLINE, || f.names() == everything() && confirmed(&f)).await);
    let writes = f.go2rtc.write_count();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reconnect = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{base}/v1/cameras/cam01/reconnect"))
            .send(),
    );
    assert!(eventually(DEADLINE, || f.go2rtc.write_count() > writes).await);
    daemon.kill(); // mid-way: the delete is being held by go2rtc
    let _ = reconnect.await;

    let daemon = Daemon::start(&f, &[]);
    assert!(
        eventually(DEADLINE, || f.names() == everything() && confirmed(&f)).await,
        "{:?} {:?}\n{}",
        f.names(),
        owned(&f),
        daemon.log()
    );
    assert_eq!(
        f.go2rtc.stream_sources("cam01").map(|s| s.len()),
        Some(1),
        "one source, not two"
    );
    // camsync still owns cam01: taken out of the inventory, it is deleted; the user's stays.
    write(&f, &[all[0].clone(), all[2].clone()]);
    assert!(
        eventually(DEADLINE, || f.names()
            == sorted(&["cam00", "cam02", "users_own"]))
        .await,
        "{:?}",
        f.names()
    );
    assert_eq!(f.go2rtc.crashed(), None);
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_one_ledger_refuses_to_start_and_read_only_commands_still_work() {
    let f = Fixture::new().await;
    write(&f, &cameras(3));
    api_config(&f);
    let first = Daemon::start(&f, &[]);
    first.api().await;
    let pid = first.child.id();

    let second = Daemon::start(&f, &[]);
    let (code, log) = second.exit().await;
    assert_eq!(code, Some(2), "{log}");
    let ledger = f.config().state.display().to_string();
    assert!(
        log.contains(&ledger) && log.contains(&format!("pid {pid}")),
        "the error names the ledger and the daemon holding it:\n{log}"
    );
    assert!(!log.contains("HTTP API listening"), "{log}");

    let command = |name: &str| {
        Command::new(BIN)
            .arg(name)
            .env("CAMSYNC_CONFIG", f.config_path())
            .env_remove("CAMSYNC_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for name in ["plan", "check"] {
        let out = command(name);
        assert!(
            out.status.success(),
            "{name} while a daemon runs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A one-shot sync writes too: refused beside the daemon, pointing at POST /v1/sync.
    let writes = f.go2rtc.write_count();
    let out = command("sync");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!("pid {pid}")) && said.contains("POST /v1/sync"),
        "{said}"
    );
    assert_eq!(f.go2rtc.write_count(), writes);

    first.signal();
    let (code, log) = first.exit().await;
    assert_eq!(code, Some(0), "{log}");
    // Once the first has stopped, a daemon starts again on the same ledger.
    let again = Daemon::start(&f, &[]);
    again.api().await;
    again.signal();
    assert_eq!(again.exit().await.0, Some(0));
}

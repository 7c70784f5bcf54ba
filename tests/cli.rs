//! The `camsync` binary against the go2rtc simulator: exit codes, JSON documents, secrets, and a
//! kill -9 in the middle of a sync.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use camsync_sim::go2rtc::Go2rtcSimOptions;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_camsync");

/// Runs the binary off the async runtime, so the simulator keeps serving meanwhile.
async fn camsync(f: &Fixture, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("CAMSYNC_CONFIG", f.config_path())
        .env_remove("CAMSYNC_LOG")
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(output)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_prints_a_summary_and_never_the_password_even_when_tracing() {
    let f = Fixture::new().await;
    f.write_cameras(&[
        ("front", "rtsp://192.0.2.10/a"),
        ("garage", "rtsp://192.0.2.11/b"),
    ]);
    let out = camsync(&f, &["sync", "--log", "trace"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("target go2rtc: converged"),
        "{}",
        text(&out)
    );
    assert_no_secret(&text(&out));

    let out = camsync(&f, &["sync", "--output", "json", "--log", "trace"]).await;
    assert!(out.status.success());
    assert_no_secret(&text(&out));
    let doc = json(&out);
    assert_eq!(doc["applied"], true);
    assert_eq!(doc["targets"][0]["status"], "converged");
    assert_eq!(doc["targets"][0]["counts"]["unchanged"], 2);
    // The password did reach the server, where it belongs.
    assert_eq!(
        f.go2rtc.stream_sources("front"),
        Some(vec![with_credentials("rtsp://192.0.2.10/a")])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_the_diff_as_json_and_writes_nothing() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    let out = camsync(&f, &["plan", "--output", "json"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let doc = json(&out);
    assert_eq!(doc["applied"], false);
    assert_eq!(doc["targets"][0]["steps"][0]["action"], "create");
    assert_eq!(doc["targets"][0]["steps"][0]["stream"], "front");
    assert_eq!(f.go2rtc.write_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_lists_every_problem_and_sets_the_exit_code() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    let out = camsync(&f, &["check"]).await;
    assert!(out.status.success(), "{}", text(&out));

    std::fs::write(
        f.path("cameras.yaml"),
        "cameras:\n  - name: all\n    url: rtsp://192.0.2.1/x\n  - name: ok\n    url: rtsp://192.0.2.1/y\n  - name: ok\n    url: rtsp://192.0.2.1/z\n",
    )
    .unwrap();
    let out = camsync(&f, &["check", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc = json(&out);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["cameras"], 1);
    let rejected = doc["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert!(
        rejected[0]["location"]
            .as_str()
            .unwrap()
            .ends_with("cameras.yaml:2")
    );
    assert!(
        rejected[1]["reason"]
            .as_str()
            .unwrap()
            .contains("duplicate")
    );

    f.write_config("resynk: 5s\n");
    let out = camsync(&f, &["check"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("camsync.yaml") && text(&out).contains("resynk"),
        "{}",
        text(&out)
    );
    let out = camsync(&f, &["sync"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(f.go2rtc.write_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_sets_a_failing_exit_code_until_overridden() {
    let f = Fixture::new().await;
    f.write_cameras(&[("a", "rtsp://192.0.2.1/a"), ("b", "rtsp://192.0.2.2/b")]);
    assert!(camsync(&f, &["sync"]).await.status.success());
    f.write_cameras(&[]);
    let out = camsync(&f, &["sync"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("--allow-mass-delete"), "{}", text(&out));
    assert_eq!(f.names().len(), 2);
    let out = camsync(&f, &["sync", "--allow-mass-delete"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(f.names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_midway_converges_next_time_with_no_orphan() {
    let f = Fixture::with(Go2rtcSimOptions {
        write_hold: Duration::from_millis(25),
        ..Go2rtcSimOptions::default()
    })
    .await;
    f.go2rtc
        .add_stream_by_hand("users_own", &["rtsp://192.0.2.99/own"]);
    let cams: Vec<(String, String)> = (0..40)
        .map(|i| (format!("cam{i:02}"), format!("rtsp://192.0.2.{i}/s")))
        .collect();
    let pairs: Vec<(&str, &str)> = cams.iter().map(|(n, u)| (n.as_str(), u.as_str())).collect();
    f.write_cameras(&pairs);

    let mut child = Command::new(BIN)
        .arg("sync")
        .env("CAMSYNC_CONFIG", f.config_path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(20), || f.go2rtc.write_count() >= 5).await);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let created = f.names().len() - 1;
    assert!(
        created < 40,
        "the kill must land mid-sync (created {created})"
    );

    let out = camsync(&f, &["sync"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let mut expected: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
    expected.push("users_own");
    assert_eq!(f.names(), sorted(&expected));

    // Every stream camsync made, before or after the kill, is known as its own.
    f.write_cameras(&[]);
    let out = camsync(&f, &["sync", "--allow-mass-delete"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(f.names(), ["users_own"]);
    assert_eq!(f.go2rtc.crashed(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_and_hides_its_password() {
    let out = tokio::task::spawn_blocking(|| {
        Command::new(BIN)
            .arg("demo")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("\"doorbell_by_hand\" is untouched on both"),
        "{all}"
    );
    assert!(
        all.contains("write calls seen: go2rtc 0, MediaMTX 0"),
        "{all}"
    );
    assert!(!all.contains("demo-secret-not-shown"), "{all}");
    assert!(
        all.contains("camera-offline → recovering: the camera answers again"),
        "{all}"
    );
    assert!(all.contains("front_door healthy on both servers"), "{all}");
    // The Nest camera: generated, extended without a write, generated anew; no token shown.
    assert!(
        all.contains("sync: porch go2rtc create, mediamtx create"),
        "{all}"
    );
    assert!(
        all.contains("the servers keep playing the stream they have:\n   sync: porch unchanged; write calls seen: go2rtc 0, MediaMTX 0"),
        "{all}"
    );
    assert!(
        all.contains("sync: porch go2rtc update, mediamtx update"),
        "{all}"
    );
    let plays: Vec<&str> = all.lines().filter(|l| l.contains("porch plays")).collect();
    assert_eq!(plays.len(), 2, "{all}");
    for line in plays {
        assert!(
            line.contains("porch plays rtsp://127.0.0.1:") && line.ends_with("/***"),
            "a resolved stream shows its host alone: {line}"
        );
        assert!(!line.contains("/sdm/"), "{line}");
    }
    for token in [
        "sim-stream-",
        "sim-extension-",
        "ya29.",
        "sim-client-secret",
    ] {
        assert!(!all.contains(token), "{token} shown: {all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader, Read};
    let f = Fixture::new().await;
    let names: Vec<String> = (0..3000).map(|i| format!("cam{i}")).collect();
    let cameras: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), "rtsp://192.0.2.1/x"))
        .collect();
    f.write_cameras(&cameras);
    let config = f.config_path();
    // `camsync plan | head -1`: the plan is far larger than a pipe holds.
    let (status, first, stderr) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .arg("plan")
            .env("CAMSYNC_CONFIG", config)
            .env_remove("CAMSYNC_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (child.wait().unwrap(), first, stderr)
    })
    .await
    .unwrap();
    assert!(first.contains("target go2rtc"), "{first}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// Runs the binary with `config`, killed if it has not ended within 10 s (`None`).
async fn camsync_within(config: std::path::PathBuf, args: &[&str]) -> Option<Output> {
    let mut child = Command::new(BIN)
        .args(args)
        .env("CAMSYNC_CONFIG", config)
        .env_remove("CAMSYNC_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if tokio::time::Instant::now() > until {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Some(child.wait_with_output().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_fifo_or_directory_named_as_a_file_is_refused_at_once() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);

    let out = camsync_within("/dev/zero".into(), &["check"])
        .await
        .expect("a config that is /dev/zero is refused at once");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("/dev/zero") && text(&out).contains("a device"),
        "{}",
        text(&out)
    );

    // The camera's password_file is /dev/zero: the camera is rejected, naming the file.
    std::fs::remove_file(f.path("cam.password")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", f.path("cam.password")).unwrap();
    let out = camsync_within(f.config_path(), &["check"])
        .await
        .expect("a password_file that is /dev/zero is refused at once");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("cam.password") && text(&out).contains("a device"),
        "{}",
        text(&out)
    );

    // The inventory is a FIFO nobody writes to.
    std::fs::remove_file(f.path("cameras.yaml")).unwrap();
    let made = Command::new("mkfifo")
        .arg(f.path("cameras.yaml"))
        .status()
        .unwrap();
    assert!(made.success());
    let out = camsync_within(f.config_path(), &["check"])
        .await
        .expect("an inventory that is a FIFO is refused at once");
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("cameras.yaml") && text(&out).contains("named pipe"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_echoed_in_reports_are_escaped_and_cut() {
    let f = Fixture::new().await;
    let huge = "n".repeat(50 * 1024 * 1024);
    // A value the parser itself quotes in its error ("invalid type: string …").
    let long = "e".repeat(100_000);
    std::fs::write(
        f.path("cameras.yaml"),
        format!(
            "cameras:\n  - name: c1\n    url: \"rtsp://192.0.2.1/x\\r\\nX-Injected: 1\"\n  - name: \"c2\\e[31mred\"\n    url: rtsp://192.0.2.1/y\n  - name: c3\n    url: \"rtsp://192.0.2.1/{huge} z\"\n  - name: c4\n    url: rtsp://192.0.2.1/c4\n    enabled: \"{long}\\r\\nX-Injected: 2\"\n  - name: ok\n    url: rtsp://192.0.2.1/ok\n"
        ),
    )
    .unwrap();
    drop(huge);
    for command in ["check", "plan"] {
        let out = camsync(&f, &[command]).await;
        let all = text(&out);
        assert!(
            all.len() < 10_000,
            "{command}: {} bytes of output",
            all.len()
        );
        assert!(
            !all.contains('\r') && !all.contains('\u{1b}'),
            "{command}: {all:?}"
        );
        assert!(
            !all.lines().any(|l| l.starts_with("X-Injected")),
            "{command}: a forged line: {all}"
        );
        assert!(all.contains(r"\r\nX-Injected: 1"), "{command}: {all}");
        assert!(all.contains("… (52428819 bytes)"), "{command}: {all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_over_max_cameras_is_refused_and_nothing_is_deleted() {
    let f = Fixture::new().await;
    f.write_cameras(&[("a", "rtsp://192.0.2.1/a"), ("b", "rtsp://192.0.2.1/b")]);
    let out = camsync(&f, &["sync"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(f.go2rtc.stream_sources("a").is_some());

    f.write_config("max_cameras: 3\n");
    let others: Vec<(String, String)> = (0..4)
        .map(|i| (format!("n{i}"), format!("rtsp://192.0.2.2/{i}")))
        .collect();
    let others: Vec<(&str, &str)> = others
        .iter()
        .map(|(n, u)| (n.as_str(), u.as_str()))
        .collect();
    f.write_cameras(&others);
    let writes = f.go2rtc.write_count();
    for command in ["check", "sync"] {
        let out = camsync(&f, &[command]).await;
        assert_ne!(out.status.code(), Some(0), "{}", text(&out));
        let all = text(&out);
        assert!(
            all.contains("4 cameras")
                && all.contains("`max_cameras` (3)")
                && all.contains("camsync.yaml"),
            "{command}: {all}"
        );
    }
    assert_eq!(
        f.go2rtc.write_count(),
        writes,
        "nothing written, nothing deleted"
    );
    assert!(f.go2rtc.stream_sources("a").is_some() && f.go2rtc.stream_sources("b").is_some());

    f.write_config("max_cameras: 4\n");
    let out = camsync(&f, &["check"]).await;
    assert!(out.status.success(), "at the limit is fine: {}", text(&out));
}

//! camsync against the MediaMTX simulator (beside go2rtc): paging, writing only what changed,
//! lifecycle profiles, restarts, ownership.

mod common;

use std::time::Duration;

use camsync::daemon::{Progress, run_with_progress};
use camsync::reconcile::report::Convergence;
use camsync_sim::camera::SimCamera;
use camsync_sim::mediamtx::MediamtxSimOptions;
use common::*;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fn cameras_yaml(entries: &[(&str, &str, &str)]) -> String {
    let mut text = String::from("cameras:\n");
    for (name, url, extra) in entries {
        text.push_str(&format!("  - name: {name}\n    url: {url}\n{extra}"));
    }
    text
}

fn write(f: &Fixture, entries: &[(&str, &str, &str)]) {
    std::fs::write(f.path("cameras.yaml"), cameras_yaml(entries)).unwrap();
}

/// The target report for MediaMTX.
fn mtx_report(
    report: &camsync::reconcile::report::SyncReport,
) -> &camsync::reconcile::report::TargetReport {
    report
        .targets
        .iter()
        .find(|t| t.target == "mediamtx")
        .unwrap()
}

#[tokio::test]
async fn paths_are_created_listed_across_pages_and_left_alone_when_unchanged() {
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    let cams: Vec<(String, String)> = (0..1050)
        .map(|i| {
            (
                format!("cam{i:04}"),
                format!("rtsp://192.0.2.{}/s{i}", i % 250 + 1),
            )
        })
        .collect();
    let entries: Vec<(&str, &str, &str)> = cams
        .iter()
        .map(|(n, u)| (n.as_str(), u.as_str(), "    targets: [mediamtx]\n"))
        .collect();
    write(&f, &entries);
    let report = f.sync().await;
    assert!(report.ok(), "{}", report.render_text());
    assert_eq!(f.mtx().path_names().len(), 1050);
    assert_eq!(
        f.mtx().request_count(),
        1 + 1050,
        "one list of the empty server, then one add per new path"
    );
    let config = f.mtx().path_config("cam0007").unwrap();
    assert_eq!(config["source"], "rtsp://192.0.2.8/s7");
    assert_eq!(config["rtspTransport"], "tcp");

    // 1,050 paths span two pages of camsync's listing: nothing may look missing.
    let writes = f.mtx().write_count();
    let report = f.sync().await;
    assert_eq!(
        mtx_report(&report).counts.unchanged,
        1050,
        "{}",
        report.render_text()
    );
    assert_eq!(f.mtx().write_count(), writes);
    assert_eq!(
        f.mtx().overlapping_writes(),
        0,
        "writes to one MediaMTX go one at a time"
    );
}

#[tokio::test]
async fn a_record_only_change_keeps_readers_and_a_source_change_replaces() {
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    let rec = "    profile: recording\n    targets: [mediamtx]\n";
    write(
        &f,
        &[
            ("door", "rtsp://192.0.2.1/a", rec),
            ("yard", "rtsp://192.0.2.2/b", rec),
        ],
    );
    assert!(f.sync().await.ok());
    assert!(f.mtx().add_reader("door") && f.mtx().add_reader("yard"));

    // Unchanged: zero writes, zero dropped readers.
    let writes = f.mtx().write_count();
    assert!(f.sync().await.ok());
    assert_eq!(
        (f.mtx().write_count(), f.mtx().reader_disconnects()),
        (writes, 0)
    );

    // A record setting only: written in place (patch), readers stay.
    let rec_7d = "    profile: recording\n    targets: [mediamtx]\n    mediamtx:\n      recordDeleteAfter: 7d\n";
    write(
        &f,
        &[
            ("door", "rtsp://192.0.2.1/a", rec_7d),
            ("yard", "rtsp://192.0.2.2/b", rec),
        ],
    );
    let report = f.sync().await;
    assert_eq!(
        mtx_report(&report).counts.update,
        1,
        "{}",
        report.render_text()
    );
    assert_eq!(
        f.mtx().path_config("door").unwrap()["recordDeleteAfter"],
        "7d"
    );
    assert_eq!(
        f.mtx().reader_disconnects(),
        0,
        "a record-only change must not drop readers"
    );
    assert_eq!(
        f.mtx().write_count(),
        writes + 1,
        "one write for one changed camera"
    );

    // A source change: the path is replaced; only its own readers drop.
    write(
        &f,
        &[
            ("door", "rtsp://192.0.2.9/new", rec_7d),
            ("yard", "rtsp://192.0.2.2/b", rec),
        ],
    );
    assert!(f.sync().await.ok());
    assert_eq!(
        f.mtx().path_config("door").unwrap()["source"],
        "rtsp://192.0.2.9/new"
    );
    assert_eq!(f.mtx().reader_disconnects(), 1);
    assert_eq!(f.mtx().readers("yard"), 1, "other paths keep their readers");
}

#[tokio::test]
async fn each_profile_produces_its_documented_fields_on_both_servers() {
    let camera = SimCamera::start().await.unwrap();
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    let url = camera.url("s");
    write(
        &f,
        &[
            ("rec", &url, "    profile: recording\n"),
            ("view", &url, ""),
            ("snap", &url, "    profile: snapshot\n"),
        ],
    );
    let report = f.sync().await;
    assert!(report.ok(), "{}", report.render_text());
    let field = |path: &str, key: &str| f.mtx().path_config(path).unwrap()[key].clone();
    let secs = |v: serde_json::Value| {
        humantime::parse_duration(v.as_str().unwrap())
            .unwrap()
            .as_secs()
    };

    assert_eq!(field("rec", "sourceOnDemand"), json!(false));
    assert_eq!(field("rec", "record"), json!(true));
    assert_eq!(secs(field("rec", "recordSegmentDuration")), 1800);
    assert_eq!(field("view", "sourceOnDemand"), json!(true));
    assert_eq!(secs(field("view", "sourceOnDemandStartTimeout")), 10);
    assert_eq!(secs(field("view", "sourceOnDemandCloseAfter")), 300);
    assert_eq!(field("view", "record"), json!(false));
    assert_eq!(secs(field("snap", "sourceOnDemandStartTimeout")), 5);
    assert_eq!(secs(field("snap", "sourceOnDemandCloseAfter")), 60);
    for path in ["rec", "view", "snap"] {
        assert_eq!(field(path, "rtspTransport"), json!("tcp"), "{path}");
    }
    assert_eq!(
        f.go2rtc.preloads(),
        ["rec"],
        "go2rtc keeps only the recording stream connected"
    );
}

#[tokio::test]
async fn bad_raw_fields_are_rejected_by_name_before_mediamtx_sees_them() {
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    write(
        &f,
        &[
            ("good", "rtsp://192.0.2.1/a", ""),
            (
                "typo",
                "rtsp://192.0.2.2/b",
                "    mediamtx:\n      recordPaht: x\n",
            ),
            ("ffmpeg_only", "ffmpeg:rtsp://192.0.2.3/c", ""),
        ],
    );
    let report = f.sync().await;
    let rejected: Vec<(&str, &str)> = report
        .rejected
        .iter()
        .map(|r| (r.camera.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(
        rejected[0].0 == "typo" && rejected[0].1.contains("recordPaht"),
        "{rejected:?}"
    );
    assert!(
        rejected[1].0 == "ffmpeg_only" && rejected[1].1.contains("mediamtx"),
        "{rejected:?}"
    );
    assert_eq!(f.mtx().path_names(), ["good"]);
}

#[tokio::test]
async fn hand_made_paths_survive_and_the_guard_applies_per_target() {
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    f.mtx()
        .add_path_by_hand("users_own", json!({"source": "rtsp://192.0.2.99/own"}));
    write(
        &f,
        &[
            ("a", "rtsp://192.0.2.1/a", ""),
            ("b", "rtsp://192.0.2.2/b", ""),
            ("c", "rtsp://192.0.2.3/c", ""),
        ],
    );
    assert!(f.sync().await.ok());
    write(
        &f,
        &[("a", "rtsp://192.0.2.1/a", "    targets: [go2rtc]\n")],
    );
    let report = f.sync().await;
    assert_eq!(
        mtx_report(&report).status,
        Convergence::Refused,
        "{}",
        report.render_text()
    );
    assert_eq!(f.mtx().path_names(), sorted(&["a", "b", "c", "users_own"]));
    write(
        &f,
        &[
            ("a", "rtsp://192.0.2.1/a", ""),
            ("b", "rtsp://192.0.2.2/b", ""),
        ],
    );
    assert!(f.sync().await.ok());
    assert_eq!(f.mtx().path_names(), sorted(&["a", "b", "users_own"]));
}

#[tokio::test]
async fn a_mediamtx_restart_or_reload_is_healed_without_waiting_for_the_resync() {
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    f.write_config_with_resync("1h", "restart_check: 100ms\n");
    write(
        &f,
        &[
            ("a", "rtsp://192.0.2.1/a", ""),
            ("b", "rtsp://192.0.2.2/b", ""),
        ],
    );
    let (tx, mut status) = watch::channel(Progress::default());
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(run_with_progress(f.config(), shutdown.clone(), tx));
    let deadline = Duration::from_secs(10);
    let first = tokio::time::timeout(deadline, status.wait_for(|s| s.syncs >= 1))
        .await
        .map(|r| r.is_ok());
    assert_eq!(first, Ok(true));
    assert_eq!(f.mtx().path_names(), ["a", "b"]);

    f.mtx().restart().await;
    assert!(
        f.mtx().path_names().is_empty(),
        "MediaMTX forgets API paths when it restarts"
    );
    let noticed = tokio::time::timeout(deadline, status.wait_for(|s| s.restarts_seen >= 1))
        .await
        .map(|r| r.is_ok());
    assert_eq!(noticed, Ok(true), "{:?}", *status.borrow());
    assert!(
        eventually(deadline, || f.mtx().path_names() == ["a", "b"]).await,
        "healed long before the 1 h resync: {:?}",
        f.mtx().path_names()
    );
    shutdown.cancel();
    assert!(matches!(
        tokio::time::timeout(deadline, daemon).await,
        Ok(Ok(Ok(())))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_each_path_through_the_servers_proxies() {
    use camsync::health::check::{self, CheckedTarget, Verdict};
    let up = SimCamera::start().await.unwrap();
    let down = SimCamera::start().await.unwrap();
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    let fast = "    mediamtx:\n      sourceOnDemandStartTimeout: 500ms\n";
    write(
        &f,
        &[("live", &up.url("s"), fast), ("dark", &down.url("s"), fast)],
    );
    assert!(f.sync().await.ok());
    down.stop().await;
    let config = f.config();
    let inventory = camsync::app::load_inventory(&config).await.unwrap();
    let targets = CheckedTarget::from_config(&config).unwrap();
    let cameras: Vec<_> = inventory.cameras.values().map(|c| &**c).collect();
    let checks = check::check(&targets, &cameras, Duration::from_secs(5)).await;
    let verdict = |camera: &str, target: &str| {
        checks
            .iter()
            .find(|c| c.camera == camera && c.target == target)
            .map(|c| c.verdict)
            .unwrap()
    };
    assert_eq!(verdict("live", "go2rtc"), Verdict::Ok, "{checks:#?}");
    assert_eq!(verdict("live", "mediamtx"), Verdict::Ok, "{checks:#?}");
    assert_eq!(verdict("dark", "go2rtc"), Verdict::NotServed);
    assert_eq!(verdict("dark", "mediamtx"), Verdict::NotServed);
    let ok = checks
        .iter()
        .find(|c| c.camera == "live" && c.target == "go2rtc")
        .unwrap();
    assert_eq!(ok.rtsp_status, Some(200));
    assert!(ok.latency_ms.is_some());
    assert!(check::render_text(&checks).contains("live"));

    // A restarted MediaMTX lists nothing camsync added: not listed, and not probed.
    f.mtx().restart().await;
    let checks = check::check(&targets, &cameras, Duration::from_secs(5)).await;
    let lost = checks
        .iter()
        .find(|c| c.camera == "live" && c.target == "mediamtx")
        .unwrap();
    assert_eq!((lost.verdict, lost.rtsp_status), (Verdict::NotListed, None));
}

//! `camsync run` in-process: the inventory file is watched and every kind of edit is handled.

mod common;

use std::time::Duration;

use common::daemon::{DEADLINE, start};
use common::*;

#[tokio::test]
async fn file_edits_are_followed_and_broken_edits_delete_nothing() {
    let f = Fixture::new().await;
    f.write_cameras(&[("a", "rtsp://192.0.2.1/a"), ("b", "rtsp://192.0.2.2/b")]);
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1).await;
    assert_eq!(f.names(), sorted(&["a", "b"]));

    // A plain in-place edit.
    f.write_cameras(&[
        ("a", "rtsp://192.0.2.1/a"),
        ("b", "rtsp://192.0.2.2/b"),
        ("c", "rtsp://192.0.2.3/c"),
    ]);
    assert!(
        eventually(DEADLINE, || f.names().len() == 3).await,
        "{:?}",
        f.names()
    );

    // An edit that breaks the file keeps the last good inventory.
    let writes = f.go2rtc.write_count();
    std::fs::write(
        f.path("cameras.yaml"),
        "cameras:\n  - name: a\n   url: [oops\n",
    )
    .unwrap();
    d.until("the parse error", |s| s.source_errors == 1).await;
    let error = d.progress.borrow().last_source_error.clone().unwrap();
    assert!(
        error.contains("cameras.yaml") && error.contains("line"),
        "{error}"
    );

    // A deleted file too.
    std::fs::remove_file(f.path("cameras.yaml")).unwrap();
    d.until("the missing file", |s| s.source_errors == 2).await;
    assert_eq!(f.names(), sorted(&["a", "b", "c"]));
    assert_eq!(
        f.go2rtc.write_count(),
        writes,
        "nothing may be written while the inventory is broken"
    );

    // An editor-style save: write a temp file, rename it over the original.
    let edited = [
        ("a", "rtsp://192.0.2.1/a"),
        ("b", "rtsp://192.0.2.2/b"),
        ("c", "rtsp://192.0.2.3/c"),
        ("d", "rtsp://192.0.2.4/d"),
    ];
    std::fs::write(f.path(".cameras.yaml.swp"), inventory(&edited)).unwrap();
    std::fs::rename(f.path(".cameras.yaml.swp"), f.path("cameras.yaml")).unwrap();
    assert!(
        eventually(DEADLINE, || f.names().len() == 4).await,
        "{:?}",
        f.names()
    );

    d.shutdown.cancel();
    let stopped = tokio::time::timeout(DEADLINE, d.task).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the daemon stops cleanly on shutdown"
    );
}

/// An editor writing in place leaves the file cut in the middle of an entry for a moment; a
/// typo makes one camera invalid. Neither may take a working stream away.
#[tokio::test]
async fn a_half_saved_file_or_an_invalid_camera_deletes_nothing() {
    let f = Fixture::new().await;
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let urls: Vec<String> = (0..10)
        .map(|i| format!("rtsp://192.0.2.{i}/live"))
        .collect();
    let cameras: Vec<(&str, &str)> = names
        .iter()
        .zip(&urls)
        .map(|(n, u)| (n.as_str(), u.as_str()))
        .collect();
    f.write_cameras(&cameras);
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1).await;
    assert_eq!(f.names(), names);
    let writes = f.go2rtc.write_count();

    // Cut right after "name: c6": six whole cameras and one without a URL.
    let good = inventory(&cameras);
    let cut = good.find("name: c6").unwrap() + "name: c6".len();
    std::fs::write(f.path("cameras.yaml"), &good[..cut]).unwrap();
    d.until("the half-saved file to be synced", |s| {
        s.inventory_loads >= 2 && s.syncs >= 2
    })
    .await;
    assert_eq!(f.names(), names, "a half-saved file deleted streams");
    assert_eq!(f.go2rtc.write_count(), writes, "nothing may be written");

    // One camera's URL made invalid: it keeps its last good version, the others still change.
    let mut edited = cameras.clone();
    edited[3].1 = "rtsp://192.0.2.3/live typo";
    edited[4].1 = "rtsp://192.0.2.44/live";
    f.write_cameras(&edited);
    let moved = common::with_credentials("rtsp://192.0.2.44/live");
    assert!(
        eventually(DEADLINE, || f.go2rtc.stream_sources("c4")
            == Some(vec![moved.clone()]))
        .await,
        "the valid edit is applied: {:?}",
        f.go2rtc.stream_sources("c4")
    );
    assert_eq!(f.names(), names, "an invalid camera was deleted");
    assert_eq!(
        f.go2rtc.stream_sources("c3"),
        Some(vec![common::with_credentials("rtsp://192.0.2.3/live")]),
        "the invalid camera keeps its last good version"
    );
    let status = d.current();
    assert!(status.inventory_loads >= 3, "{status:?}");

    // A camera gone from a whole, valid inventory is deleted.
    f.write_cameras(&cameras[..9]);
    assert!(
        eventually(DEADLINE, || f.names().len() == 9).await,
        "{:?}",
        f.names()
    );
    d.stop().await;
}

#[tokio::test]
async fn a_daemon_started_with_a_broken_inventory_deletes_nothing_until_it_is_fixed() {
    let f = Fixture::new().await;
    f.write_cameras(&[("a", "rtsp://192.0.2.1/a")]);
    f.sync().await;
    std::fs::write(f.path("cameras.yaml"), "").unwrap();
    let d = start(f.config());
    d.until("the empty file error", |s| s.source_errors == 1)
        .await;
    assert_eq!(f.names(), ["a"]);
    f.write_cameras(&[("a", "rtsp://192.0.2.1/a"), ("b", "rtsp://192.0.2.2/b")]);
    d.until("a sync after the fix", |s| s.syncs >= 1 && s.last_sync_ok)
        .await;
    assert_eq!(f.names(), sorted(&["a", "b"]));
    d.shutdown.cancel();
}

#[tokio::test]
async fn the_periodic_resync_heals_a_restarted_go2rtc() {
    let f = Fixture::with(camsync_sim::go2rtc::Go2rtcSimOptions {
        config_writable: false,
        ..Default::default()
    })
    .await;
    f.write_config_with_resync("200ms", "");
    f.write_cameras(&[("a", "rtsp://192.0.2.1/a")]);
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1).await;
    f.go2rtc.restart().await;
    assert!(f.names().is_empty());
    d.until("the periodic resync", |s| s.syncs >= 2).await;
    assert_eq!(f.names(), ["a"]);
    d.shutdown.cancel();
}

#[tokio::test]
async fn a_go2rtc_restart_is_noticed_by_its_canary_long_before_the_resync() {
    let f = Fixture::with(camsync_sim::go2rtc::Go2rtcSimOptions {
        config_writable: false,
        ..Default::default()
    })
    .await;
    f.write_config_with_resync("1h", "restart_check: 100ms\n");
    f.write_cameras(&[("a", "rtsp://192.0.2.1/a"), ("b", "rtsp://192.0.2.2/b")]);
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1).await;
    f.go2rtc.restart().await;
    d.until("the restart to be noticed", |s| s.restarts_seen >= 1)
        .await;
    assert!(
        eventually(DEADLINE, || f.names() == sorted(&["a", "b"])).await,
        "healed long before the resync: {:?}",
        f.names()
    );
    d.shutdown.cancel();
}

#[tokio::test]
async fn reading_the_inventory_is_not_taken_for_a_change() {
    let f = Fixture::new().await;
    f.write_cameras(&[("a", "rtsp://192.0.2.1/a")]);
    let mut d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1).await;
    f.write_cameras(&[("a", "rtsp://192.0.2.1/a"), ("b", "rtsp://192.0.2.2/b")]);
    d.until("the edit", |s| s.inventory_loads >= 2).await;
    // Each load opens and reads the file; that must not trigger another load. Several debounce
    // periods (200 ms) pass without one.
    let reloaded = tokio::time::timeout(
        Duration::from_secs(1),
        d.progress.wait_for(|s| s.inventory_loads > 2),
    )
    .await
    .is_ok();
    assert!(!reloaded, "{:?}", *d.progress.borrow());
    d.shutdown.cancel();
    assert!(matches!(d.task.await, Ok(Ok(()))));
}

/// Each target has its own worker: a go2rtc that takes a second per write works through its
/// queue while MediaMTX gets every change at once.
#[tokio::test]
async fn a_slow_target_does_not_delay_a_healthy_one() {
    let f = Fixture::build(
        camsync_sim::go2rtc::Go2rtcSimOptions {
            write_hold: Duration::from_secs(1),
            ..Default::default()
        },
        Some(camsync_sim::mediamtx::MediamtxSimOptions::default()),
    )
    .await;
    let mut cameras = vec![
        ("a", "rtsp://192.0.2.1/a"),
        ("b", "rtsp://192.0.2.2/b"),
        ("c", "rtsp://192.0.2.3/c"),
        ("d", "rtsp://192.0.2.4/d"),
    ];
    f.write_cameras(&cameras);
    let d = start(f.config());
    assert!(
        eventually(DEADLINE, || f.mtx().path_names().len() == 4).await,
        "{:?}",
        f.mtx().path_names()
    );
    assert!(
        f.names().len() < 4,
        "go2rtc is still writing: {:?}",
        f.names()
    );

    cameras.push(("e", "rtsp://192.0.2.5/e"));
    f.write_cameras(&cameras);
    assert!(
        eventually(DEADLINE, || f.mtx().path_names().len() == 5).await,
        "{:?}",
        f.mtx().path_names()
    );
    assert!(
        !f.names().contains(&"e".to_string()),
        "the change reached MediaMTX while go2rtc still works through its queue: {:?}",
        f.names()
    );
    assert!(
        eventually(DEADLINE, || f.names() == sorted(&["a", "b", "c", "d", "e"])).await,
        "{:?}",
        f.names()
    );
    d.stop().await;
}

//! camsync against the go2rtc simulator over real sockets: the reconciler's promises.

mod common;

use std::time::Duration;

use camsync::reconcile::plan::Action;
use camsync::reconcile::report::{Convergence, OutcomeKind};
use camsync_sim::go2rtc::Go2rtcSimOptions;
use common::*;

const A: &str = "rtsp://192.0.2.10:554/a";
const B: &str = "rtsp://192.0.2.11:554/b";
const C: &str = "rtsp://192.0.2.12:554/c";

#[tokio::test]
async fn creates_updates_and_deletes_with_credentials_in_the_source() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", A), ("garage", B), ("yard", C)]);
    let report = f.sync().await;
    assert!(report.ok(), "{}", report.render_text());
    assert_eq!(report.targets[0].counts.create, 3);
    assert_eq!(f.names(), sorted(&["front", "garage", "yard"]));
    assert_eq!(
        f.go2rtc.stream_sources("front"),
        Some(vec![with_credentials(A)])
    );

    f.write_cameras(&[
        ("front", A),
        ("garage", "rtsp://192.0.2.11:554/b2#transport=tcp"),
        ("yard", C),
    ]);
    let report = f.sync().await;
    assert_eq!(
        report.targets[0].counts.update,
        1,
        "{}",
        report.render_text()
    );
    assert_eq!(
        f.go2rtc.stream_sources("garage"),
        Some(vec![with_credentials(
            "rtsp://192.0.2.11:554/b2#transport=tcp"
        )]),
        "`#` must arrive as part of the source, not be cut off as a fragment"
    );

    f.write_cameras(&[("front", A), ("garage", B)]);
    let report = f.sync().await;
    assert_eq!(report.targets[0].counts.delete, 1);
    assert_eq!(f.names(), sorted(&["front", "garage"]));
}

#[tokio::test]
async fn a_second_sync_with_nothing_changed_writes_nothing() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", A), ("garage", B)]);
    assert!(f.sync().await.ok());
    let writes = f.go2rtc.write_count();
    let report = f.sync().await;
    assert!(report.ok());
    assert_eq!(report.targets[0].counts.unchanged, 2);
    assert_eq!(
        f.go2rtc.write_count(),
        writes,
        "an unchanged sync must make no write call"
    );
}

#[tokio::test]
async fn several_sources_are_sent_in_order() {
    let f = Fixture::new().await;
    std::fs::write(
        f.path("cameras.yaml"),
        format!("cameras:\n  - name: multi\n    urls: [{A}, \"ffmpeg:{B}#video=h264\"]\n"),
    )
    .unwrap();
    assert!(f.sync().await.ok());
    assert_eq!(
        f.go2rtc.stream_sources("multi"),
        Some(vec![A.to_string(), format!("ffmpeg:{B}#video=h264")])
    );
}

#[tokio::test]
async fn a_hand_made_stream_survives_every_sync() {
    let f = Fixture::new().await;
    f.go2rtc
        .add_stream_by_hand("users_own", &["rtsp://192.0.2.99/own"]);
    f.write_cameras(&[("front", A)]);
    assert!(f.sync().await.ok());
    f.write_cameras(&[("front", B), ("other", C)]);
    assert!(f.sync().await.ok());
    f.write_cameras(&[("other", C)]);
    assert!(f.sync().await.ok());
    assert!(f.names().contains(&"users_own".to_string()));
    assert_eq!(
        f.go2rtc.stream_sources("users_own"),
        Some(vec!["rtsp://192.0.2.99/own".to_string()])
    );
}

#[tokio::test]
async fn a_stream_named_like_a_camera_is_adopted_then_owned() {
    let f = Fixture::new().await;
    f.go2rtc
        .add_stream_by_hand("front", &["rtsp://192.0.2.99/old"]);
    f.go2rtc
        .add_stream_by_hand("keep", &["rtsp://192.0.2.99/keep"]);
    f.write_cameras(&[("front", A), ("garage", B), ("yard", C)]);
    let report = f.sync().await;
    assert_eq!(
        report.targets[0].counts.adopt,
        1,
        "{}",
        report.render_text()
    );
    assert_eq!(
        f.go2rtc.stream_sources("front"),
        Some(vec![with_credentials(A)])
    );
    f.write_cameras(&[("garage", B), ("yard", C)]);
    assert!(f.sync().await.ok());
    assert_eq!(
        f.names(),
        sorted(&["garage", "keep", "yard"]),
        "adopted means owned: removing it deletes it"
    );
}

#[tokio::test]
async fn the_mass_deletion_guard_stops_an_empty_inventory() {
    let f = Fixture::new().await;
    f.write_cameras(&[("a", A), ("b", B), ("c", C)]);
    assert!(f.sync().await.ok());
    let writes = f.go2rtc.write_count();

    f.write_cameras(&[]);
    let report = f.sync().await;
    assert!(!report.ok());
    assert_eq!(report.targets[0].status, Convergence::Refused);
    assert!(
        report.targets[0]
            .error
            .as_deref()
            .unwrap()
            .contains("--allow-mass-delete")
    );
    assert_eq!(
        f.go2rtc.write_count(),
        writes,
        "a refused plan writes nothing"
    );
    assert_eq!(f.names(), sorted(&["a", "b", "c"]));

    f.write_cameras(&[("a", A)]);
    assert_eq!(
        f.sync().await.targets[0].status,
        Convergence::Refused,
        "2 of 3 is more than half"
    );

    f.write_config("allow_mass_delete: true\n");
    f.write_cameras(&[]);
    assert!(f.sync().await.ok());
    assert!(f.names().is_empty());
}

#[tokio::test]
async fn ownership_survives_a_camsync_restart() {
    let f = Fixture::new().await;
    f.write_cameras(&[("a", A), ("b", B), ("c", C)]);
    assert!(f.sync().await.ok());
    // Each `sync()` builds a new reconciler and ledger handle from the state file, like a new
    // process would.
    let writes = f.go2rtc.write_count();
    assert!(f.sync().await.ok());
    assert_eq!(f.go2rtc.write_count(), writes);
    f.write_cameras(&[("a", A), ("b", B)]);
    assert!(f.sync().await.ok());
    assert_eq!(f.names(), sorted(&["a", "b"]));
}

#[tokio::test]
async fn a_go2rtc_restart_is_healed_by_the_next_sync() {
    let f = Fixture::with(Go2rtcSimOptions {
        config_writable: false,
        file_streams: [(
            "users_own".to_string(),
            vec!["rtsp://192.0.2.99/own".to_string()],
        )]
        .into(),
        ..Go2rtcSimOptions::default()
    })
    .await;
    f.write_cameras(&[("a", A), ("b", B)]);
    let report = f.sync().await;
    assert!(
        report.ok(),
        "not persisted is still converged: {}",
        report.render_text()
    );
    assert!(
        report.targets[0]
            .steps
            .iter()
            .all(|s| s.outcome == OutcomeKind::Partial),
        "a read-only go2rtc config is reported: {}",
        report.render_text()
    );
    f.go2rtc.restart().await;
    assert!(
        !f.names().contains(&"a".to_string()),
        "the simulator forgot API streams"
    );
    let report = f.sync().await;
    assert!(report.ok());
    assert!(
        report.targets[0]
            .steps
            .iter()
            .all(|s| s.action == Action::Create && s.reason == "missing on the server")
    );
    assert_eq!(f.names(), sorted(&["a", "b", "users_own"]));
}

#[tokio::test]
async fn invalid_cameras_are_rejected_one_by_one_and_the_rest_syncs() {
    let f = Fixture::new().await;
    std::fs::write(
        f.path("cameras.yaml"),
        format!(
            "cameras:\n  - name: good\n    url: {A}\n  - name: bad/\n    url: {B}\n  - name: execy\n    url: \"exec:ffmpeg -i x\"\n  - name: nosecret\n    url: {C}\n    username: u\n    password_env: CAMSYNC_TEST_UNSET_VAR\n"
        ),
    )
    .unwrap();
    let report = f.sync().await;
    assert!(!report.ok(), "rejections make the sync exit non-zero");
    assert_eq!(report.targets[0].status, Convergence::Converged);
    let rejected: Vec<&str> = report.rejected.iter().map(|r| r.camera.as_str()).collect();
    assert_eq!(rejected, ["bad/", "execy", "nosecret"]);
    assert!(
        report.rejected[1].reason.contains("go2rtc.yaml"),
        "{:?}",
        report.rejected[1]
    );
    assert_eq!(f.names(), ["good"]);
}

#[tokio::test]
async fn writes_are_serialized_so_go2rtc_never_sees_overlapping_calls() {
    let f = Fixture::with(Go2rtcSimOptions {
        write_hold: Duration::from_millis(15),
        ..Go2rtcSimOptions::default()
    })
    .await;
    let cams: Vec<(String, String)> = (0..12)
        .map(|i| (format!("cam{i}"), format!("rtsp://192.0.2.{i}/s")))
        .collect();
    let pairs: Vec<(&str, &str)> = cams.iter().map(|(n, u)| (n.as_str(), u.as_str())).collect();
    f.write_cameras(&pairs);
    let report = f.sync().await;
    assert_eq!(f.go2rtc.crashed(), None);
    assert!(report.ok(), "{}", report.render_text());
    f.write_cameras(&pairs[..8]);
    assert!(f.sync().await.ok());
    assert_eq!(f.go2rtc.crashed(), None);
    assert_eq!(f.names().len(), 8);
}

#[tokio::test]
async fn plan_writes_nothing_and_creates_no_state() {
    let f = Fixture::new().await;
    f.write_cameras(&[("a", A), ("b", B)]);
    let plan = f.plan().await;
    assert!(!plan.applied);
    assert_eq!(plan.targets[0].status, Convergence::Planned);
    assert_eq!(plan.targets[0].counts.create, 2);
    assert_eq!(f.go2rtc.write_count(), 0);
    assert!(!f.path("state/camsync.db").exists());
}

#[tokio::test]
async fn an_unreachable_target_fails_the_sync_and_touches_nothing() {
    let f = Fixture::new().await;
    f.write_cameras(&[("a", A)]);
    assert!(f.sync().await.ok());
    let port = f.go2rtc.api_url().rsplit(':').next().unwrap().to_string();
    // A port nothing listens on, held for the test's length.
    let (_held, closed) = refusing_port();
    let text = std::fs::read_to_string(f.config_path())
        .unwrap()
        .replace(&port, &closed.to_string());
    std::fs::write(f.config_path(), text).unwrap();
    let report = f.sync().await;
    assert_eq!(report.targets[0].status, Convergence::Failed);
    assert!(
        report.targets[0]
            .error
            .as_deref()
            .unwrap()
            .contains("cannot reach"),
        "{}",
        report.render_text()
    );
    assert_eq!(f.names(), ["a"]);
}

#[tokio::test]
async fn api_basic_auth_is_sent_and_a_wrong_password_is_explained() {
    let f = Fixture::with(Go2rtcSimOptions {
        username: Some("api".into()),
        password: Some("api-pass".into()),
        ..Go2rtcSimOptions::default()
    })
    .await;
    f.write_cameras(&[("a", A)]);
    let with_auth = |password: &str| {
        std::fs::write(f.path("api.password"), format!("{password}\n")).unwrap();
        let text = std::fs::read_to_string(f.config_path()).unwrap();
        let text = text.replace(
            "    timeout: 5s\n",
            "    timeout: 5s\n    username: api\n    password_file: api.password\n",
        );
        std::fs::write(f.config_path(), text).unwrap();
    };
    with_auth("wrong");
    let report = f.sync().await;
    let error = report.targets[0].error.clone().unwrap();
    assert!(
        error.contains("401") && error.contains("username"),
        "{error}"
    );
    assert!(!error.contains("wrong"), "{error}");

    f.write_config("");
    with_auth("api-pass");
    assert!(f.sync().await.ok());
    assert_eq!(f.names(), ["a"]);
}

#[tokio::test]
async fn recording_cameras_are_preloaded_and_a_down_camera_leaves_the_preload_pending() {
    let camera = camsync_sim::camera::SimCamera::start().await.unwrap();
    let f = Fixture::new().await;
    let write = |url: String| {
        std::fs::write(
            f.path("cameras.yaml"),
            format!("cameras:\n  - name: rec\n    url: {url}\n    profile: recording\n  - name: view\n    url: {B}\n"),
        )
        .unwrap()
    };
    write(camera.url("live"));
    let report = f.sync().await;
    assert!(report.ok(), "{}", report.render_text());
    assert_eq!(
        f.go2rtc.preloads(),
        ["rec"],
        "only the recording profile is preloaded"
    );

    camera.stop().await;
    write(camera.url("live2"));
    let report = f.sync().await;
    assert!(
        report.ok(),
        "a pending preload is not a failure: {}",
        report.render_text()
    );
    let step = &report.targets[0].steps[0];
    assert_eq!(step.outcome, OutcomeKind::Partial);
    assert!(
        step.detail.as_deref().unwrap().contains("preload pending"),
        "{step:?}"
    );
    assert_eq!(
        f.go2rtc.stream_sources("rec"),
        Some(vec![camera.url("live2")])
    );
}

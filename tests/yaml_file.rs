//! `go2rtc-file` and `mediamtx-file` targets end to end: owned entries only, atomic writes,
//! no password in clear, and the MediaMTX simulator loading what camsync wrote.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use camsync::app::{LedgerMode, load_inventory, reconciler};
use camsync::config;
use camsync::config::process_env;
use camsync::reconcile::report::{OutcomeKind, SyncReport};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};

const PASSWORD: &str = "p@ss:w/rd-Marker-91";

const GO2RTC_YAML: &str = "\
# go2rtc config, kept in git
api:
  listen: \":1984\"   # the API camsync does not use here

streams:
  # the user's own doorbell
  doorbell: rtsp://192.0.2.50/live   # hand-made
  intercom:
    - rtsp://192.0.2.51/a
    - ffmpeg:intercom#audio=opus

webrtc:
  candidates: [stun:8555]
";

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(kind: &str, target_extra: &str, cameras: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let file = if kind == "go2rtc-file" {
            "go2rtc.yaml"
        } else {
            "mediamtx.yml"
        };
        std::fs::write(
            dir.path().join("camsync.yaml"),
            format!(
                "source:\n  file: cameras.yaml\ntargets:\n  - name: file\n    kind: {kind}\n    path: {file}\n{target_extra}state: camsync.db\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("cam.password"), format!("{PASSWORD}\n")).unwrap();
        let setup = Setup { dir };
        setup.cameras(cameras);
        setup
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn cameras(&self, text: &str) {
        std::fs::write(self.path("cameras.yaml"), text).unwrap();
    }

    async fn sync(&self) -> SyncReport {
        let config = config::load(&self.path("camsync.yaml"), &process_env).unwrap();
        let inventory = load_inventory(&config).await.unwrap();
        reconciler(&config, LedgerMode::ReadWrite)
            .unwrap()
            .sync(&inventory)
            .await
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const TWO_CAMERAS: &str = "\
cameras:
  - name: front_door
    url: rtsp://192.0.2.10:554/stream1
    username: admin
    password_file: cam.password
    profile: recording
  - name: garage
    url: rtsp://192.0.2.11/main
";

#[tokio::test]
async fn go2rtc_file_gets_references_not_passwords_and_keeps_every_other_byte() {
    let s = Setup::new("go2rtc-file", "    env_file: go2rtc.env\n", TWO_CAMERAS);
    std::fs::write(s.path("go2rtc.yaml"), GO2RTC_YAML).unwrap();
    let report = s.sync().await;
    assert!(report.ok(), "{}", report.render_text());

    let text = s.read("go2rtc.yaml");
    assert!(
        !text.contains(PASSWORD) && !text.contains("p%40ss"),
        "a password in clear:\n{text}"
    );
    assert!(
        text.contains(
            "front_door: rtsp://admin:${CAMSYNC_FRONT_DOOR_PASSWORD}@192.0.2.10:554/stream1"
        ),
        "{text}"
    );
    assert!(text.contains("garage: rtsp://192.0.2.11/main"), "{text}");
    // go2rtc substitutes the text as is, so the value is percent-encoded.
    assert_eq!(
        s.read("go2rtc.env"),
        "CAMSYNC_FRONT_DOOR_PASSWORD=p%40ss%3Aw%2Frd%2DMarker%2D91\n"
    );
    assert_eq!(mode(&s.path("go2rtc.env")), 0o600);
    let parsed: serde_json::Value =
        serde_json::to_value(serde_saphyr::from_str::<serde_json::Value>(&text).unwrap()).unwrap();
    assert_eq!(
        parsed["preload"]["front_door"], "video&audio",
        "recording streams are preloaded"
    );

    // Everything that is not camsync's is untouched: removing camsync's lines gives the original.
    let without_ours: String = text
        .lines()
        .filter(|l| !l.contains("front_door") && !l.contains("garage") && *l != "preload:")
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(without_ours.trim_end(), GO2RTC_YAML.trim_end());

    // Nothing changed: nothing written.
    let inode = std::fs::metadata(s.path("go2rtc.yaml")).unwrap().ino();
    assert!(s.sync().await.ok());
    assert_eq!(
        std::fs::metadata(s.path("go2rtc.yaml")).unwrap().ino(),
        inode
    );

    // Removing a camera removes its entries and its variable; the user's streams stay.
    s.cameras("cameras:\n  - name: garage\n    url: rtsp://192.0.2.11/main\n");
    assert!(s.sync().await.ok());
    let text = s.read("go2rtc.yaml");
    assert!(!text.contains("front_door"), "{text}");
    assert!(
        text.contains("doorbell: rtsp://192.0.2.50/live   # hand-made"),
        "{text}"
    );
    assert_eq!(s.read("go2rtc.env"), "");
}

#[tokio::test]
async fn a_missing_file_is_created_private() {
    let s = Setup::new(
        "go2rtc-file",
        "",
        "cameras:\n  - name: a\n    url: rtsp://192.0.2.1/a\n",
    );
    let report = s.sync().await;
    assert!(report.ok(), "{}", report.render_text());
    assert_eq!(mode(&s.path("go2rtc.yaml")), 0o600);
    assert!(s.read("go2rtc.yaml").contains("a: rtsp://192.0.2.1/a"));
}

#[tokio::test]
async fn mediamtx_file_refuses_passwords_unless_inline_credentials_and_then_is_private() {
    let s = Setup::new("mediamtx-file", "", TWO_CAMERAS);
    let report = s.sync().await;
    let steps = &report.targets[0].steps;
    let front = steps.iter().find(|st| st.stream == "front_door").unwrap();
    assert_eq!(front.outcome, OutcomeKind::Failed);
    assert!(
        front
            .detail
            .as_deref()
            .unwrap()
            .contains("inline_credentials"),
        "{front:?}"
    );
    let text = s.read("mediamtx.yml");
    assert!(
        !text.contains(PASSWORD) && text.contains("garage:"),
        "{text}"
    );

    let s = Setup::new(
        "mediamtx-file",
        "    inline_credentials: true\n",
        TWO_CAMERAS,
    );
    assert!(s.sync().await.ok());
    assert_eq!(mode(&s.path("mediamtx.yml")), 0o600);
    assert!(
        s.read("mediamtx.yml")
            .contains("rtsp://admin:p%40ss%3Aw%2Frd-Marker-91@192.0.2.10:554/stream1")
    );
}

#[tokio::test]
async fn the_mediamtx_simulator_loads_what_camsync_wrote_and_a_reload_drops_api_paths() {
    let cams: String = (0..300)
        .map(|i| {
            format!(
                "  - name: cam{i:03}\n    url: rtsp://192.0.2.{}/s{i}\n    profile: recording\n",
                i % 250 + 1
            )
        })
        .collect();
    let s = Setup::new("mediamtx-file", "", &format!("cameras:\n{cams}"));
    let report = s.sync().await;
    assert!(report.ok(), "{}", report.render_text());
    let paths: std::collections::BTreeMap<String, serde_json::Value> =
        serde_saphyr::from_str::<serde_json::Value>(&s.read("mediamtx.yml")).unwrap()["paths"]
            .as_object()
            .unwrap()
            .clone()
            .into_iter()
            .collect();
    assert_eq!(paths.len(), 300);

    // The simulator plays MediaMTX's file watcher: it loads the file camsync wrote.
    let sim = MediamtxSim::start(MediamtxSimOptions::default())
        .await
        .unwrap();
    sim.add_path_by_hand(
        "api_made",
        serde_json::json!({"source": "rtsp://192.0.2.99/x"}),
    );
    sim.reload_file(paths);
    assert_eq!(
        sim.path_names().len(),
        300,
        "every path camsync wrote is valid for MediaMTX"
    );
    assert!(
        !sim.path_names().contains(&"api_made".to_string()),
        "a reload discards API-made paths"
    );
    let config = sim.path_config("cam007").unwrap();
    assert_eq!(
        (config["record"].clone(), config["rtspTransport"].clone()),
        (true.into(), "tcp".into())
    );
}

#[tokio::test(start_paused = true)]
async fn writes_to_a_mediamtx_file_are_at_least_a_second_apart() {
    let s = Setup::new(
        "mediamtx-file",
        "",
        "cameras:\n  - name: a\n    url: rtsp://192.0.2.1/a\n",
    );
    let config = config::load(&s.path("camsync.yaml"), &process_env).unwrap();
    let reconciler = Arc::new(reconciler(&config, LedgerMode::ReadWrite).unwrap());
    let first = tokio::time::Instant::now();
    assert!(
        reconciler
            .sync(&load_inventory(&config).await.unwrap())
            .await
            .ok()
    );
    s.cameras("cameras:\n  - name: a\n    url: rtsp://192.0.2.1/b\n");
    assert!(
        reconciler
            .sync(&load_inventory(&config).await.unwrap())
            .await
            .ok()
    );
    assert!(
        first.elapsed() >= Duration::from_secs(1),
        "{:?}",
        first.elapsed()
    );
    assert!(s.read("mediamtx.yml").contains("rtsp://192.0.2.1/b"));
}

#[tokio::test]
async fn plan_shows_the_file_edit_as_a_diff_and_render_prints_the_file() {
    let s = Setup::new("go2rtc-file", "", TWO_CAMERAS);
    std::fs::write(s.path("go2rtc.yaml"), GO2RTC_YAML).unwrap();
    let config = config::load(&s.path("camsync.yaml"), &process_env).unwrap();
    let inventory = load_inventory(&config).await.unwrap();
    let plan = reconciler(&config, LedgerMode::DryRun)
        .unwrap()
        .plan(&inventory)
        .await;
    let diff = plan.targets[0].diff.clone().unwrap();
    assert!(diff.contains("+  garage: rtsp://192.0.2.11/main"), "{diff}");
    assert!(diff.contains("+preload:"), "{diff}");
    assert!(!diff.contains(PASSWORD));
    assert_eq!(s.read("go2rtc.yaml"), GO2RTC_YAML, "a plan writes nothing");
    assert!(
        plan.render_text().contains("    +  garage:"),
        "{}",
        plan.render_text()
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camsync"))
        .args(["render", "file", "--env-file"])
        .arg(s.path("render.env"))
        .env("CAMSYNC_CONFIG", s.path("camsync.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).unwrap();
    assert!(
        rendered.starts_with(GO2RTC_YAML.lines().next().unwrap()),
        "{rendered}"
    );
    assert!(
        rendered.contains("front_door: rtsp://admin:${CAMSYNC_FRONT_DOOR_PASSWORD}@"),
        "{rendered}"
    );
    assert!(!rendered.contains(PASSWORD));
    assert_eq!(
        s.read("render.env"),
        "CAMSYNC_FRONT_DOOR_PASSWORD=p%40ss%3Aw%2Frd%2DMarker%2D91\n"
    );
    assert_eq!(mode(&s.path("render.env")), 0o600);
    assert_eq!(
        s.read("go2rtc.yaml"),
        GO2RTC_YAML,
        "render writes nothing to the server's file"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camsync"))
        .args(["render", "nope"])
        .env("CAMSYNC_CONFIG", s.path("camsync.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("file targets in"),
        "{out:?}"
    );
}

#[tokio::test]
async fn go2rtc_file_is_not_rewritten_when_its_env_file_cannot_be_written() {
    let s = Setup::new("go2rtc-file", "    env_file: go2rtc.env\n", TWO_CAMERAS);
    std::fs::write(s.path("go2rtc.yaml"), GO2RTC_YAML).unwrap();
    // A directory where the env file should be: it cannot be replaced.
    std::fs::create_dir(s.path("go2rtc.env")).unwrap();
    let report = s.sync().await;
    assert!(!report.ok(), "{}", report.render_text());
    assert!(
        report.render_text().contains("go2rtc.env"),
        "{}",
        report.render_text()
    );
    assert_eq!(
        s.read("go2rtc.yaml"),
        GO2RTC_YAML,
        "the file may not reference a password the env file does not hold"
    );

    // Once the env file can be written, both change together.
    std::fs::remove_dir(s.path("go2rtc.env")).unwrap();
    assert!(s.sync().await.ok());
    assert!(
        s.read("go2rtc.yaml")
            .contains("CAMSYNC_FRONT_DOOR_PASSWORD")
    );
    assert!(
        s.read("go2rtc.env")
            .contains("CAMSYNC_FRONT_DOOR_PASSWORD=")
    );
}

//! The simulators on real files (SERVERS.md, Persistence sections): go2rtc reads its YAML file
//! at start and restart only, expanding `${VAR}` from its environment, and patches it on API
//! writes; MediaMTX watches its file and reloads on a change of content. Then camsync's file
//! targets end to end against them.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use camsync::app::{LedgerMode, load_inventory, reconciler};
use camsync::config;
use camsync::config::process_env;
use camsync::reconcile::report::SyncReport;
use camsync_sim::camera::SimCamera;
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// SERVERS.md: MediaMTX reloads within ~0.7 s of a change; the simulator polls every 100 ms.
const RELOAD_DEADLINE: Duration = Duration::from_secs(2);
/// The simulator's watcher poll interval (MediaMTX itself reacts to file events).
const POLL: Duration = Duration::from_millis(100);

/// reqwest with `rustls-no-provider` needs a provider even for plain http.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Polls `condition` every 5 ms until it holds; fails naming `what` after `deadline`.
async fn until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < deadline, "no {what} within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Replaces `path` atomically (temp file + rename), as camsync and careful editors write.
fn replace_file(path: &Path, text: &str) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// go2rtc

async fn go2rtc_on(path: &Path, env: BTreeMap<String, String>) -> Go2rtcSim {
    Go2rtcSim::start(Go2rtcSimOptions {
        config_file: Some(path.to_owned()),
        env,
        ..Go2rtcSimOptions::default()
    })
    .await
    .unwrap()
}

async fn go2rtc_call(
    sim: &Go2rtcSim,
    method: Method,
    path_and_query: &str,
) -> (StatusCode, String) {
    let response = client()
        .request(method, format!("{}{path_and_query}", sim.api_url()))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

const GO2RTC_FILE: &str = "\
# go2rtc config, kept in git
api:
  listen: \":1984\"
streams:
  front: rtsp://admin:${CAM_PASS}@127.0.0.1:9/s1   # from the environment
  back:
    - rtsp://${CAM_USER:viewer}:${MISSING}@127.0.0.1:9/b
    - ffmpeg:back#audio=opus
preload:
  front: video&audio
  back:
";

#[tokio::test]
async fn go2rtc_loads_its_file_with_env_references_expanded_and_its_preloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("go2rtc.yaml");
    std::fs::write(&path, GO2RTC_FILE).unwrap();
    let sim = go2rtc_on(&path, env(&[("CAM_PASS", "p%40ss")])).await;

    assert_eq!(
        sim.stream_sources("front").unwrap(),
        ["rtsp://admin:p%40ss@127.0.0.1:9/s1"]
    );
    assert_eq!(
        sim.stream_sources("back").unwrap(),
        [
            "rtsp://viewer:${MISSING}@127.0.0.1:9/b",
            "ffmpeg:back#audio=opus"
        ],
        "a default applies; an unset variable stays literally `${{VAR}}`"
    );
    assert_eq!(sim.preloads(), ["back", "front"]);
    let (status, body) = go2rtc_call(&sim, Method::GET, "/api/preload").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"back": "video&audio", "front": "video&audio"})
    );
    let (_, info) = go2rtc_call(&sim, Method::GET, "/api").await;
    assert_eq!(
        serde_json::from_str::<Value>(&info).unwrap()["config_path"],
        path.display().to_string()
    );
    // The file itself still holds the reference, and nothing was written to it.
    assert_eq!(
        sim.file_streams()["front"],
        ["rtsp://admin:${CAM_PASS}@127.0.0.1:9/s1"]
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), GO2RTC_FILE);
}

#[tokio::test]
async fn go2rtc_reads_its_file_again_only_when_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("go2rtc.yaml");
    std::fs::write(&path, "streams:\n  a: rtsp://127.0.0.1:9/a\n").unwrap();
    let sim = go2rtc_on(&path, env(&[("USER", "first")])).await;

    replace_file(
        &path,
        "streams:\n  a: rtsp://127.0.0.1:9/a2\n  b: rtsp://${USER}@127.0.0.1:9/b\n",
    );
    assert_eq!(sim.stream_names(), ["a"], "go2rtc never watches its file");
    assert_eq!(sim.stream_sources("a").unwrap(), ["rtsp://127.0.0.1:9/a"]);

    sim.restart().await;
    assert_eq!(sim.stream_names(), ["a", "b"]);
    assert_eq!(sim.stream_sources("a").unwrap(), ["rtsp://127.0.0.1:9/a2"]);
    assert_eq!(
        sim.stream_sources("b").unwrap(),
        ["rtsp://first@127.0.0.1:9/b"]
    );

    // POST /api/restart re-executes the same process: same environment, file read again.
    replace_file(&path, "streams:\n  b: rtsp://${USER}@127.0.0.1:9/b\n");
    let (status, _) = go2rtc_call(&sim, Method::POST, "/api/restart").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.stream_names(), ["b"]);
    assert_eq!(
        sim.stream_sources("b").unwrap(),
        ["rtsp://first@127.0.0.1:9/b"]
    );

    // A new environment comes only with a full restart.
    sim.restart_with_env(env(&[("USER", "second")])).await;
    assert_eq!(
        sim.stream_sources("b").unwrap(),
        ["rtsp://second@127.0.0.1:9/b"]
    );
}

#[tokio::test]
async fn go2rtc_api_writes_patch_the_real_file_and_keep_the_rest_of_it() {
    let camera = SimCamera::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("go2rtc.yaml");
    std::fs::write(&path, GO2RTC_FILE).unwrap();
    let sim = go2rtc_on(&path, env(&[("CAM_PASS", "p%40ss")])).await;

    let cam_url = camera.url("live");
    let put = format!(
        "/api/streams?name=cam&src={}&src=ffmpeg:cam%23video=h264",
        cam_url.replace(':', "%3A")
    );
    assert_eq!(
        go2rtc_call(&sim, Method::PUT, &put).await,
        (StatusCode::OK, String::new())
    );
    assert_eq!(
        go2rtc_call(&sim, Method::PUT, "/api/preload?src=cam")
            .await
            .0,
        StatusCode::OK
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let file: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        file["streams"]["cam"],
        json!([cam_url, "ffmpeg:cam#video=h264"])
    );
    assert_eq!(file["preload"]["cam"], "video&audio");
    for kept in [
        "# go2rtc config, kept in git",
        "front: rtsp://admin:${CAM_PASS}@127.0.0.1:9/s1   # from the environment",
        "listen: \":1984\"",
    ] {
        assert!(text.contains(kept), "{kept:?} lost:\n{text}");
    }

    // What a restart loads is what the writes left in the file.
    sim.restart().await;
    assert_eq!(sim.stream_names(), ["back", "cam", "front"]);
    assert_eq!(sim.preloads(), ["back", "cam", "front"]);

    assert_eq!(
        go2rtc_call(&sim, Method::DELETE, "/api/preload?src=cam")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        go2rtc_call(&sim, Method::DELETE, "/api/streams?src=front").await,
        (StatusCode::OK, String::new())
    );
    let file: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(file["preload"].get("cam"), None);
    assert_eq!(file["streams"].get("front"), None);
    assert_eq!(
        file["preload"]["front"], "video&audio",
        "DELETE leaves preload: alone"
    );
    assert_eq!(file["streams"]["cam"][0], cam_url.as_str());
}

/// Makes a file read-only for this process until dropped: mode 0444, and for root (whom modes
/// do not stop) the immutable attribute as well.
struct ReadOnly {
    path: PathBuf,
    immutable: bool,
}

impl ReadOnly {
    /// `None` if this machine gives no way to make the file read-only for this process.
    fn make(path: &Path) -> Option<ReadOnly> {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
        let mut guard = ReadOnly {
            path: path.to_owned(),
            immutable: false,
        };
        if Self::writable(path) {
            guard.immutable = std::process::Command::new("chattr")
                .arg("+i")
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
        }
        (!Self::writable(path)).then_some(guard)
    }

    fn writable(path: &Path) -> bool {
        OpenOptions::new().append(true).open(path).is_ok()
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if self.immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.path)
                .status();
        }
        let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o644));
    }
}

#[tokio::test]
async fn a_read_only_go2rtc_file_answers_400_with_the_os_error_and_memory_still_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("go2rtc.yaml");
    let original = "streams:\n  a: rtsp://127.0.0.1:9/a\n";
    std::fs::write(&path, original).unwrap();
    let sim = go2rtc_on(&path, BTreeMap::new()).await;

    // Refused by the simulator's switch: go2rtc's text for a read-only mount.
    sim.set_config_writable(false);
    let (status, body) = go2rtc_call(
        &sim,
        Method::PUT,
        "/api/streams?name=b&src=rtsp://127.0.0.1:9/b",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        format!("open {}: read-only file system\n", path.display())
    );
    sim.set_config_writable(true);

    let Some(_read_only) = ReadOnly::make(&path) else {
        eprintln!("SKIPPED: cannot make a file read-only for this user on this machine");
        return;
    };
    let (status, body) = go2rtc_call(
        &sim,
        Method::PUT,
        "/api/streams?name=c&src=rtsp://127.0.0.1:9/c",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let prefix = format!("open {}: ", path.display());
    assert!(
        body.starts_with(&prefix) && body.len() > prefix.len() + 1 && body.ends_with('\n'),
        "{body:?}"
    );
    assert_eq!(
        go2rtc_call(&sim, Method::GET, "/api/streams?src=c").await.0,
        StatusCode::OK,
        "the stream was created in memory although the answer is 400"
    );
    let (status, _) = go2rtc_call(&sim, Method::DELETE, "/api/streams?src=a").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(sim.stream_names(), ["b", "c"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
}

// ---------------------------------------------------------------------------------------------
// MediaMTX

async fn mediamtx_on(path: &Path) -> MediamtxSim {
    MediamtxSim::start(MediamtxSimOptions {
        config_file: Some(path.to_owned()),
        ..MediamtxSimOptions::default()
    })
    .await
    .unwrap()
}

/// A MediaMTX file with publisher paths `names` (no camera is dialed).
fn mediamtx_file(names: &[&str]) -> String {
    let paths: String = names
        .iter()
        .map(|name| format!("  {name}:\n    maxReaders: 7\n"))
        .collect();
    format!("# MediaMTX config\nrtspTransports: [tcp]\npaths:\n{paths}")
}

/// A MediaMTX file in a temp dir, and a simulator watching it.
async fn watched_mediamtx(names: &[&str]) -> (tempfile::TempDir, PathBuf, MediamtxSim) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mediamtx.yml");
    std::fs::write(&path, mediamtx_file(names)).unwrap();
    let sim = mediamtx_on(&path).await;
    assert_eq!(sim.path_names(), names);
    assert_eq!(sim.path_config(names[0]).unwrap()["maxReaders"], 7);
    (dir, path, sim)
}

fn api_refuses_connections(sim: &MediamtxSim) -> bool {
    let addr = sim.api_url().replace("http://", "");
    std::net::TcpStream::connect(addr).is_err()
}

#[tokio::test]
async fn mediamtx_reloads_a_changed_file_and_drops_api_made_paths() {
    let (_dir, path, sim) = watched_mediamtx(&["cam1"]).await;
    let started = sim.started();
    let answer = client()
        .post(format!("{}/v3/config/paths/add/api_made", sim.api_url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(sim.path_names(), ["api_made", "cam1"]);

    replace_file(&path, &mediamtx_file(&["cam1", "cam2"]));
    until("reload", RELOAD_DEADLINE, || {
        sim.path_names() == ["cam1", "cam2"]
    })
    .await;
    assert_eq!(sim.reload_count(), 1);
    assert_eq!(sim.started(), started, "a reload is not a restart");
}

#[tokio::test]
async fn touching_mediamtx_file_or_rewriting_the_same_text_reloads_nothing() {
    let (_dir, path, sim) = watched_mediamtx(&["cam1"]).await;
    sim.add_path_by_hand("api_made", json!({}));

    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    replace_file(&path, &mediamtx_file(&["cam1"]));
    // Proving a non-event: give the watcher several polls to (wrongly) react.
    tokio::time::sleep(POLL * 5).await;
    assert_eq!(sim.reload_count(), 0);
    assert_eq!(sim.path_names(), ["api_made", "cam1"]);

    // The watcher was alive all along: a real change is picked up.
    replace_file(&path, &mediamtx_file(&["cam1", "cam2"]));
    until("reload", RELOAD_DEADLINE, || sim.reload_count() == 1).await;
    assert_eq!(sim.path_names(), ["cam1", "cam2"]);
}

#[tokio::test]
async fn a_mediamtx_file_change_within_a_second_of_a_reload_is_ignored_until_the_next_change() {
    let (_dir, path, sim) = watched_mediamtx(&["a"]).await;

    replace_file(&path, &mediamtx_file(&["b"]));
    until("first reload", RELOAD_DEADLINE, || sim.reload_count() == 1).await;
    let reloaded = Instant::now();
    replace_file(&path, &mediamtx_file(&["c"]));
    assert!(
        reloaded.elapsed() < Duration::from_millis(500),
        "the second write must land well within 1 s of the reload"
    );

    // SERVERS.md: writes within 1 s after a reload are ignored — also once that second is over.
    tokio::time::sleep_until((reloaded + Duration::from_secs(1) + POLL * 3).into()).await;
    assert_eq!(sim.path_names(), ["b"]);
    assert_eq!(sim.reload_count(), 1);

    // The next change reloads the file as it is then.
    replace_file(&path, &mediamtx_file(&["c", "d"]));
    until("second reload", RELOAD_DEADLINE, || sim.reload_count() == 2).await;
    assert_eq!(sim.path_names(), ["c", "d"]);
}

#[tokio::test]
async fn an_invalid_mediamtx_file_shuts_it_down_and_a_restart_reads_the_fixed_one() {
    let (_dir, path, sim) = watched_mediamtx(&["a"]).await;

    replace_file(&path, "paths:\n  a:\n    recordPath: x\n");
    until("shutdown", Duration::from_secs(3), || {
        api_refuses_connections(&sim)
    })
    .await;
    assert_eq!(sim.reload_count(), 1);

    replace_file(&path, &mediamtx_file(&["fixed"]));
    sim.restart().await;
    assert!(!api_refuses_connections(&sim));
    assert_eq!(sim.path_names(), ["fixed"]);
    // A new process: its watcher runs, with no quiet second to honour.
    replace_file(&path, &mediamtx_file(&["fixed", "more"]));
    until("reload after restart", RELOAD_DEADLINE, || {
        sim.path_names() == ["fixed", "more"]
    })
    .await;
}

#[tokio::test]
async fn the_mediamtx_watcher_stops_with_shutdown() {
    let (_dir, path, sim) = watched_mediamtx(&["a"]).await;
    sim.shutdown().await;
    replace_file(&path, &mediamtx_file(&["b"]));
    tokio::time::sleep(POLL * 4).await;
    assert_eq!((sim.reload_count(), sim.path_names()), (0, strings(&["a"])));
}

// ---------------------------------------------------------------------------------------------
// camsync's file targets end to end

const PASSWORD: &str = "p@ss:w/rd-Marker-91";
/// PASSWORD as camsync writes it to the env file: percent-encoded, since go2rtc substitutes
/// the text as is.
const PASSWORD_ENCODED: &str = "p%40ss%3Aw%2Frd%2DMarker%2D91";

/// A camsync configuration in a temp dir.
struct Camsync {
    dir: tempfile::TempDir,
}

impl Camsync {
    fn new(targets: &str, cameras: &str) -> Camsync {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("camsync.yaml"),
            format!("source:\n  file: cameras.yaml\ntargets:\n{targets}state: camsync.db\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("cameras.yaml"), cameras).unwrap();
        std::fs::write(dir.path().join("cam.password"), format!("{PASSWORD}\n")).unwrap();
        Camsync { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn sync(&self) -> SyncReport {
        let config = config::load(&self.path("camsync.yaml"), &process_env).unwrap();
        let inventory = load_inventory(&config).await.unwrap();
        reconciler(&config, LedgerMode::ReadWrite)
            .unwrap()
            .sync(&inventory)
            .await
    }

    /// The env file as the server's environment (Docker's `--env-file`).
    fn env_file(&self, name: &str) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.path(name))
            .unwrap()
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

#[tokio::test]
async fn go2rtc_restarted_with_camsyncs_env_file_serves_the_camera_with_its_password() {
    let camera = SimCamera::start_with_auth("admin", PASSWORD).await.unwrap();
    let camsync = Camsync::new(
        "  - name: file\n    kind: go2rtc-file\n    path: go2rtc.yaml\n    env_file: go2rtc.env\n",
        &format!(
            "cameras:\n  - name: front_door\n    url: {}\n    username: admin\n    password_file: cam.password\n    profile: recording\n",
            camera.url("stream1")
        ),
    );
    let path = camsync.path("go2rtc.yaml");
    std::fs::write(
        &path,
        "# mine\nstreams:\n  doorbell: rtsp://127.0.0.1:9/d\n",
    )
    .unwrap();
    let sim = go2rtc_on(&path, BTreeMap::new()).await;

    let report = camsync.sync().await;
    assert!(report.ok(), "{}", report.render_text());
    assert_eq!(sim.stream_names(), ["doorbell"], "go2rtc does not watch");
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains(PASSWORD_ENCODED)
    );

    // Restarted without the env file: the reference stays literal and the camera refuses it.
    sim.restart().await;
    let literal = format!(
        "rtsp://admin:${{CAMSYNC_FRONT_DOOR_PASSWORD}}@127.0.0.1:{}/stream1",
        camera.port()
    );
    assert_eq!(sim.stream_sources("front_door").unwrap(), [literal]);
    let dial = "/api/streams?src=front_door&video=all&audio=all";
    let (status, body) = go2rtc_call(&sim, Method::GET, dial).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "streams: wrong user/pass\n"
        )
    );

    // Restarted with it (as `docker run --env-file go2rtc.env`): the real password.
    let env = camsync.env_file("go2rtc.env");
    assert_eq!(env["CAMSYNC_FRONT_DOOR_PASSWORD"], PASSWORD_ENCODED);
    sim.restart_with_env(env).await;
    assert_eq!(
        sim.stream_sources("front_door").unwrap(),
        [format!(
            "rtsp://admin:{PASSWORD_ENCODED}@127.0.0.1:{}/stream1",
            camera.port()
        )]
    );
    assert_eq!(
        sim.preloads(),
        ["front_door"],
        "recording streams are preloaded"
    );
    let (status, body) = go2rtc_call(&sim, Method::GET, dial).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("rtsp://admin:***@127.0.0.1") && !body.contains(PASSWORD_ENCODED),
        "{body}"
    );
    assert_eq!(sim.stream_names(), ["doorbell", "front_door"]);
}

#[tokio::test]
async fn mediamtx_loads_every_path_camsync_wrote_while_an_api_target_is_unaffected() {
    let api_sim = MediamtxSim::start(MediamtxSimOptions::default())
        .await
        .unwrap();
    let cameras: String = (0..300)
        .map(|i| {
            format!(
                "  - name: cam{i:03}\n    url: rtsp://192.0.2.{}/s{i}\n    profile: viewing\n",
                i % 250 + 1
            )
        })
        .collect();
    let camsync = Camsync::new(
        &format!(
            "  - name: file\n    kind: mediamtx-file\n    path: mediamtx.yml\n  - name: api\n    kind: mediamtx\n    api: {}\n    rtsp: {}\n    timeout: 5s\n",
            api_sim.api_url(),
            api_sim.rtsp_url()
        ),
        &format!("cameras:\n{cameras}"),
    );
    let path = camsync.path("mediamtx.yml");
    std::fs::write(
        &path,
        "# mine\npaths:\n  hand_made:\n    source: publisher\n",
    )
    .unwrap();
    let file_sim = mediamtx_on(&path).await;
    file_sim.add_path_by_hand("api_made", json!({}));

    let report = camsync.sync().await;
    assert!(report.ok(), "{}", report.render_text());
    until("the file's 300 paths", RELOAD_DEADLINE, || {
        file_sim.path_names().len() == 301
    })
    .await;
    let names = file_sim.path_names();
    assert!(names.contains(&"hand_made".to_owned()) && !names.contains(&"api_made".to_owned()));
    assert_eq!(file_sim.reload_count(), 1, "300 paths in a single reload");
    assert_eq!(file_sim.write_count(), 0, "nothing went through its API");
    assert_eq!(
        file_sim.path_config("cam007").unwrap()["sourceOnDemand"],
        true
    );

    let api_names = api_sim.path_names();
    assert_eq!(api_names.len(), 300);
    assert_eq!(api_names.first().map(String::as_str), Some("cam000"));
    assert_eq!(api_sim.write_count(), 300);
    assert_eq!(api_sim.reload_count(), 0);
}

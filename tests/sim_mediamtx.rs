//! The MediaMTX simulator over real sockets: the behaviours camsync relies on (SERVERS.md,
//! section MediaMTX), with the answers of the real server.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use camsync_sim::camera::SimCamera;
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// reqwest with `rustls-no-provider` needs a provider even for plain http.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn sim() -> MediamtxSim {
    MediamtxSim::start(MediamtxSimOptions::default())
        .await
        .unwrap()
}

async fn sim_with_file(paths: &[(&str, Value)]) -> MediamtxSim {
    MediamtxSim::start(MediamtxSimOptions {
        file_paths: file(paths),
        ..MediamtxSimOptions::default()
    })
    .await
    .unwrap()
}

fn file(paths: &[(&str, Value)]) -> BTreeMap<String, Value> {
    paths
        .iter()
        .map(|(name, fields)| ((*name).to_owned(), fields.clone()))
        .collect()
}

/// One API answer.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// Asserts MediaMTX's error body.
    fn assert_error(&self, status: StatusCode, message: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.json(), json!({"status": "error", "error": message}));
    }

    fn assert_ok(&self) {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        assert_eq!(self.body, r#"{"status":"ok"}"#);
    }
}

async fn call(sim: &MediamtxSim, method: Method, path: &str, body: Option<&str>) -> Answer {
    let mut request = client().request(method, format!("{}{path}", sim.api_url()));
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Answer {
        status: response.status(),
        content_type,
        body: response.text().await.unwrap(),
    }
}

async fn get(sim: &MediamtxSim, path: &str) -> Answer {
    call(sim, Method::GET, path, None).await
}

async fn add(sim: &MediamtxSim, name: &str, body: &str) -> Answer {
    let path = format!("/v3/config/paths/add/{name}");
    call(sim, Method::POST, &path, Some(body)).await
}

async fn replace(sim: &MediamtxSim, name: &str, body: &str) -> Answer {
    let path = format!("/v3/config/paths/replace/{name}");
    call(sim, Method::POST, &path, Some(body)).await
}

async fn patch(sim: &MediamtxSim, name: &str, body: &str) -> Answer {
    let path = format!("/v3/config/paths/patch/{name}");
    call(sim, Method::PATCH, &path, Some(body)).await
}

async fn delete(sim: &MediamtxSim, name: &str) -> Answer {
    let path = format!("/v3/config/paths/delete/{name}");
    call(sim, Method::DELETE, &path, None).await
}

async fn runtime(sim: &MediamtxSim, name: &str) -> Value {
    let answer = get(sim, &format!("/v3/paths/get/{name}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.json()
}

async fn is_ready(sim: &MediamtxSim, name: &str) -> bool {
    runtime(sim, name).await["ready"] == true
}

/// Polls `condition` until it holds; fails after `within`. Returns how long it took.
async fn eventually<F: Future<Output = bool>>(
    within: Duration,
    what: &str,
    mut condition: impl FnMut() -> F,
) -> Duration {
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// The status of one RTSP request on a fresh connection.
async fn rtsp(method: &str, url: &str) -> (u16, String) {
    let authority = url
        .strip_prefix("rtsp://")
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let stream = TcpStream::connect(authority).await.unwrap();
    let mut reader = BufReader::new(stream);
    let request = format!("{method} {url} RTSP/1.0\r\nCSeq: 3\r\n\r\n");
    reader
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line.trim().is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head)
}

async fn describe(sim: &MediamtxSim, name: &str) -> u16 {
    rtsp("DESCRIBE", &format!("{}/{name}", sim.rtsp_url()))
        .await
        .0
}

/// MediaMTX's path defaults (`GET /v3/config/pathdefaults/get` of v1.16.2): every field a
/// full path configuration has, and the values camsync cares about.
const DEFAULTS_FIELD_COUNT: usize = 86;
const NOTABLE_DEFAULTS: &[(&str, &str)] = &[
    ("source", r#""publisher""#),
    ("sourceOnDemand", "false"),
    ("sourceOnDemandStartTimeout", r#""10s""#),
    ("sourceOnDemandCloseAfter", r#""10s""#),
    ("maxReaders", "0"),
    ("record", "false"),
    ("recordPath", r#""./recordings/%path/%Y-%m-%d_%H-%M-%S-%f""#),
    ("recordFormat", r#""fmp4""#),
    ("recordSegmentDuration", r#""1h0m0s""#),
    ("recordDeleteAfter", r#""1d""#),
    ("rtspTransport", r#""automatic""#),
    ("rtspUDPSourcePortRange", "[10000, 65535]"),
    ("runOnDemand", r#""""#),
    ("runOnDemandStartTimeout", r#""10s""#),
];

/// The full configuration of a path configured with no fields: the defaults, named `name`.
fn defaults(name: &str) -> Value {
    let mut conf = json!({"name": name});
    for (field, value) in NOTABLE_DEFAULTS {
        conf[*field] = serde_json::from_str(value).unwrap();
    }
    conf
}

/// Asserts that `conf` is complete and equals `expected` in every field `expected` names.
fn assert_config(conf: &Value, expected: &Value) {
    assert_eq!(
        conf.as_object().unwrap().len(),
        DEFAULTS_FIELD_COUNT,
        "{conf}"
    );
    for (field, value) in expected.as_object().unwrap() {
        assert_eq!(&conf[field], value, "{field}");
    }
}

#[tokio::test]
async fn info_reports_version_and_started() {
    let sim = sim().await;
    let answer = get(&sim, "/v3/info").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type, "application/json; charset=utf-8");
    let info = answer.json();
    assert_eq!(info["version"], "v1.16.2");
    assert_eq!(info["started"], sim.started());
    assert!(sim.started().ends_with('Z') && sim.started().contains('T'));
}

#[tokio::test]
async fn crud_round_trip_with_mediamtx_statuses_and_bodies() {
    let sim = sim().await;
    let source = r#"{"source": "rtsp://127.0.0.1:9/main", "name": "ignored"}"#;
    add(&sim, "site/cam1", source).await.assert_ok();
    add(&sim, "site/cam1", source)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "path already exists");

    let answer = get(&sim, "/v3/config/paths/get/site/cam1").await;
    assert_eq!(answer.status, StatusCode::OK);
    let mut expected = defaults("site/cam1");
    expected["source"] = json!("rtsp://127.0.0.1:9/main");
    assert_config(&answer.json(), &expected);
    assert_eq!(sim.path_config("site/cam1").unwrap(), answer.json());
    assert_eq!(sim.path_names(), ["site/cam1"]);

    get(&sim, "/v3/config/paths/get/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "path configuration not found");
    patch(&sim, "nope", "{}")
        .await
        .assert_error(StatusCode::NOT_FOUND, "path not found");
    delete(&sim, "site/cam1").await.assert_ok();
    delete(&sim, "site/cam1")
        .await
        .assert_error(StatusCode::NOT_FOUND, "path not found");
    assert!(sim.path_names().is_empty());

    // A path name with a percent-encoded `/` is the same name.
    add(&sim, "a%2Fb", "{}").await.assert_ok();
    assert_eq!(sim.path_names(), ["a/b"]);
    assert_eq!(
        sim.write_count(),
        6,
        "every write counts, whatever its answer"
    );
}

#[tokio::test]
async fn names_routes_and_empty_bodies_fail_like_mediamtx() {
    let sim = sim().await;
    add(&sim, "cam/", "{}").await.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid path name 'cam/': can't end with a slash",
    );
    // Encoded so that the client does not resolve the dot segments itself.
    for bad in ["a%2F..%2Fb", "cam%201", "a%2F.%2Fb", "x%3Ay"] {
        assert_eq!(
            add(&sim, bad, "{}").await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    get(&sim, "/v3/config/paths/get/")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid name");
    add(&sim, "cam", "")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "unexpected end of JSON input");

    for (method, path) in [
        (Method::GET, "/v3/nothing"),
        (Method::GET, "/v3/config/paths/add/cam"),
        (Method::POST, "/v3/config/paths/patch/cam"),
        (Method::PUT, "/v3/info"),
    ] {
        let answer = call(&sim, method.clone(), path, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(answer.body, "404 page not found");
        assert!(answer.content_type.starts_with("text/plain"));
    }
    assert!(sim.path_names().is_empty());
}

#[tokio::test]
async fn list_pages_beyond_100_paths() {
    let names: Vec<String> = (0..250).map(|i| format!("cam{i:03}")).collect();
    let paths: Vec<(&str, Value)> = names.iter().map(|n| (n.as_str(), json!({}))).collect();
    let sim = sim_with_file(&paths).await;

    let page = get(&sim, "/v3/config/paths/list").await.json();
    assert_eq!(
        (page["itemCount"].as_u64(), page["pageCount"].as_u64()),
        (Some(250), Some(3))
    );
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 100);
    assert_eq!(
        (items[0]["name"].as_str(), items[99]["name"].as_str()),
        (Some("cam000"), Some("cam099"))
    );
    assert_eq!(
        items[0]["sourceOnDemandStartTimeout"], "10s",
        "items are full configs"
    );

    let last = get(&sim, "/v3/config/paths/list?page=2").await.json();
    let items = last["items"].as_array().unwrap();
    assert_eq!(
        (items.len(), items[0]["name"].as_str()),
        (50, Some("cam200"))
    );
    let past = get(&sim, "/v3/config/paths/list?page=3").await.json();
    assert_eq!(past["items"], json!([]));

    let all = get(&sim, "/v3/config/paths/list?itemsPerPage=1000")
        .await
        .json();
    assert_eq!(
        (
            all["pageCount"].as_u64(),
            all["items"].as_array().unwrap().len()
        ),
        (Some(1), 250)
    );

    let runtime = get(&sim, "/v3/paths/list?itemsPerPage=1000&page=0")
        .await
        .json();
    assert_eq!(runtime["itemCount"], 250);

    get(&sim, "/v3/config/paths/list?itemsPerPage=0")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid items per page");
    get(&sim, "/v3/config/paths/list?page=x")
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            "strconv.ParseUint: parsing \"x\": invalid syntax",
        );
}

#[tokio::test]
async fn replace_resets_to_defaults_and_patch_merges() {
    let sim = sim().await;
    let body = r#"{"source": "rtsp://127.0.0.1:9/a", "sourceOnDemand": true,
                   "rtspTransport": "tcp", "recordDeleteAfter": "48h"}"#;
    add(&sim, "cam", body).await.assert_ok();
    let conf = sim.path_config("cam").unwrap();
    assert_eq!(
        (&conf["rtspTransport"], &conf["recordDeleteAfter"]),
        (&json!("tcp"), &json!("2d"))
    );

    replace(&sim, "cam", r#"{"source": "rtsp://127.0.0.1:9/b"}"#)
        .await
        .assert_ok();
    let conf = sim.path_config("cam").unwrap();
    let mut expected = defaults("cam");
    expected["source"] = json!("rtsp://127.0.0.1:9/b");
    assert_config(&conf, &expected);
    add(&sim, "probe", r#"{"source": "rtsp://127.0.0.1:9/b"}"#)
        .await
        .assert_ok();
    let mut fresh = sim.path_config("probe").unwrap();
    fresh["name"] = json!("cam");
    assert_eq!(conf, fresh, "fields not sent revert to the defaults");
    delete(&sim, "probe").await.assert_ok();

    patch(
        &sim,
        "cam",
        r#"{"record": true, "recordSegmentDuration": "90m"}"#,
    )
    .await
    .assert_ok();
    patch(&sim, "cam", r#"{"source": null, "rtspTransport": "udp"}"#)
        .await
        .assert_ok();
    let conf = sim.path_config("cam").unwrap();
    assert_eq!(
        conf["source"], "rtsp://127.0.0.1:9/b",
        "null leaves a field alone"
    );
    assert_eq!(conf["record"], true, "patch merges");
    assert_eq!(conf["recordSegmentDuration"], "1h30m0s");
    assert_eq!(conf["rtspTransport"], "udp");

    replace(&sim, "fresh", "{}").await.assert_ok();
    assert_eq!(sim.path_names(), ["cam", "fresh"], "replace is an upsert");
}

#[tokio::test]
async fn bad_bodies_and_configs_are_refused_and_change_nothing() {
    let sim = sim().await;
    add(&sim, "cam", r#"{"source": "rtsp://127.0.0.1:9/a"}"#)
        .await
        .assert_ok();
    let before = sim.path_config("cam").unwrap();
    let cases = [
        (r#"{"x": 1}"#, r#"json: unknown field "x""#),
        (
            r#"{"sourceOnDemand": "yes"}"#,
            "json: cannot unmarshal string into Go struct field .sourceOnDemand of type bool",
        ),
        (
            r#"{"source": 5}"#,
            "json: cannot unmarshal number into Go struct field .source of type string",
        ),
        (r#"{"rtspTransport": "quic"}"#, "invalid protocol 'quic'"),
        (r#"{"recordFormat": "avi"}"#, "invalid record format 'avi'"),
        (
            r#"{"sourceOnDemandStartTimeout": "10"}"#,
            r#"time: missing unit in duration "10""#,
        ),
        (
            r#"{"recordDeleteAfter": "soon"}"#,
            r#"time: invalid duration "soon""#,
        ),
        (
            r#"{"recordPath": "/rec/%Y-%m-%d"}"#,
            "'recordPath' must contain %path",
        ),
        (
            r#"{"recordPath": "/rec/%path/%Y"}"#,
            "'recordPath' must contain either %s or %Y %m %d %H %M %S",
        ),
        (
            r#"{"source": "publisher", "sourceOnDemand": true}"#,
            "'sourceOnDemand' is useless when source is 'publisher'",
        ),
    ];
    for (body, message) in cases {
        patch(&sim, "cam", body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, message);
        replace(&sim, "cam", body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, message);
    }
    add(&sim, "other", r#"{"bogus": true}"#)
        .await
        .assert_error(StatusCode::BAD_REQUEST, r#"json: unknown field "bogus""#);
    assert_eq!(sim.path_config("cam").unwrap(), before);
    assert_eq!(sim.path_names(), ["cam"]);
}

#[tokio::test]
async fn basic_auth_when_configured() {
    let sim = MediamtxSim::start(MediamtxSimOptions {
        username: Some("admin".into()),
        password: Some("s3cret".into()),
        ..MediamtxSimOptions::default()
    })
    .await
    .unwrap();
    let url = format!("{}/v3/info", sim.api_url());

    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Basic realm="mediamtx""#
    );
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "error", "error": "authentication error"})
    );
    let wrong = client()
        .get(&url)
        .basic_auth("admin", Some("no"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = client()
        .get(&url)
        .basic_auth("admin", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    assert_eq!(sim.request_count(), 3);
}

#[tokio::test]
async fn restart_forgets_api_paths_keeps_file_paths_and_changes_started() {
    let sim = sim_with_file(&[("from_file", json!({"source": "rtsp://127.0.0.1:9/f"}))]).await;
    add(&sim, "from_api", "{}").await.assert_ok();
    assert!(sim.add_reader("from_file"));
    let (api, rtsp, started) = (sim.api_url(), sim.rtsp_url(), sim.started());

    sim.restart().await;
    assert_eq!(sim.path_names(), ["from_file"]);
    assert_ne!(sim.started(), started);
    assert_eq!((sim.api_url(), sim.rtsp_url()), (api, rtsp), "same ports");
    assert_eq!((sim.readers("from_file"), sim.reader_disconnects()), (0, 1));
    let info = get(&sim, "/v3/info").await.json();
    assert_eq!(info["started"], sim.started());
    get(&sim, "/v3/config/paths/get/from_api")
        .await
        .assert_error(StatusCode::NOT_FOUND, "path configuration not found");
}

#[tokio::test]
async fn reload_file_discards_api_paths_and_recreates_only_changed_ones() {
    let sim = sim_with_file(&[
        ("kept", json!({"source": "rtsp://127.0.0.1:9/k"})),
        ("moved", json!({"source": "rtsp://127.0.0.1:9/m"})),
    ])
    .await;
    add(&sim, "from_api", "{}").await.assert_ok();
    for name in ["kept", "moved", "from_api"] {
        assert!(sim.add_reader(name));
    }
    sim.reload_file(file(&[
        ("kept", json!({"source": "rtsp://127.0.0.1:9/k"})),
        ("moved", json!({"source": "rtsp://127.0.0.1:9/elsewhere"})),
        ("new", json!({})),
    ]));
    assert_eq!(sim.path_names(), ["kept", "moved", "new"]);
    assert_eq!(sim.readers("kept"), 1, "an unchanged path keeps running");
    assert_eq!(sim.readers("moved"), 0);
    assert_eq!(sim.reader_disconnects(), 2);
}

#[tokio::test]
async fn readers_drop_only_when_their_path_is_recreated() {
    let sim = sim().await;
    let door = r#"{"source": "rtsp://127.0.0.1:9/door", "rtspTransport": "tcp"}"#;
    add(&sim, "door", door).await.assert_ok();
    add(&sim, "yard", r#"{"source": "rtsp://127.0.0.1:9/yard"}"#)
        .await
        .assert_ok();
    assert!(sim.add_reader("door") && sim.add_reader("door") && sim.add_reader("yard"));
    let runtime_readers = runtime(&sim, "door").await["readers"].clone();
    assert_eq!(runtime_readers.as_array().unwrap().len(), 2);
    assert_eq!(runtime_readers[0]["type"], "rtspSession");

    patch(
        &sim,
        "door",
        r#"{"record": true, "recordDeleteAfter": "7d"}"#,
    )
    .await
    .assert_ok();
    replace(
        &sim,
        "door",
        &door.replace('}', r#", "record": true, "recordDeleteAfter": "7d"}"#),
    )
    .await
    .assert_ok();
    patch(&sim, "yard", r#"{"sourceOnDemandCloseAfter": "20s"}"#)
        .await
        .assert_ok();
    assert_eq!(
        (
            sim.readers("door"),
            sim.readers("yard"),
            sim.reader_disconnects()
        ),
        (2, 0, 1),
        "record-only patch and same-config replace keep readers; other paths' writes too"
    );

    patch(&sim, "door", r#"{"source": "rtsp://127.0.0.1:9/door2"}"#)
        .await
        .assert_ok();
    assert_eq!((sim.readers("door"), sim.reader_disconnects()), (0, 3));
    assert!(sim.add_reader("door"));
    delete(&sim, "door").await.assert_ok();
    assert_eq!(sim.reader_disconnects(), 4);
    assert!(!sim.add_reader("door"), "no reader without a path");

    add(&sim, "small", r#"{"maxReaders": 1}"#).await.assert_ok();
    assert!(sim.add_reader("small") && !sim.add_reader("small"));
}

#[tokio::test]
async fn runtime_state_follows_an_always_on_camera() {
    let camera = SimCamera::start().await.unwrap();
    let sim = sim_with_file(&[
        ("cam", json!({"source": camera.url("s")})),
        ("pub", json!({})),
    ])
    .await;
    eventually(Duration::from_secs(3), "cam ready", || {
        is_ready(&sim, "cam")
    })
    .await;
    let state = runtime(&sim, "cam").await;
    assert_eq!(
        (&state["available"], &state["online"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(state["source"], json!({"type": "rtspSource", "id": ""}));
    assert_eq!(state["tracks"], json!(["H264"]));
    assert!(state["readyTime"].is_string());
    assert_eq!(describe(&sim, "cam").await, 200);

    let publisher = runtime(&sim, "pub").await;
    assert_eq!(
        (&publisher["ready"], &publisher["online"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(
        (&publisher["readyTime"], &publisher["source"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(publisher["onlineTime"], "0001-01-01T00:00:00Z");
    get(&sim, "/v3/paths/get/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "path not found");
    let list = get(&sim, "/v3/paths/list").await.json();
    assert_eq!(list["itemCount"], 2);

    assert!(sim.add_reader("cam"));
    camera.stop().await;
    eventually(Duration::from_secs(3), "cam not ready", || async {
        !is_ready(&sim, "cam").await
    })
    .await;
    assert_eq!(
        (sim.readers("cam"), sim.reader_disconnects()),
        (0, 1),
        "a lost source drops readers"
    );
    assert_eq!(describe(&sim, "cam").await, 404);
}

#[tokio::test]
async fn a_returning_camera_waits_for_the_5s_retry_unless_re_added() {
    let camera = SimCamera::start().await.unwrap();
    let sim = sim_with_file(&[("cam", json!({"source": camera.url("s")}))]).await;
    eventually(Duration::from_secs(3), "cam ready", || {
        is_ready(&sim, "cam")
    })
    .await;

    let lost = Instant::now();
    camera.stop().await;
    camera.resume().await.unwrap();
    eventually(Duration::from_secs(7), "ready at the retry", || {
        is_ready(&sim, "cam")
    })
    .await;
    assert!(
        lost.elapsed() >= Duration::from_millis(4500),
        "{:?}",
        lost.elapsed()
    );

    // delete + add starts the source at once.
    let conf = json!({"source": camera.url("s")}).to_string();
    add(&sim, "fresh", &conf).await.assert_ok();
    camera.stop().await;
    eventually(Duration::from_secs(3), "fresh down", || async {
        !is_ready(&sim, "fresh").await
    })
    .await;
    camera.resume().await.unwrap();
    delete(&sim, "fresh").await.assert_ok();
    add(&sim, "fresh", &conf).await.assert_ok();
    let took = eventually(Duration::from_secs(2), "re-added ready", || {
        is_ready(&sim, "fresh")
    })
    .await;
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn rtsp_describe_answers_like_mediamtx() {
    let camera = SimCamera::start().await.unwrap();
    let down = SimCamera::start().await.unwrap();
    down.stop().await;
    // Accepts connections and never answers.
    let hung = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_url = format!("rtsp://{}/s", hung.local_addr().unwrap());
    let on_demand = |source: String| json!({"source": source, "sourceOnDemand": true, "sourceOnDemandStartTimeout": "300ms"});
    let sim = sim_with_file(&[
        ("pub", json!({})),
        ("static_down", json!({"source": down.url("s")})),
        ("od_up", on_demand(camera.url("s"))),
        ("od_down", on_demand(down.url("s"))),
        ("od_hung", on_demand(hung_url)),
    ])
    .await;

    assert_eq!(
        rtsp("OPTIONS", &format!("{}/pub", sim.rtsp_url())).await.0,
        200
    );
    assert_eq!(describe(&sim, "unknown").await, 400);
    assert_eq!(describe(&sim, "bad%20name").await, 400);
    assert_eq!(describe(&sim, "pub").await, 404);
    assert_eq!(describe(&sim, "static_down").await, 404);
    let (status, head) = rtsp("DESCRIBE", &format!("{}/od_up", sim.rtsp_url())).await;
    assert_eq!(status, 200);
    assert!(head.contains("application/sdp"), "{head}");
    for name in ["od_down", "od_hung"] {
        let start = Instant::now();
        assert_eq!(describe(&sim, name).await, 400, "{name}");
        let held = start.elapsed();
        assert!(
            held >= Duration::from_millis(300) && held < Duration::from_secs(2),
            "{name}: {held:?}"
        );
    }

    add(&sim, "all_others", "{}").await.assert_ok();
    assert_eq!(
        describe(&sim, "unknown").await,
        404,
        "the catch-all configures every name"
    );
}

#[tokio::test]
async fn a_reader_starts_an_on_demand_source() {
    let camera = SimCamera::start().await.unwrap();
    let sim = sim_with_file(&[(
        "od",
        json!({"source": camera.url("s"), "sourceOnDemand": true}),
    )])
    .await;
    assert!(!is_ready(&sim, "od").await);
    assert_eq!(
        camera.describe_count(),
        0,
        "nothing dials an on-demand source without readers"
    );
    assert!(sim.add_reader("od"));
    eventually(Duration::from_secs(3), "od ready", || is_ready(&sim, "od")).await;
    assert_eq!(runtime(&sim, "od").await["online"], true);
    camera.stop().await;
    eventually(Duration::from_secs(3), "od readers dropped", || async {
        sim.readers("od") == 0
    })
    .await;
    assert!(!is_ready(&sim, "od").await);
}

#[tokio::test]
async fn writes_go_one_at_a_time_and_overlaps_are_counted() {
    let sim = MediamtxSim::start(MediamtxSimOptions {
        write_cost_per_path: Duration::from_millis(50),
        ..MediamtxSimOptions::default()
    })
    .await
    .unwrap();
    let start = Instant::now();
    add(&sim, "a", "{}").await.assert_ok();
    add(&sim, "b", "{}").await.assert_ok();
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "1 + 2 paths × 50 ms"
    );
    assert_eq!(
        sim.overlapping_writes(),
        0,
        "sequential writes never overlap"
    );

    let start = Instant::now();
    let (c, d) = tokio::join!(add(&sim, "c", "{}"), add(&sim, "d", "{}"));
    c.assert_ok();
    d.assert_ok();
    assert_eq!(sim.overlapping_writes(), 1);
    assert!(
        start.elapsed() >= Duration::from_millis(350),
        "3 + 4 paths × 50 ms, one after the other"
    );
    assert_eq!(sim.write_count(), 4);
}

#[tokio::test]
async fn a_file_mediamtx_would_reject_fails_the_start_and_a_bad_reload_stops_it() {
    let bad = MediamtxSimOptions {
        file_paths: file(&[("cam", json!({"recordPath": "x"}))]),
        ..MediamtxSimOptions::default()
    };
    let error = MediamtxSim::start(bad).await.err().unwrap();
    assert!(
        error
            .to_string()
            .contains("'recordPath' must contain %path"),
        "{error}"
    );

    let sim = sim().await;
    let url = format!("{}/v3/info", sim.api_url());
    sim.reload_file(file(&[("cam", json!({"unknownField": 1}))]));
    eventually(Duration::from_secs(3), "api down", || async {
        client().get(&url).send().await.is_err()
    })
    .await;
}

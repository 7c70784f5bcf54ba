//! The daemon's HTTP API over a real socket on 127.0.0.1:0, against the simulators: every
//! route, every way a request is refused, the webhook → sync → result path, events in order,
//! health transitions and the Prometheus exposition.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use camsync::api::{self, Access, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use camsync::daemon::Progress;
use camsync_sim::camera::SimCamera;
use camsync_sim::mediamtx::MediamtxSimOptions;
use common::*;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);
const TOKEN: &str = "Tok-5d1e0b";
const HOOK_KEY: &str = "Hook-77c2aa";

struct Api {
    base: String,
    http: reqwest::Client,
    daemon: daemon::Running,
}

/// Starts the daemon with a token and a webhook secret (and `extra` config) and waits for its
/// first sync.
async fn start(f: &Fixture, extra: &str) -> Api {
    std::fs::write(f.path("api.token"), TOKEN).unwrap();
    std::fs::write(f.path("hook.key"), HOOK_KEY).unwrap();
    f.write_config(&format!(
        "api:\n  token_file: api.token\n  webhook_secret_file: hook.key\n{extra}"
    ));
    let api = start_plain(f).await;
    api.until("the first sync", |s| s.syncs >= 1).await;
    api
}

/// Starts the daemon on the config as written.
async fn start_plain(f: &Fixture) -> Api {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    Api {
        base,
        http: reqwest::Client::new(),
        daemon: daemon::start_with(f.config(), Some(listener)),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Api {
    async fn until(&self, what: &str, condition: impl Fn(&Progress) -> bool) {
        self.daemon.until(what, condition).await
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }

    /// The status and error message of `method path` (with the token).
    async fn error(&self, method: Method, path: &str) -> (StatusCode, String) {
        error_of(self.request(method, path).send().await.unwrap()).await
    }

    fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    fn signed(&self, timestamp: u64, body: &str) -> RequestBuilder {
        self.signed_with(HOOK_KEY, timestamp, body)
    }

    fn signed_with(&self, key: &str, timestamp: u64, body: &str) -> RequestBuilder {
        let ts = timestamp.to_string();
        self.anonymous(Method::POST, "/v1/webhook/camera-changed")
            .header(TIMESTAMP_HEADER, &ts)
            .header(SIGNATURE_HEADER, sign(key, &ts, body.as_bytes()))
            .body(body.to_owned())
    }

    async fn webhook(&self, body: &str) -> Response {
        self.signed(now(), body).send().await.unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let response = self.request(Method::GET, path).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// Polls `GET /v1/syncs/{id}` until the request is served.
    async fn resolved(&self, id: u64) -> Value {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            let answer = self.json(&format!("/v1/syncs/{id}")).await;
            if answer["state"] == "done" {
                return answer;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "{id} unresolved: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `GET /metrics`, parsed: value by series.
    async fn metrics(&self) -> BTreeMap<String, f64> {
        let response = self.anonymous(Method::GET, "/metrics").send().await;
        let text = response.unwrap().text().await.unwrap();
        parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    async fn stop(self) {
        self.daemon.stop().await
    }
}

async fn error_of(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

fn id_of(answer: &Value) -> u64 {
    answer["id"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_with_the_token_and_the_guarded_ones_refuse_without() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    let api = start(&f, "").await;
    // One call per route; the list must cover the router exactly.
    let calls: Vec<(Method, &str, &str, StatusCode)> = vec![
        (Method::GET, "/", "/", StatusCode::OK),
        (Method::GET, "/ui/app.js", "/ui/app.js", StatusCode::OK),
        (Method::GET, "/ui/app.css", "/ui/app.css", StatusCode::OK),
        (Method::GET, "/healthz", "/healthz", StatusCode::OK),
        (Method::GET, "/readyz", "/readyz", StatusCode::OK),
        (Method::GET, "/metrics", "/metrics", StatusCode::OK),
        (
            Method::GET,
            "/v1/openapi.json",
            "/v1/openapi.json",
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/v1/webhook/camera-changed",
            "/v1/webhook/camera-changed",
            StatusCode::ACCEPTED,
        ),
        (Method::POST, "/v1/sync", "/v1/sync", StatusCode::ACCEPTED),
        (Method::GET, "/v1/syncs/{id}", "/v1/syncs/1", StatusCode::OK),
        (Method::GET, "/v1/plan", "/v1/plan", StatusCode::OK),
        (Method::GET, "/v1/cameras", "/v1/cameras", StatusCode::OK),
        (
            Method::GET,
            "/v1/cameras/{name}",
            "/v1/cameras/front",
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/v1/cameras/{name}/events",
            "/v1/cameras/front/events",
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/v1/cameras/{name}/reconnect",
            "/v1/cameras/front/reconnect",
            StatusCode::OK,
        ),
        (Method::GET, "/v1/events", "/v1/events", StatusCode::OK),
    ];
    let covered: BTreeSet<(String, &str)> = calls
        .iter()
        .map(|(m, route, _, _)| (m.to_string(), *route))
        .collect();
    let routes = api::routes();
    let served: BTreeSet<(String, &str)> = routes
        .iter()
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    assert_eq!(covered, served, "this test calls every route");

    for (method, route, path, expected) in &calls {
        let access = routes.iter().find(|r| r.path == *route).unwrap().access;
        let body = if *route == "/v1/webhook/camera-changed" {
            "{}"
        } else {
            ""
        };
        let anonymous = api
            .anonymous(method.clone(), path)
            .body(body)
            .send()
            .await
            .unwrap();
        match access {
            Access::Open => assert_eq!(anonymous.status(), *expected, "{path} is open"),
            Access::Token | Access::Webhook => {
                assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path}");
                assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
                let (_, why) = error_of(anonymous).await;
                assert!(why.contains("missing"), "{path}: {why}");
                let wrong = api
                    .anonymous(method.clone(), path)
                    .bearer_auth("not-the-token")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
            }
        }
        let with_token = api
            .request(method.clone(), path)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(with_token.status(), *expected, "{method} {path}");
    }
    let (status, why) = api.error(Method::GET, "/v1/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(why.contains("openapi"), "{why}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_syncs_the_change_at_once_and_its_id_resolves_to_the_result() {
    let f = Fixture::new().await;
    f.write_cameras(&[
        ("front", "rtsp://192.0.2.10/a"),
        ("back", "rtsp://192.0.2.11/b"),
    ]);
    let api = start(&f, "").await;
    // A changed URL, a camera added and one removed, all in one webhook.
    f.write_cameras(&[
        ("front", "rtsp://192.0.2.10/new"),
        ("side", "rtsp://192.0.2.12/c"),
    ]);
    let response = api.webhook(r#"{"names": ["front", "side", "back"]}"#).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.unwrap();
    let id = id_of(&accepted);
    assert_eq!(accepted["status"], format!("/v1/syncs/{id}"));
    let result = api.resolved(id).await;
    assert_eq!(result["result"]["ok"], true, "{result}");
    let requests = result["result"]["requests"].as_array().unwrap();
    assert!(requests[0].as_u64().unwrap() <= id && id <= requests[1].as_u64().unwrap());
    assert_eq!(f.names(), sorted(&["front", "side"]));
    assert_eq!(
        f.go2rtc.stream_sources("front"),
        Some(vec![with_credentials("rtsp://192.0.2.10/new")])
    );
    let steps = result["result"]["report"]["targets"][0]["steps"]
        .as_array()
        .unwrap();
    assert_eq!(steps.len(), 3, "{result}");
    assert_no_secret(&result.to_string());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_webhooks_change_nothing_and_say_why() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    let api = start(&f, "").await;
    let writes = f.go2rtc.write_count();
    let body = r#"{"name": "front"}"#;
    let ts = now();

    let mut cases: Vec<(&str, RequestBuilder, StatusCode, &str)> = vec![
        (
            "no signature",
            api.anonymous(Method::POST, "/v1/webhook/camera-changed")
                .body(body),
            StatusCode::UNAUTHORIZED,
            "missing signature",
        ),
        (
            "wrong signature",
            api.signed_with("not-the-key", ts, body),
            StatusCode::UNAUTHORIZED,
            "does not match",
        ),
        (
            "signed for another body",
            api.signed(ts, r#"{"name": "other"}"#).body(body),
            StatusCode::UNAUTHORIZED,
            "does not match",
        ),
        (
            "stale",
            // Well past the 300 s window: `ts` is truncated and the requests take time.
            api.signed(ts - 330, body),
            StatusCode::UNAUTHORIZED,
            "stale",
        ),
        (
            "from the future",
            api.signed(ts + 330, body),
            StatusCode::UNAUTHORIZED,
            "stale",
        ),
        (
            "no timestamp",
            api.anonymous(Method::POST, "/v1/webhook/camera-changed")
                .header(
                    SIGNATURE_HEADER,
                    sign(HOOK_KEY, &ts.to_string(), body.as_bytes()),
                )
                .body(body),
            StatusCode::UNAUTHORIZED,
            "missing x-camsync-timestamp",
        ),
        (
            "too large",
            api.signed(
                ts,
                &format!(r#"{{"names": ["{}"]}}"#, "x".repeat(api::BODY_LIMIT)),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 65536 bytes",
        ),
        (
            "bad JSON",
            api.signed(ts, r#"{"name": "front""#),
            StatusCode::BAD_REQUEST,
            "invalid JSON body",
        ),
        (
            "unknown field",
            api.signed(ts, r#"{"nmae": "front"}"#),
            StatusCode::BAD_REQUEST,
            "unknown field `nmae`",
        ),
        (
            "both name and names",
            api.signed(ts, r#"{"name": "front", "names": ["front"]}"#),
            StatusCode::BAD_REQUEST,
            "not both",
        ),
        (
            "unknown camera",
            api.signed(ts, r#"{"names": ["front", "nope"]}"#),
            StatusCode::BAD_REQUEST,
            "unknown camera \"nope\"",
        ),
    ];
    // A replay: the first delivery passes, the identical second does not.
    let replayed = api.signed(ts, r#"{"name": "front", "nonce": "r1"}"#);
    let first = replayed.try_clone().unwrap().send().await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let accepted_id = id_of(&first.json().await.unwrap());
    cases.push(("replayed", replayed, StatusCode::UNAUTHORIZED, "replayed"));

    for (case, request, status, reason) in cases {
        let (got, why) = error_of(request.send().await.unwrap()).await;
        assert_eq!(got, status, "{case}: {why}");
        assert!(
            why.contains(reason),
            "{case}: {why:?} should say {reason:?}"
        );
    }
    // Nothing was requested by any of them: the next id follows the one accepted.
    api.resolved(accepted_id).await;
    let next = id_of(&api.webhook("{}").await.json().await.unwrap());
    assert_eq!(next, accepted_id + 1);
    api.resolved(next).await;
    assert_eq!(
        f.go2rtc.write_count(),
        writes,
        "nothing changed, nothing written"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_webhooks_coalesces_into_few_syncs_and_none_is_lost() {
    let f = Fixture::new().await;
    let names: Vec<String> = (0..20).map(|i| format!("cam{i}")).collect();
    let urls: Vec<String> = (0..20)
        .map(|i| format!("rtsp://192.0.2.{}/s", i + 1))
        .collect();
    let cameras: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(urls.iter().map(String::as_str))
        .collect();
    f.write_cameras(&cameras);
    let api = start(&f, "").await;
    let syncs_before = api.daemon.current().syncs;
    let mut sent = tokio::task::JoinSet::new();
    for i in 0..200 {
        let request = api.signed(
            now(),
            &format!(r#"{{"name": "cam{}", "nonce": {i}}}"#, i % 20),
        );
        sent.spawn(async move { request.send().await.unwrap() });
    }
    let mut ids = Vec::new();
    while let Some(response) = sent.join_next().await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        ids.push(id_of(&response.json().await.unwrap()));
    }
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=200).collect::<Vec<u64>>(),
        "every request got its own id"
    );
    let mut served_by = BTreeSet::new();
    for id in ids {
        let result = api.resolved(id).await;
        assert_eq!(result["result"]["ok"], true);
        served_by.insert(result["sync"].as_u64().unwrap());
    }
    let syncs = api.daemon.current().syncs - syncs_before;
    assert!(
        served_by.len() < 100 && syncs < 100,
        "200 requests coalesce: {} syncs served them, {syncs} ran",
        served_by.len()
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_show_desired_state_redacted_with_ownership_and_last_sync_per_target() {
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    std::fs::write(
        f.path("cameras.yaml"),
        format!(
            "{}  - name: only_go2rtc\n    url: ffmpeg:rtsp://192.0.2.20/x#video=copy\n    targets: [go2rtc]\n",
            inventory(&[("front", "rtsp://192.0.2.10/a")])
        ),
    )
    .unwrap();
    let api = start(&f, "").await;
    let doc = api.json("/v1/cameras").await;
    assert_no_secret(&doc.to_string());
    assert_eq!(doc["daemon"]["ready"], true);
    assert_eq!(doc["daemon"]["cameras"], 2);
    assert_eq!(
        doc["targets"],
        json!([
            {"name": "go2rtc", "kind": "go2rtc",
             "player": format!("{}/stream.html?src=", f.go2rtc.api_url().trim_end_matches('/'))},
            {"name": "mediamtx", "kind": "mediamtx", "player": null},
        ])
    );
    // Only the cameras asked for (the status page reads those an event named).
    let some = api.json("/v1/cameras?names=only_go2rtc,nope").await;
    let names: Vec<&str> = some["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["only_go2rtc"]);
    let (status, why) = api.error(Method::GET, "/v1/cameras?name=front").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
    let front = &doc["cameras"][0];
    assert_eq!(front["name"], "front");
    assert_eq!(front["sources"], json!(["rtsp://admin:***@192.0.2.10/a"]));
    for t in front["targets"].as_array().unwrap() {
        assert_eq!(
            (
                t["wanted"].clone(),
                t["owned"].clone(),
                t["confirmed"].clone()
            ),
            (json!(true), json!(true), json!(true)),
            "{t}"
        );
        assert_eq!(t["last_sync"]["action"], "create");
        assert_eq!(t["last_sync"]["outcome"], "done");
        assert!(t["health"].is_null(), "health monitoring is off here");
    }
    let only = api.json("/v1/cameras/only_go2rtc").await;
    let mediamtx = &only["targets"][1];
    assert_eq!(
        (
            mediamtx["target"].as_str(),
            mediamtx["wanted"].as_bool(),
            mediamtx["owned"].as_bool()
        ),
        (Some("mediamtx"), Some(false), Some(false))
    );

    // A second sync with nothing changed: the last result is "unchanged".
    let id = id_of(
        &api.request(Method::POST, "/v1/sync")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    api.resolved(id).await;
    let front = api.json("/v1/cameras/front").await;
    assert_eq!(front["targets"][0]["last_sync"]["outcome"], "unchanged");

    let (status, why) = api.error(Method::GET, "/v1/cameras/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(why.contains("\"nope\""), "{why}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_re_registers_owned_streams_only_and_names_what_is_unknown() {
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    let api = start(&f, "").await;
    f.go2rtc
        .add_stream_by_hand("mine", &["rtsp://192.0.2.99/x"]);
    let (g0, m0) = (f.go2rtc.write_count(), f.mtx().write_count());
    let mut events = api.request(Method::GET, "/v1/events").send().await.unwrap();

    let response = api
        .request(Method::POST, "/v1/cameras/front/reconnect")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    let outcomes: Vec<(&str, &str)> = answer["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap(),
                t["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes, [("go2rtc", "done"), ("mediamtx", "done")]);
    assert_eq!(f.go2rtc.write_count() - g0, 2, "a delete and an add");
    assert!(f.mtx().write_count() - m0 >= 2, "a delete and an add");
    assert_eq!(
        f.go2rtc.stream_sources("front"),
        Some(vec![with_credentials("rtsp://192.0.2.10/a")])
    );
    assert!(f.mtx().path_names().contains(&"front".to_string()));
    let seen = read_events(&mut events, |e| {
        e["type"] == "reconnect" && e["target"] == "mediamtx"
    })
    .await;
    assert!(
        seen.iter()
            .any(|e| e["type"] == "reconnect" && e["target"] == "go2rtc" && e["outcome"] == "done")
    );

    // One target only.
    let g1 = f.go2rtc.write_count();
    let answer: Value = api
        .request(Method::POST, "/v1/cameras/front/reconnect?target=mediamtx")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["targets"].as_array().unwrap().len(), 1);
    assert_eq!(f.go2rtc.write_count(), g1, "go2rtc untouched");

    let (status, why) = api
        .error(Method::POST, "/v1/cameras/front/reconnect?target=nope")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        why.contains("\"nope\"") && why.contains("go2rtc, mediamtx"),
        "{why}"
    );
    let (status, why) = api.error(Method::POST, "/v1/cameras/mine/reconnect").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a hand-made stream is not a camera: {why}"
    );
    assert!(why.contains("\"mine\""), "{why}");
    assert_eq!(
        f.go2rtc.stream_sources("mine"),
        Some(vec!["rtsp://192.0.2.99/x".to_string()])
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_reads_the_source_afresh_and_writes_nothing() {
    let f = Fixture::new().await;
    f.write_cameras(&[
        ("front", "rtsp://192.0.2.10/a"),
        ("back", "rtsp://192.0.2.11/b"),
    ]);
    let api = start(&f, "").await;
    let plan = api.json("/v1/plan").await;
    assert_eq!(plan["applied"], false);
    assert_eq!(plan["targets"][0]["counts"]["unchanged"], 2);
    // A new password (the watch is on the inventory file, so only a fresh read sees it).
    std::fs::write(f.path("cam.password"), "another-secret\n").unwrap();
    let writes = f.go2rtc.write_count();
    let plan = api.json("/v1/plan").await;
    assert_eq!(plan["targets"][0]["counts"]["update"], 2, "{plan}");
    assert_eq!(f.go2rtc.write_count(), writes);
    assert!(!plan.to_string().contains("another-secret"));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_an_inventory_and_a_first_sync() {
    let f = Fixture::new().await;
    std::fs::write(f.path("cameras.yaml"), "").unwrap();
    let api = start_plain(&f).await;
    api.until("the empty file error", |s| s.source_errors >= 1)
        .await;
    assert_eq!(
        api.anonymous(Method::GET, "/healthz")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let response = api.anonymous(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"ready": false, "inventory_loaded": false, "first_sync_done": false})
    );
    // No token configured on loopback: /v1 is open, and a webhook works unsigned.
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    let response = api
        .anonymous(Method::POST, "/v1/webhook/camera-changed")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    api.until("a sync", |s| s.syncs >= 1).await;
    let response = api.anonymous(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    api.stop().await;
}

/// Reads server-sent events until `last` matches one; returns them all.
async fn read_events(response: &mut Response, last: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    loop {
        let chunk = tokio::time::timeout(DEADLINE, response.chunk())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("the stream goes on");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let mut id = None;
            let mut data = None;
            for line in message.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.parse::<u64>().unwrap());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(v).unwrap());
                }
            }
            let Some(event) = data else { continue };
            if let Some(id) = id {
                assert_eq!(event["seq"], id, "the SSE id is the sequence number");
            }
            let done = last(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order_from_the_request_to_the_end_of_its_sync() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    let api = start(&f, "").await;
    let mut stream = api.request(Method::GET, "/v1/events").send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    f.write_cameras(&[
        ("front", "rtsp://192.0.2.10/b"),
        ("back", "rtsp://192.0.2.11/b"),
        ("side", "rtsp://192.0.2.12/c"),
    ]);
    api.webhook("{}").await;
    let events = read_events(&mut stream, |e| e["type"] == "sync_finished").await;
    assert_no_secret(&serde_json::to_string(&events).unwrap());
    // A camera's own events are kept for its history (the status page's timeline).
    let history = api.json("/v1/cameras/front/events").await;
    assert_no_secret(&history.to_string());
    let kept = history["events"].as_array().unwrap();
    assert!(kept.iter().all(|e| e["camera"] == "front"), "{history}");
    let front_update = events
        .iter()
        .find(|e| e["type"] == "sync_action" && e["camera"] == "front")
        .unwrap();
    assert!(kept.contains(front_update), "{history}");
    let (status, why) = api.error(Method::GET, "/v1/cameras/nope/events").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{why}");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive: {seqs:?}"
    );
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "inventory_loaded",
            "sync_started",
            "sync_action",
            "sync_action",
            "sync_action",
            "sync_finished"
        ]
    );
    let actions: BTreeMap<&str, &str> = events
        .iter()
        .filter(|e| e["type"] == "sync_action")
        .map(|e| (e["camera"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        BTreeMap::from([("back", "create"), ("front", "update"), ("side", "create")])
    );
    assert_eq!(events[5]["ok"], true);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_transition_and_recovery_reach_events_cameras_and_metrics() {
    let camera = SimCamera::start().await.unwrap();
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    std::fs::write(
        f.path("cameras.yaml"),
        format!(
            "cameras:\n  - name: door\n    url: {}\n    targets: [mediamtx]\n",
            camera.url("s")
        ),
    )
    .unwrap();
    let api = start(
        &f,
        "restart_check: 1h\nhealth:\n  interval: 100ms\n  grace: 100ms\n  idle_probe: 1h\n  probe_timeout: 2s\n",
    )
    .await;
    // A new stream is unverified until the monitor sees it served.
    let until = tokio::time::Instant::now() + DEADLINE;
    while api.json("/v1/cameras/door").await["targets"][1]["health"]["state"] != "healthy" {
        assert!(tokio::time::Instant::now() < until, "never verified");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut stream = api.request(Method::GET, "/v1/events").send().await.unwrap();
    // The path disappears behind camsync's back; the monitor re-adds it and times the recovery.
    let deleted = reqwest::Client::new()
        .delete(format!("{}/v3/config/paths/delete/door", f.mtx().api_url()))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let events = read_events(&mut stream, |e| e["type"] == "recovery").await;
    let health: Vec<&Value> = events.iter().filter(|e| e["type"] == "health").collect();
    assert_eq!(health[0]["camera"], "door");
    assert_eq!(health[0]["target"], "mediamtx");
    assert_eq!(health[0]["from"], "healthy");
    assert_eq!(health[0]["to"], "recovering");
    assert_eq!(health[0]["attempt"], 1);
    assert!(health[0]["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(health.last().unwrap()["to"], "healthy");
    assert!(
        health.last().unwrap()["seconds_in_previous"]
            .as_f64()
            .is_some()
    );
    let recovery = events.last().unwrap();
    assert!(recovery["recovery_seconds"].as_f64().unwrap() > 0.0);
    assert!(f.mtx().path_names().contains(&"door".to_string()));

    let door = api.json("/v1/cameras/door").await;
    let pair = &door["targets"][1];
    assert_eq!(pair["health"]["state"], "healthy");
    assert_eq!(pair["last_transition"]["to"], "healthy");
    assert!(pair["last_recovery"]["seconds"].as_f64().unwrap() > 0.0);

    let series = api.metrics().await;
    assert_eq!(
        series[r#"camsync_recoveries_total{target="mediamtx"}"#],
        1.0
    );
    assert_eq!(
        series[r#"camsync_streams{target="mediamtx",state="healthy"}"#],
        1.0
    );
    assert_eq!(
        series[r#"camsync_recovery_duration_seconds_count{target="mediamtx"}"#],
        1.0
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_count_what_happened() {
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    f.write_cameras(&[
        ("front", "rtsp://192.0.2.10/a"),
        ("back", "rtsp://192.0.2.11/b"),
    ]);
    let api = start(&f, "").await;
    api.json("/v1/cameras").await;
    let response = api.anonymous(Method::GET, "/metrics").send().await.unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    assert_no_secret(&text);
    let series = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for (name, value) in [
        (r#"camsync_syncs_total{outcome="ok"}"#, 1.0),
        (
            r#"camsync_writes_total{target="go2rtc",action="create",outcome="done"}"#,
            2.0,
        ),
        (
            r#"camsync_writes_total{target="mediamtx",action="create",outcome="done"}"#,
            2.0,
        ),
        (
            r#"camsync_target_syncs_total{target="mediamtx",status="converged"}"#,
            1.0,
        ),
        (
            r#"camsync_target_call_duration_seconds_count{target="go2rtc",operation="create",outcome="ok"}"#,
            2.0,
        ),
        ("camsync_inventory_loads_total", 1.0),
        ("camsync_cameras", 2.0),
        ("camsync_source_errors_total", 0.0),
        (
            r#"camsync_http_requests_total{route="/v1/cameras",status="200"}"#,
            1.0,
        ),
    ] {
        assert_eq!(series.get(name), Some(&value), "{name} in\n{text}");
    }
    let last = series[r#"camsync_last_successful_sync_timestamp_seconds{target="go2rtc"}"#];
    assert!((last - now() as f64).abs() < 60.0, "a Unix time: {last}");
    assert!(
        series.keys().all(|k| !k.contains("front")),
        "no camera names in labels"
    );
    api.stop().await;
}

/// Checks the OpenMetrics/Prometheus text format line by line and returns every sample as
/// `name{labels}` → value. Every sample must belong to a family declared by `# TYPE` before it,
/// with the suffixes its type allows; label values must be quoted and escaped; the text ends
/// with `# EOF`.
fn parse_exposition(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let valid_name = |s: &str| {
        !s.is_empty()
            && s.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let mut ended = false;
    for line in text.lines() {
        if ended {
            return Err(format!("content after # EOF: {line:?}"));
        }
        if line == "# EOF" {
            ended = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !valid_name(name) {
                return Err(format!("bad metric name in {line:?}"));
            }
            match keyword {
                "TYPE" => {
                    let kind = parts.next().unwrap_or("");
                    if ![
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "unknown",
                        "info",
                        "stateset",
                        "gaugehistogram",
                    ]
                    .contains(&kind)
                    {
                        return Err(format!("bad type in {line:?}"));
                    }
                    if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(format!("{name} declared twice"));
                    }
                }
                "HELP" | "UNIT" => {}
                _ => return Err(format!("unknown descriptor {line:?}")),
            }
            continue;
        }
        let (series, value) = match line.find('{') {
            Some(open) => {
                let close = line
                    .rfind('}')
                    .ok_or(format!("unclosed labels in {line:?}"))?;
                let labels = &line[open + 1..close];
                check_labels(labels).map_err(|e| format!("{e} in {line:?}"))?;
                (&line[..=close], line[close + 1..].trim())
            }
            None => line
                .split_once(' ')
                .ok_or(format!("no value in {line:?}"))?,
        };
        let name = series.split('{').next().unwrap_or_default();
        if !valid_name(name) {
            return Err(format!("bad sample name in {line:?}"));
        }
        let family = types.iter().any(|(family, kind)| {
            let suffixes: &[&str] = match kind.as_str() {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                _ => &[""],
            };
            suffixes.iter().any(|s| name == format!("{family}{s}"))
        });
        if !family {
            return Err(format!("sample {name} has no declared family"));
        }
        let value = value.split(' ').next().unwrap_or_default();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| format!("bad value in {line:?}"))?,
        };
        if samples.insert(series.to_owned(), value).is_some() {
            return Err(format!("duplicate series {series}"));
        }
    }
    if !ended {
        return Err("no # EOF at the end".into());
    }
    Ok(samples)
}

fn check_labels(labels: &str) -> Result<(), String> {
    let mut rest = labels;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").ok_or("a label without =\"")?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name {name:?}"));
        }
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\' | '"' | 'n')) => {}
                    _ => return Err("bad escape".into()),
                },
                Some((i, '"')) => break i,
                Some(_) => {}
                None => return Err("unterminated label value".into()),
            }
        };
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(())
}

/// A single-threaded runtime: the events below are all published before the event stream's
/// task can forward any, so the subscriber is certain to fall behind.
#[tokio::test]
async fn a_client_that_falls_behind_is_told_how_many_events_it_missed() {
    use std::sync::Arc;

    use camsync::activity::Activity;
    use camsync::api::{ApiParts, ApiState};
    use camsync::config::ApiConfig;
    use camsync::events::{Event, EventBus};
    use camsync::ledger::Ledger;
    use camsync::metrics::Metrics;
    use camsync::reconcile::Reconciler;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let activity = Arc::new(Activity::with_events(
        Arc::new(Metrics::new()),
        EventBus::with_capacity(4),
    ));
    let ledger = Arc::new(Ledger::in_memory().unwrap());
    let shutdown = CancellationToken::new();
    let plan = Reconciler::new(Vec::new(), ledger, false);
    let tasks = tokio_util::task::TaskTracker::new();
    let workers = plan
        .start(
            Arc::new(camsync::reconcile::worker::Quiet),
            &shutdown,
            &tasks,
        )
        .unwrap();
    let state = ApiState::new(ApiParts {
        config: ApiConfig::default(),
        activity: activity.clone(),
        workers: Arc::new(workers),
        targets: Vec::new(),
        plan: Arc::new(plan),
        source: Arc::new(camsync::source::Source::new(&unused_config())),
        resolver: Arc::new(camsync::resolve::Resolver::start(&unused_config()).unwrap()),
        shutdown: shutdown.clone(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(api::serve(listener, state, shutdown.clone()));
    let http = reqwest::Client::new();
    let mut stream = http.get(format!("{base}/v1/events")).send().await.unwrap();
    for n in 0..10 {
        activity.publish(Event::InventoryLoaded {
            cameras: n,
            rejected: 0,
        });
    }
    let events = read_events(&mut stream, |e| e["cameras"] == 9).await;
    assert_eq!(events[0], json!({"type": "missed", "count": 6}));
    let rest: Vec<u64> = events[1..]
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        rest,
        [7, 8, 9, 10],
        "the stream goes on with the newest events"
    );
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    let series = parse_exposition(&metrics.text().await.unwrap()).unwrap();
    assert_eq!(series["camsync_events_missed_total"], 6.0);
    shutdown.cancel();
    let stopped = tokio::time::timeout(DEADLINE, server).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "an open event stream does not hold up the shutdown"
    );
}

/// A config whose targets and camera file are never used.
fn unused_config() -> camsync::config::Config {
    let text = "source:\n  file: cameras.yaml\ntargets:\n  - name: g\n    kind: go2rtc\n    api: http://127.0.0.1:9\nhealth:\n  enabled: false\n";
    camsync::config::parse(
        text,
        std::path::Path::new("/nonexistent/camsync.yaml"),
        &|_| None,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_keeps_failing_is_degraded_everywhere_until_it_is_written() {
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    std::fs::write(f.path("cameras.yaml"), "cameras: []\n").unwrap();
    let api = start(
        &f,
        "retry:\n  min: 20ms\n  max: 100ms\n  degraded_after: 3\n",
    )
    .await;
    let mut stream = api.request(Method::GET, "/v1/events").send().await.unwrap();
    f.mtx().set_failing_writes(true);
    std::fs::write(
        f.path("cameras.yaml"),
        "cameras:\n  - name: door\n    url: rtsp://192.0.2.1/door\n    targets: [mediamtx]\n",
    )
    .unwrap();
    let events = read_events(&mut stream, |e| e["type"] == "degraded").await;
    let degraded = events.last().unwrap();
    assert_eq!(degraded["camera"], "door");
    assert_eq!(degraded["target"], "mediamtx");
    assert_eq!(degraded["degraded"], true);
    assert!(
        degraded["detail"]
            .as_str()
            .is_some_and(|d| d.contains("500")),
        "{degraded}"
    );

    let cameras = api.json("/v1/cameras").await;
    assert_eq!(cameras["queues"]["mediamtx"]["degraded"], json!(["door"]));
    assert_eq!(cameras["queues"]["go2rtc"]["degraded"], json!([]));
    assert!(cameras["queues"]["mediamtx"]["failed"].as_u64().unwrap() >= 3);
    let waiting = &cameras["queues"]["mediamtx"]["waiting"];
    assert!(
        waiting["change"].is_u64() && waiting["recover"].is_u64(),
        "{waiting}"
    );
    let pair = &cameras["cameras"][0]["targets"][1];
    assert_eq!(pair["target"], "mediamtx");
    assert_eq!(pair["degraded"], true, "{pair}");
    let table = camsync::status::render_text(&cameras);
    assert!(
        table.contains("DEGRADED on mediamtx (failing again and again, still retried): door"),
        "{table}"
    );
    assert!(!camsync::status::all_well(&cameras));
    let series = api.metrics().await;
    assert_eq!(
        series[r#"camsync_degraded_streams{target="mediamtx"}"#],
        1.0
    );

    // The server answers again: the next retry writes it, without a resync or a restart.
    f.mtx().set_failing_writes(false);
    let events = read_events(&mut stream, |e| e["type"] == "degraded").await;
    assert_eq!(events.last().unwrap()["degraded"], false);
    assert_eq!(f.mtx().path_names(), ["door"]);
    let pair = &api.json("/v1/cameras/door").await["targets"][1];
    assert_eq!(pair["degraded"], false, "{pair}");
    api.stop().await;
}

/// A camera that refuses connections is never shown healthy: it is unverified until the first
/// probe, which finds it offline (an idle stream's regular probe may be minutes away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_camera_is_offline_at_the_first_round_never_healthy() {
    let (_closed, port) = refusing_port();
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    std::fs::write(
        f.path("cameras.yaml"),
        format!("cameras:\n  - name: door\n    url: rtsp://127.0.0.1:{port}/s\n    targets: [mediamtx]\n"),
    )
    .unwrap();
    let api = start(
        &f,
        "restart_check: 1h\nhealth:\n  interval: 100ms\n  grace: 100ms\n  idle_probe: 1h\n  probe_timeout: 2s\n",
    )
    .await;
    let until = tokio::time::Instant::now() + DEADLINE;
    let state = loop {
        let door = api.json("/v1/cameras/door").await;
        let state = door["targets"][1]["health"]["state"].clone();
        if state != "unverified" && !state.is_null() {
            break state;
        }
        assert!(tokio::time::Instant::now() < until, "no verdict: {door}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(state, "camera-offline");
    api.stop().await;
}

/// Opens `n` connections to the API: a third send nothing, a third half a header, a third a
/// header without its last line.
async fn idle_connections(api: &Api, n: usize) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let addr = api.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let partial: &[u8] = match i % 3 {
            0 => b"",
            1 => b"GET /heal",
            _ => b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        };
        stream.write_all(partial).await.unwrap();
        held.push(stream);
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_limit_do_not_keep_healthz_or_sync_out() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    // The default limit (256 connections) and header timeout (10 s): 300 idle connections
    // must not hold off the next caller until they time out.
    let api = start(&f, "").await;
    let held = idle_connections(&api, 300).await;
    let quick = Duration::from_secs(3);
    let health = tokio::time::timeout(quick, api.anonymous(Method::GET, "/healthz").send())
        .await
        .expect("/healthz answers within 3 s beside 300 idle connections")
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let sync = tokio::time::timeout(quick, api.request(Method::POST, "/v1/sync").send())
        .await
        .expect("POST /v1/sync answers within 3 s beside 300 idle connections")
        .unwrap();
    assert_eq!(sync.status(), StatusCode::ACCEPTED);
    drop(held);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_or_half_a_header_is_closed() {
    use tokio::io::AsyncReadExt;
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    let api = start(&f, "  header_timeout: 1s\n").await;
    for mut stream in idle_connections(&api, 3).await {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut rest)).await;
        assert!(
            matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
            "the server closes a connection without a whole header"
        );
    }
    // A kept-alive connection that goes quiet is closed too.
    let mut stream = tokio::net::TcpStream::connect(api.base.trim_start_matches("http://"))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "an idle kept-alive connection is closed"
    );
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_headers_and_urls_are_refused_with_431_and_414() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    let api = start(&f, "").await;
    let mut many = api.anonymous(Method::GET, "/healthz");
    for i in 0..api::MAX_HEADERS + 1 {
        many = many.header(format!("x-h{i}"), "1");
    }
    assert_eq!(
        many.send().await.unwrap().status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let big = api
        .anonymous(Method::GET, "/healthz")
        .header("x-big", "a".repeat(api::MAX_HEADER_BYTES))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let long = api
        .request(
            Method::GET,
            &format!("/v1/cameras/{}", "c".repeat(api::MAX_URL_BYTES)),
        )
        .send()
        .await
        .unwrap();
    let (status, why) = error_of(long).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    assert!(why.contains(&api::MAX_URL_BYTES.to_string()), "{why}");
    let fine = api.anonymous(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(fine.status(), StatusCode::OK);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_beyond_the_limit_are_refused_with_503() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    let api = start(&f, "  max_event_streams: 2\n").await;
    let first = api.request(Method::GET, "/v1/events").send().await.unwrap();
    let second = api.request(Method::GET, "/v1/events").send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let (status, why) = api.error(Method::GET, "/v1/events").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(why.contains("api.max_event_streams"), "{why}");
    // A closed stream frees its place (the server sees it gone at its next write).
    drop(first);
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let again = api.request(Method::GET, "/v1/events").send().await.unwrap();
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "a closed stream's place is freed"
        );
        api.request(Method::POST, "/v1/sync").send().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_connections_stay_open_and_idle_ones_make_room() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    let api = start(&f, "  max_connections: 8\n").await;
    let mut held = idle_connections(&api, 50).await;
    // Well before the header timeout (10 s), the server has closed all but 8 of them.
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut open = Vec::new();
        for stream in held {
            let mut byte = [0u8; 1];
            match stream.try_read(&mut byte) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open.push(stream),
                _ => {} // closed (or reset) by the server
            }
        }
        held = open;
        if held.len() <= 8 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{} connections still open with max_connections 8",
            held.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = api.anonymous(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_name_with_a_slash_is_addressed_percent_encoded_and_the_404_says_so() {
    let f = Fixture::new().await;
    f.write_cameras(&[("site/door", "rtsp://192.0.2.1/door")]);
    let api = start(&f, "").await;
    let door = api.json("/v1/cameras/site%2Fdoor").await;
    assert_eq!(door["name"], "site/door");
    for (method, path, hint) in [
        (
            Method::GET,
            "/v1/cameras/site/door",
            "/v1/cameras/site%2Fdoor",
        ),
        (
            Method::POST,
            "/v1/cameras/site/door/reconnect",
            "/v1/cameras/site%2Fdoor/reconnect",
        ),
    ] {
        let (status, error) = api.error(method, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(error.contains(hint), "{error}");
    }
    api.stop().await;
}

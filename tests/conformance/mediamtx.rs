//! MediaMTX scenarios (SERVERS.md, "MediaMTX"): the config API camsync writes and reads,
//! paging, value normalisation, restart and file reload, and what the RTSP server answers.

use std::time::Duration;

use camsync_sim::camera::SimCamera;
use serde_json::{Value, json};

use crate::backend::Mediamtx;
use crate::conformance;
use crate::wire::{Answer, describe, get, http, until};

conformance!(
    mediamtx,
    paths_are_added_patched_replaced_and_deleted,
    unknown_fields_are_refused,
    path_list_is_paged_and_sorted,
    values_come_back_normalised,
    a_restart_forgets_api_paths,
    a_file_reload_replaces_api_paths,
    a_file_it_cannot_load_stops_the_server,
    a_write_to_a_path_drops_its_readers_and_no_others,
    rtsp_answers_unknown_down_and_streaming,
    on_demand_source_that_hangs_is_given_up,
    a_lost_source_is_retried_after_5_s_and_delete_add_dials_at_once,
    an_always_available_path_answers_while_its_camera_is_down,
    a_file_change_within_a_second_of_a_reload_is_never_loaded,
    two_syncs_half_a_second_apart_both_reach_the_server,
    two_syncs_half_a_second_apart_both_reach_the_server_with_api,
);

conformance!(
    mediamtx,
    api_needs_its_user_when_one_is_configured,
    sim: crate::backend::Mediamtx::sim_with(camsync_sim::mediamtx::MediamtxSimOptions {
        username: Some("admin".into()),
        password: Some("s3cret".into()),
        ..Default::default()
    }),
    real: crate::backend::Mediamtx::real_with(&crate::backend::mediamtx_users(&[
        ("admin", "s3cret", &["api"]),
        ("any", "", &["read", "publish"]),
    ])),
);

conformance!(
    mediamtx,
    reads_need_their_user_when_one_is_configured,
    sim: crate::backend::Mediamtx::sim_with(camsync_sim::mediamtx::MediamtxSimOptions {
        read_user: Some(("viewer".into(), "s3cret".into())),
        ..Default::default()
    }),
    real: crate::backend::Mediamtx::real_with(&crate::backend::mediamtx_users(&[
        ("any", "", &["api", "publish"]),
        ("viewer", "s3cret", &["read"]),
    ])),
);

fn ok() -> Answer {
    Answer {
        status: 200,
        body: r#"{"status":"ok"}"#.to_owned(),
    }
}

fn error(status: u16, text: &str) -> Answer {
    Answer {
        status,
        body: format!(r#"{{"status":"error","error":{}}}"#, json!(text)),
    }
}

async fn config(m: &Mediamtx, verb: &str, name: &str, body: Option<Value>) -> Answer {
    let method = match verb {
        "add" | "replace" => "POST",
        "patch" => "PATCH",
        "delete" => "DELETE",
        _ => "GET",
    };
    http(
        method,
        &m.api(&format!("/v3/config/paths/{verb}/{name}")),
        body,
    )
    .await
}

async fn paths_are_added_patched_replaced_and_deleted(m: Mediamtx) {
    let info = get(&m.api("/v3/info")).await;
    assert_eq!(info.status, 200, "{}", m.label());
    assert_eq!(info.json()["version"], "v1.16.2", "{}", m.label());

    let cam = json!({"source": "rtsp://127.0.0.1:9/a", "sourceOnDemand": true});
    assert_eq!(
        config(&m, "add", "site/cam", Some(cam.clone())).await,
        ok(),
        "{}",
        m.label()
    );
    assert_eq!(
        config(&m, "add", "site/cam", Some(cam)).await,
        error(400, "path already exists"),
        "{}: add twice",
        m.label()
    );
    let got = config(&m, "get", "site/cam", None).await;
    assert_eq!(got.status, 200, "{}", m.label());
    assert_eq!(
        got.json()["source"],
        "rtsp://127.0.0.1:9/a",
        "{}",
        m.label()
    );
    assert_eq!(got.json()["name"], "site/cam", "{}", m.label());
    assert_eq!(
        config(&m, "get", "other", None).await,
        error(404, "path configuration not found"),
        "{}",
        m.label()
    );

    let patch = json!({"maxReaders": 3});
    assert_eq!(
        config(&m, "patch", "site/cam", Some(patch.clone())).await,
        ok()
    );
    let got = config(&m, "get", "site/cam", None).await.json();
    assert_eq!(
        (&got["maxReaders"], &got["sourceOnDemand"]),
        (&json!(3), &json!(true))
    );
    assert_eq!(
        config(&m, "patch", "other", Some(patch)).await,
        error(404, "path not found"),
        "{}: patch of a missing path",
        m.label()
    );

    let b = json!({"source": "rtsp://127.0.0.1:9/b"});
    assert_eq!(
        config(&m, "replace", "site/cam", Some(b.clone())).await,
        ok()
    );
    let got = config(&m, "get", "site/cam", None).await.json();
    assert_eq!(
        (&got["source"], &got["maxReaders"], &got["sourceOnDemand"]),
        (&json!("rtsp://127.0.0.1:9/b"), &json!(0), &json!(false)),
        "{}: replace resets what it does not send",
        m.label()
    );
    assert_eq!(
        config(&m, "replace", "new", Some(b)).await,
        ok(),
        "{}: upsert",
        m.label()
    );

    assert_eq!(config(&m, "delete", "site/cam", None).await, ok());
    assert_eq!(
        config(&m, "delete", "site/cam", None).await,
        error(404, "path not found"),
        "{}: delete twice",
        m.label()
    );
    let notfound = get(&m.api("/v3/nothing")).await;
    assert_eq!(notfound.status, 404, "{}", m.label());
}

async fn unknown_fields_are_refused(m: Mediamtx) {
    let body = json!({"source": "rtsp://127.0.0.1:9/a", "x": 1});
    assert_eq!(
        config(&m, "add", "cam", Some(body)).await,
        error(400, "json: unknown field \"x\""),
        "{}",
        m.label()
    );
    assert_eq!(config(&m, "get", "cam", None).await.status, 404);
}

async fn path_list_is_paged_and_sorted(m: Mediamtx) {
    for name in ["c", "a", "b"] {
        let body = json!({"source": "rtsp://127.0.0.1:9/x", "sourceOnDemand": true});
        assert_eq!(config(&m, "add", name, Some(body)).await, ok());
    }
    let page = |p: u32| {
        let url = m.api(&format!("/v3/config/paths/list?page={p}&itemsPerPage=2"));
        async move { get(&url).await.json() }
    };
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str().map(str::to_owned))
            .collect()
    };
    let first = page(0).await;
    assert_eq!(
        (&first["itemCount"], &first["pageCount"]),
        (&json!(3), &json!(2))
    );
    assert_eq!(names(&first), ["a", "b"], "{}", m.label());
    assert_eq!(names(&page(1).await), ["c"], "{}", m.label());
    let all = get(&m.api("/v3/config/paths/list")).await.json();
    assert_eq!(names(&all), ["a", "b", "c"], "{}", m.label());
}

async fn values_come_back_normalised(m: Mediamtx) {
    let body = json!({
        "source": "rtsp://127.0.0.1:9/x",
        "sourceOnDemand": true,
        "sourceOnDemandStartTimeout": "10000ms",
        "sourceOnDemandCloseAfter": "90s",
        "recordPath": "./rec/%path/%Y-%m-%d_%H-%M-%S-%f",
        "recordSegmentDuration": "60m",
        "recordDeleteAfter": "24h",
        "rtspTransport": "tcp",
    });
    assert_eq!(
        config(&m, "add", "cam", Some(body)).await,
        ok(),
        "{}",
        m.label()
    );
    let got = config(&m, "get", "cam", None).await.json();
    let fields = [
        "sourceOnDemandStartTimeout",
        "sourceOnDemandCloseAfter",
        "recordSegmentDuration",
        "recordDeleteAfter",
        "rtspTransport",
    ];
    let seen: Vec<&Value> = fields.iter().map(|f| &got[*f]).collect();
    assert_eq!(
        seen,
        [
            &json!("10s"),
            &json!("1m30s"),
            &json!("1h0m0s"),
            &json!("1d"),
            &json!("tcp")
        ],
        "{}",
        m.label()
    );
}

async fn a_restart_forgets_api_paths(mut m: Mediamtx) {
    let started = get(&m.api("/v3/info")).await.json()["started"].clone();
    let body = json!({"source": "rtsp://127.0.0.1:9/x", "sourceOnDemand": true});
    assert_eq!(config(&m, "add", "cam", Some(body)).await, ok());
    // `started` has a resolution of a second on some builds: restart in the next one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    m.restart().await;
    let up = until(Duration::from_secs(10), || async {
        let info = get(&m.api("/v3/info")).await;
        (info.status == 200).then(|| info.json()["started"].clone())
    })
    .await;
    assert!(
        up.is_some_and(|s| s != started),
        "{}: started changes",
        m.label()
    );
    assert_eq!(
        config(&m, "get", "cam", None).await.status,
        404,
        "{}",
        m.label()
    );
}

async fn a_file_reload_replaces_api_paths(m: Mediamtx) {
    let body = json!({"source": "rtsp://127.0.0.1:9/x", "sourceOnDemand": true});
    assert_eq!(config(&m, "add", "api", Some(body)).await, ok());
    m.write_paths("  file:\n    source: rtsp://127.0.0.1:9/f\n    sourceOnDemand: yes\n");
    let loaded = until(Duration::from_secs(5), || async {
        (config(&m, "get", "file", None).await.status == 200).then_some(())
    })
    .await;
    assert!(loaded.is_some(), "{}: the file's path is loaded", m.label());
    assert_eq!(
        config(&m, "get", "api", None).await.status,
        404,
        "{}",
        m.label()
    );
}

/// SERVERS.md: a changed file that MediaMTX cannot load stops it (the process exits, with
/// status 0): a `mediamtx-file` target must never write one.
async fn a_file_it_cannot_load_stops_the_server(m: Mediamtx) {
    assert_eq!(get(&m.api("/v3/info")).await.status, 200, "{}", m.label());
    m.write_paths(
        "  cam:
    noSuchField: yes
",
    );
    let info = m.api("/v3/info");
    let stopped = until(Duration::from_secs(5), || async {
        let answer = reqwest::Client::new()
            .get(&info)
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        answer.is_err().then_some(())
    })
    .await;
    assert!(stopped.is_some(), "{}: the API stops answering", m.label());
}

/// SERVERS.md: any field change of a path (even `sourceOnDemandCloseAfter`) recreates it and
/// drops its readers; a write to another path leaves them alone.
async fn a_write_to_a_path_drops_its_readers_and_no_others(m: Mediamtx) {
    let camera = SimCamera::start().await.unwrap();
    for name in ["front", "back"] {
        let body = json!({"source": camera.url(name), "rtspTransport": "tcp"});
        assert_eq!(config(&m, "add", name, Some(body)).await, ok());
    }
    let readers = |name: &'static str| {
        let m = &m;
        async move {
            let json = get(&m.api(&format!("/v3/paths/get/{name}"))).await.json();
            json["readers"].as_array().map_or(0, Vec::len)
        }
    };
    for name in ["front", "back"] {
        let ready = until(Duration::from_secs(10), || async {
            let json = get(&m.api(&format!("/v3/paths/get/{name}"))).await.json();
            (json["ready"] == true).then_some(())
        })
        .await;
        assert!(ready.is_some(), "{}: {name} ready", m.label());
    }
    let _front = m.attach_reader("front").await;
    let _back = m.attach_reader("back").await;
    assert_eq!(
        (readers("front").await, readers("back").await),
        (1, 1),
        "{}",
        m.label()
    );

    let patch = json!({"sourceOnDemandCloseAfter": "15s"});
    assert_eq!(config(&m, "patch", "front", Some(patch)).await, ok());
    let dropped = until(Duration::from_secs(5), || async {
        (readers("front").await == 0).then_some(())
    })
    .await;
    assert!(
        dropped.is_some(),
        "{}: the patched path's reader dropped",
        m.label()
    );
    assert_eq!(
        readers("back").await,
        1,
        "{}: the other path's reader stays",
        m.label()
    );
}

async fn rtsp_answers_unknown_down_and_streaming(m: Mediamtx) {
    let timeout = Duration::from_secs(15);
    let (unknown, _) = describe(&m.rtsp("nothing"), timeout).await;
    assert_eq!(unknown, Some(400), "{}: no such path", m.label());

    let camera = SimCamera::start().await.unwrap();
    let down = SimCamera::start().await.unwrap();
    down.stop().await;
    for (name, url) in [("up", camera.url("live")), ("down", down.url("live"))] {
        assert_eq!(
            config(&m, "add", name, Some(json!({"source": url}))).await,
            ok()
        );
    }
    let (status, took) = describe(&m.rtsp("down"), timeout).await;
    assert_eq!(status, Some(404), "{}: camera down", m.label());
    assert!(
        took < Duration::from_secs(2),
        "{}: at once: {took:?}",
        m.label()
    );

    let ready = until(Duration::from_secs(10), || async {
        let path = get(&m.api("/v3/paths/get/up")).await;
        let json = (path.status == 200).then(|| path.json())?;
        (json["ready"] == true && json["bytesReceived"].as_u64() > Some(0)).then_some(json)
    })
    .await;
    assert!(ready.is_some(), "{}: ready, bytes counted", m.label());
    assert_eq!(
        describe(&m.rtsp("up"), timeout).await.0,
        Some(200),
        "{}",
        m.label()
    );
    let state = get(&m.api("/v3/paths/get/down")).await.json();
    assert_eq!(state["ready"], false, "{}: {state}", m.label());
    let missing = get(&m.api("/v3/paths/get/nothing")).await;
    assert_eq!(missing, error(404, "path not found"), "{}", m.label());
}

async fn on_demand_source_that_hangs_is_given_up(m: Mediamtx) {
    let camera = SimCamera::start().await.unwrap();
    camera.hang();
    let body = json!({
        "source": camera.url("live"),
        "sourceOnDemand": true,
        "sourceOnDemandStartTimeout": "2s",
    });
    assert_eq!(config(&m, "add", "cam", Some(body)).await, ok());
    let (status, took) = describe(&m.rtsp("cam"), Duration::from_secs(10)).await;
    assert_eq!(status, Some(400), "{}: given up", m.label());
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{}: held for the start timeout: {took:?}",
        m.label()
    );
}

/// Whether path `name` is ready, polled until it is `want` or `within` has passed; the time it
/// took.
async fn ready_within(m: &Mediamtx, name: &str, want: bool, within: Duration) -> Option<Duration> {
    let started = std::time::Instant::now();
    until(within, || async {
        let path = get(&m.api(&format!("/v3/paths/get/{name}"))).await;
        let ready = path.status == 200 && path.json()["ready"] == true;
        (ready == want).then(|| started.elapsed())
    })
    .await
}

/// SERVERS.md, "Camera connections": a source that fails is dialled again after a fixed 5 s,
/// so a camera back at once after its source failed is served only at that retry; a delete +
/// add dials at once. Why camsync re-adds a path whose camera is back instead of waiting.
async fn a_lost_source_is_retried_after_5_s_and_delete_add_dials_at_once(m: Mediamtx) {
    let camera = SimCamera::start().await.unwrap();
    let body = json!({"source": camera.url("live")});
    assert_eq!(config(&m, "add", "cam", Some(body.clone())).await, ok());
    let up = ready_within(&m, "cam", true, Duration::from_secs(10)).await;
    assert!(up.is_some(), "{}: ready at first", m.label());

    // The camera goes away and is back as soon as the server has noticed.
    camera.stop().await;
    let down = ready_within(&m, "cam", false, Duration::from_secs(15)).await;
    assert!(
        down.is_some(),
        "{}: not ready while the camera is down",
        m.label()
    );
    camera.resume().await.unwrap();
    let back = ready_within(&m, "cam", true, Duration::from_secs(12)).await;
    let back = back.unwrap_or_else(|| panic!("{}: ready again after the retry", m.label()));
    assert!(
        back >= Duration::from_secs(3),
        "{}: served again after {back:?}, before the 5 s retry",
        m.label()
    );

    // The same again, but the path is deleted and added once the camera is back.
    camera.stop().await;
    let down = ready_within(&m, "cam", false, Duration::from_secs(15)).await;
    assert!(down.is_some(), "{}: not ready again", m.label());
    camera.resume().await.unwrap();
    assert_eq!(config(&m, "delete", "cam", None).await, ok());
    assert_eq!(config(&m, "add", "cam", Some(body)).await, ok());
    let back = ready_within(&m, "cam", true, Duration::from_secs(12)).await;
    let back = back.unwrap_or_else(|| panic!("{}: ready again after delete + add", m.label()));
    assert!(
        back < Duration::from_secs(2),
        "{}: delete + add served after {back:?}",
        m.label()
    );
}

/// SERVERS.md, "RTSP": `alwaysAvailable` answers DESCRIBE 200 (an offline slate) while the
/// camera is down, so a DESCRIBE through MediaMTX cannot tell camsync such a camera is down.
async fn an_always_available_path_answers_while_its_camera_is_down(m: Mediamtx) {
    let down = SimCamera::start().await.unwrap();
    down.stop().await;
    let body = json!({"source": down.url("live"), "alwaysAvailable": true});
    assert_eq!(config(&m, "add", "slate", Some(body)).await, ok());
    let plain = json!({"source": down.url("live")});
    assert_eq!(config(&m, "add", "plain", Some(plain)).await, ok());
    let timeout = Duration::from_secs(15);
    let slate = until(Duration::from_secs(10), || async {
        let (status, _) = describe(&m.rtsp("slate"), timeout).await;
        (status == Some(200)).then_some(())
    })
    .await;
    assert!(slate.is_some(), "{}: 200 from the slate", m.label());
    assert_eq!(
        describe(&m.rtsp("plain"), timeout).await.0,
        Some(404),
        "{}: without it, camera down",
        m.label()
    );
    // Ready, with a track and bytes flowing: nothing in its state says the camera is down.
    let state = until(Duration::from_secs(5), || async {
        let state = get(&m.api("/v3/paths/get/slate")).await.json();
        (state["bytesReceived"].as_u64() > Some(0)).then_some(state)
    })
    .await;
    let state = state.unwrap_or_else(|| panic!("{}: the slate's bytes are counted", m.label()));
    assert_eq!(state["ready"], true, "{}: {state}", m.label());
    assert_eq!(state["available"], true, "{}: {state}", m.label());
    assert_eq!(state["tracks"], json!(["H264"]), "{}: {state}", m.label());
}

/// SERVERS.md, "Auth": with the `api` permission given to one user, a call without credentials
/// or with wrong ones is refused with 401, and one with them (HTTP Basic, as camsync sends
/// `targets[].username`/`password`) answers.
async fn api_needs_its_user_when_one_is_configured(m: Mediamtx) {
    let refused = error(401, "authentication error");
    let (anonymous, challenge) = list_as(&m, None).await;
    assert_eq!(anonymous, refused, "{}: no credentials", m.label());
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Basic realm="mediamtx""#),
        "{}: asks for them",
        m.label()
    );
    let (wrong, _) = list_as(&m, Some(("admin", "wrong"))).await;
    assert_eq!(wrong, refused, "{}: wrong password", m.label());
    let (right, _) = list_as(&m, Some(("admin", "s3cret"))).await;
    assert_eq!(right.status, 200, "{}: {right:?}", m.label());
    assert_eq!(right.json()["itemCount"], 0, "{}", m.label());
}

/// The path list as `user`, and the challenge of the answer.
async fn list_as(m: &Mediamtx, user: Option<(&str, &str)>) -> (Answer, Option<String>) {
    let client = reqwest::Client::new();
    let mut request = client
        .get(m.api("/v3/config/paths/list"))
        .timeout(Duration::from_secs(30));
    if let Some((user, pass)) = user {
        request = request.basic_auth(user, Some(pass));
    }
    let response = request.send().await.expect("the API answers");
    let challenge = (response.headers().get("www-authenticate"))
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    (Answer { status, body }, challenge)
}

/// SERVERS.md, "RTSP": with the read permission given to one user, a DESCRIBE without
/// credentials is answered 401 and one with them 200. camsync's probes carry none, so such a
/// stream is judged by the server's own signals (README, *How recovery works*).
async fn reads_need_their_user_when_one_is_configured(m: Mediamtx) {
    let camera = SimCamera::start().await.unwrap();
    let body = json!({"source": camera.url("live")});
    assert_eq!(config(&m, "add", "cam", Some(body)).await, ok());
    let ready = until(Duration::from_secs(10), || async {
        let path = get(&m.api("/v3/paths/get/cam")).await;
        (path.status == 200 && path.json()["ready"] == true).then_some(())
    })
    .await;
    assert!(ready.is_some(), "{}: ready", m.label());
    let anonymous = describe(&m.rtsp("cam"), Duration::from_secs(15)).await.0;
    assert_eq!(anonymous, Some(401), "{}: anonymous", m.label());
    assert_eq!(
        describe_as(&m, None).await,
        Some(401),
        "{}: camsync's probe",
        m.label()
    );
    assert_eq!(
        describe_as(&m, Some(("viewer", "wrong"))).await,
        Some(401),
        "{}: wrong password",
        m.label()
    );
    assert_eq!(
        describe_as(&m, Some(("viewer", "s3cret"))).await,
        Some(200),
        "{}: the reader's credentials",
        m.label()
    );
}

/// A `DESCRIBE` of path `cam` through camsync's own RTSP client, as `user`.
async fn describe_as(m: &Mediamtx, user: Option<(&str, &str)>) -> Option<u16> {
    let probe = camsync::health::probe::Probe {
        url: url::Url::parse(&m.rtsp("cam")).expect("url"),
        credentials: user.map(|(u, p)| (u.to_owned(), camsync::secret::Secret::new(p))),
        timeout: Duration::from_secs(15),
    };
    probe.describe().await.ok().map(|answer| answer.status)
}

async fn has_path(m: &Mediamtx, name: &str) -> bool {
    config(m, "get", name, None).await.status == 200
}

/// The lost write of issue 13, on the server alone: a change 0.5 s after a reloaded one is
/// not loaded, not even seconds later.
async fn a_file_change_within_a_second_of_a_reload_is_never_loaded(m: Mediamtx) {
    let path = |name: &str| format!("  {name}:\n    source: publisher\n");
    m.write_paths(&path("first"));
    let loaded = until(Duration::from_secs(5), || async {
        has_path(&m, "first").await.then_some(())
    })
    .await;
    assert!(
        loaded.is_some(),
        "{}: the first change is loaded",
        m.label()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    m.write_paths(&format!("{}{}", path("first"), path("second")));
    // A negative: nothing to poll for but the time it is given.
    let second = until(Duration::from_secs(3), || async {
        has_path(&m, "second").await.then_some(())
    })
    .await;
    assert!(
        second.is_none(),
        "{}: the second change was loaded",
        m.label()
    );
}

async fn two_syncs_half_a_second_apart_both_reach_the_server(m: Mediamtx) {
    two_syncs_half_a_second_apart(&m, "").await;
}

async fn two_syncs_half_a_second_apart_both_reach_the_server_with_api(m: Mediamtx) {
    let api = format!("    api: {}\n", m.api(""));
    two_syncs_half_a_second_apart(&m, &api).await;
}

/// `camsync sync` twice, half a second apart, the first adding one camera to a `mediamtx-file`
/// target that is the server's own file, the second ten (with `api:`, ten paths are checked
/// through one list): every camera ends up loaded.
async fn two_syncs_half_a_second_apart(m: &Mediamtx, target_extra: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("camsync.yaml");
    std::fs::write(
        &config,
        format!(
            "source:\n  file: cameras.yaml\ntargets:\n  - name: mtx\n    kind: mediamtx-file\n    \
             path: {}\n{target_extra}state: camsync.db\n",
            m.config_path().display()
        ),
    )
    .unwrap();
    let camera = |name: &str| format!("  - name: {name}\n    url: rtsp://127.0.0.1:9/{name}\n");
    let second: Vec<String> = (0..10).map(|i| format!("two{i}")).collect();
    let mut cameras = String::from("cameras:\n");
    cameras.push_str(&camera("one"));
    std::fs::write(dir.path().join("cameras.yaml"), &cameras).unwrap();
    let started = tokio::time::Instant::now();
    crate::wire::camsync(&config, &["sync"]).await;
    tokio::time::sleep(Duration::from_millis(500).saturating_sub(started.elapsed())).await;
    second
        .iter()
        .for_each(|name| cameras.push_str(&camera(name)));
    std::fs::write(dir.path().join("cameras.yaml"), &cameras).unwrap();
    crate::wire::camsync(&config, &["sync"]).await;
    let all = until(Duration::from_secs(5), || async {
        for name in std::iter::once("one").chain(second.iter().map(String::as_str)) {
            if !has_path(m, name).await {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(all.is_some(), "{}: every camera loaded", m.label());
}

//! go2rtc scenarios (SERVERS.md, "go2rtc"): the stream API camsync writes and reads, preload,
//! restart, and what the RTSP proxy answers.

use std::time::Duration;

use camsync_sim::camera::SimCamera;
use serde_json::Value;

use crate::backend::Go2rtc;
use crate::conformance;
use crate::wire::{Answer, describe, get, http, q, until};

conformance!(
    go2rtc,
    streams_are_created_replaced_listed_and_deleted,
    credentials_are_shown_as_sent_and_options_kept,
    values_from_the_environment_are_masked_wherever_they_appear,
    command_and_whitespace_sources_are_refused,
    preload_dials_first_and_counts_bytes,
    api_restart_keeps_put_streams,
    rtsp_proxy_answers_unknown_down_and_streaming,
    probe_query_dials_the_camera,
    a_camera_that_never_answers_holds_describe_for_the_dial_timeouts,
    a_preloaded_stream_answers_from_cached_tracks_while_its_camera_is_down,
    a_list_while_writes_are_in_flight_kills_the_server,
);

fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        body: body.to_owned(),
    }
}

async fn put(g: &Go2rtc, name: &str, src: &str) -> Answer {
    let url = g.api(&format!("/api/streams?name={}&src={}", q(name), q(src)));
    http("PUT", &url, None).await
}

async fn stream(g: &Go2rtc, name: &str) -> Answer {
    get(&g.api(&format!("/api/streams?src={}", q(name)))).await
}

/// The `url` of each producer of stream `name`.
async fn producer_urls(g: &Go2rtc, name: &str) -> Vec<String> {
    let json = stream(g, name).await.json();
    json["producers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["url"].as_str().map(str::to_owned))
        .collect()
}

async fn streams_are_created_replaced_listed_and_deleted(g: Go2rtc) {
    let info = get(&g.api("/api")).await;
    assert_eq!(info.status, 200, "{}: GET /api", g.label());
    assert!(
        info.json()["version"].is_string(),
        "{}: {info:?}",
        g.label()
    );

    assert_eq!(
        stream(&g, "cam").await,
        answer(404, "\n"),
        "{}: unknown",
        g.label()
    );
    let a = "rtsp://127.0.0.1:9/a";
    assert_eq!(
        put(&g, "cam", a).await,
        answer(200, ""),
        "{}: PUT",
        g.label()
    );
    assert_eq!(producer_urls(&g, "cam").await, [a], "{}", g.label());
    let b = "rtsp://127.0.0.1:9/b";
    assert_eq!(
        put(&g, "cam", b).await,
        answer(200, ""),
        "{}: PUT again",
        g.label()
    );
    assert_eq!(
        producer_urls(&g, "cam").await,
        [b],
        "{}: replaced",
        g.label()
    );
    let file = std::fs::read_to_string(g.config_path()).unwrap_or_default();
    assert!(
        file.contains(b),
        "{}: the file holds the stream:\n{file}",
        g.label()
    );

    let list = get(&g.api("/api/streams")).await;
    assert_eq!(list.status, 200);
    let names: Vec<String> = list.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(names, ["cam"], "{}: list", g.label());

    let delete = g.api("/api/streams?src=cam");
    assert_eq!(
        http("DELETE", &delete, None).await,
        answer(200, ""),
        "{}",
        g.label()
    );
    assert_eq!(
        stream(&g, "cam").await,
        answer(404, "\n"),
        "{}: deleted",
        g.label()
    );
    assert_eq!(
        http("DELETE", &delete, None).await,
        answer(200, ""),
        "{}: DELETE of an unknown name",
        g.label()
    );
    let file = std::fs::read_to_string(g.config_path()).unwrap_or_default();
    assert!(
        !file.contains(b),
        "{}: gone from the file:\n{file}",
        g.label()
    );
}

/// SERVERS.md said recent builds mask credentials; 1.9.14 shows what was sent (only values
/// from the environment are masked).
async fn credentials_are_shown_as_sent_and_options_kept(g: Go2rtc) {
    let src = "rtsp://admin:s3cret@127.0.0.1:9/main#timeout=30";
    assert_eq!(put(&g, "cam", src).await.status, 200);
    let urls = producer_urls(&g, "cam").await;
    assert_eq!(urls, [src], "{}: not masked", g.label());
    let file = std::fs::read_to_string(g.config_path()).unwrap_or_default();
    assert!(
        file.contains(src),
        "{}: the file has it in clear:\n{file}",
        g.label()
    );
}

/// go2rtc shows `***` for every value its file's `${VAR}`s were replaced with, in any source,
/// and nothing else (CONFORMANCE-NOTES.md).
async fn values_from_the_environment_are_masked_wherever_they_appear(mut g: Go2rtc) {
    let path = g.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let stream = "streams:\n  cam: rtsp://admin:${CAM_PW}@127.0.0.1:9/main\n";
    std::fs::write(&path, format!("{text}{stream}")).unwrap();
    g.restart_with_env(&[("CAM_PW", "env-s3cret")]).await;
    assert_eq!(
        producer_urls(&g, "cam").await,
        ["rtsp://admin:***@127.0.0.1:9/main"],
        "{}",
        g.label()
    );
    let src = "rtsp://other:env-s3cret@127.0.0.1:9/o";
    assert_eq!(put(&g, "other", src).await.status, 200);
    assert_eq!(
        producer_urls(&g, "other").await,
        ["rtsp://other:***@127.0.0.1:9/o"],
        "{}: the same value in a source sent later",
        g.label()
    );
}

async fn command_and_whitespace_sources_are_refused(g: Go2rtc) {
    for src in [
        "exec:ffmpeg -i x",
        "echo:rtsp://127.0.0.1:9/x",
        "rtsp://127.0.0.1:9/a b",
    ] {
        let answer = put(&g, "cam", src).await;
        assert_eq!(answer.status, 400, "{}: PUT {src}: {answer:?}", g.label());
    }
    assert_eq!(stream(&g, "cam").await.status, 404, "{}", g.label());
}

async fn preload_dials_first_and_counts_bytes(g: Go2rtc) {
    let camera = SimCamera::start().await.unwrap();
    camera.stop().await;
    assert_eq!(put(&g, "cam", &camera.url("live")).await.status, 200);
    let preload = g.api("/api/preload?src=cam");
    let down = http("PUT", &preload, None).await;
    assert_eq!(
        down.status,
        500,
        "{}: preload, camera down: {down:?}",
        g.label()
    );

    camera.resume().await.unwrap();
    let up = http("PUT", &preload, None).await;
    assert_eq!(up.status, 200, "{}: preload, camera up: {up:?}", g.label());
    let bytes = until(Duration::from_secs(10), || async {
        let json = stream(&g, "cam").await.json();
        let bytes = json["producers"][0]["bytes_recv"].as_u64().unwrap_or(0);
        (bytes > 0).then_some(bytes)
    })
    .await;
    assert!(bytes.is_some(), "{}: no bytes counted", g.label());
    let consumers = stream(&g, "cam").await.json()["consumers"].clone();
    assert!(
        consumers.as_array().is_some_and(|c| c.len() == 1),
        "{}: one preload consumer: {consumers}",
        g.label()
    );
}

async fn api_restart_keeps_put_streams(g: Go2rtc) {
    assert_eq!(put(&g, "cam", "rtsp://127.0.0.1:9/a").await.status, 200);
    let restart = http("POST", &g.api("/api/restart"), None).await;
    assert_eq!(restart.status, 200, "{}: restart: {restart:?}", g.label());
    let back = until(Duration::from_secs(10), || async {
        let client = reqwest::Client::new();
        let answered = client
            .get(g.api("/api"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        answered.then_some(())
    })
    .await;
    assert!(back.is_some(), "{}: API back after restart", g.label());
    let urls = until(Duration::from_secs(5), || async {
        let answer = stream(&g, "cam").await;
        (answer.status == 200).then(|| answer.json())
    })
    .await;
    assert!(
        urls.is_some(),
        "{}: the stream survived the restart",
        g.label()
    );
}

async fn rtsp_proxy_answers_unknown_down_and_streaming(g: Go2rtc) {
    let timeout = Duration::from_secs(15);
    assert_eq!(
        describe(&g.rtsp("nothing"), timeout).await.0,
        Some(404),
        "{}",
        g.label()
    );

    let camera = SimCamera::start().await.unwrap();
    assert_eq!(put(&g, "cam", &camera.url("live")).await.status, 200);
    assert_eq!(
        describe(&g.rtsp("cam"), timeout).await.0,
        Some(200),
        "{}: up",
        g.label()
    );
    camera.stop().await;
    // The real go2rtc may keep the producer of the last DESCRIBE for a moment and answer from
    // its cached tracks (a preloaded stream does so for good: see the scenario below); once
    // it has let go, a DESCRIBE of the down camera is refused at once.
    let refused = until(Duration::from_secs(10), || async {
        (describe(&g.rtsp("cam"), timeout).await.0 == Some(404)).then_some(())
    })
    .await;
    assert!(refused.is_some(), "{}: camera down, 404", g.label());
    let (status, took) = describe(&g.rtsp("cam"), timeout).await;
    assert_eq!(status, Some(404), "{}: camera down", g.label());
    assert!(
        took < Duration::from_secs(2),
        "{}: refused at once: {took:?}",
        g.label()
    );
    camera.resume().await.unwrap();
    let back = describe(&g.rtsp("cam"), timeout).await.0;
    assert_eq!(
        back,
        Some(200),
        "{}: the next DESCRIBE dials afresh",
        g.label()
    );
}

/// SERVERS.md, "RTSP": a camera that accepts TCP and never answers holds a DESCRIBE through
/// go2rtc for its dial timeouts (seen: 10 s), then 404. camsync's probe timeout (15 s) exceeds
/// it, so such a camera reads as not served, not as a hung proxy.
async fn a_camera_that_never_answers_holds_describe_for_the_dial_timeouts(g: Go2rtc) {
    let camera = SimCamera::start().await.unwrap();
    camera.hang();
    assert_eq!(put(&g, "cam", &camera.url("live")).await.status, 200);
    let (status, took) = describe(&g.rtsp("cam"), Duration::from_secs(20)).await;
    assert_eq!(status, Some(404), "{}: given up after {took:?}", g.label());
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(15),
        "{}: held for the dial timeouts, not {took:?}",
        g.label()
    );
}

/// SERVERS.md, "RTSP" and "Camera connections": with a consumer attached (a preload), a
/// DESCRIBE is answered 200 from the stream's cached tracks at once even while its camera is
/// down — why camsync checks the camera itself and the byte counters, not DESCRIBE alone.
async fn a_preloaded_stream_answers_from_cached_tracks_while_its_camera_is_down(g: Go2rtc) {
    let camera = SimCamera::start().await.unwrap();
    assert_eq!(put(&g, "cam", &camera.url("live")).await.status, 200);
    let preload = http("PUT", &g.api("/api/preload?src=cam"), None).await;
    assert_eq!(preload.status, 200, "{}: preload: {preload:?}", g.label());
    let flowing = until(Duration::from_secs(10), || async {
        let json = stream(&g, "cam").await.json();
        (json["producers"][0]["bytes_recv"].as_u64() > Some(0)).then_some(())
    })
    .await;
    assert!(flowing.is_some(), "{}: bytes counted", g.label());

    camera.stop().await;
    let (status, took) = describe(&g.rtsp("cam"), Duration::from_secs(15)).await;
    assert_eq!(status, Some(200), "{}: cached tracks", g.label());
    assert!(
        took < Duration::from_secs(2),
        "{}: at once, not {took:?}",
        g.label()
    );
}

/// SERVERS.md, "Serialize writes and lists": listing the streams while writes are in flight
/// kills go2rtc (Go's `concurrent map iteration and map write`), which is why each go2rtc has
/// one worker in camsync and it never lists while it writes. Safe to run: the server is this
/// test's own.
async fn a_list_while_writes_are_in_flight_kills_the_server(g: Go2rtc) {
    for i in 0..100 {
        assert_eq!(
            put(&g, &format!("s{i}"), "rtsp://127.0.0.1:9/x")
                .await
                .status,
            200
        );
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (client, stop) = (client.clone(), stop.clone());
        let list = g.api("/api/streams");
        let write = |n: usize| {
            g.api(&format!(
                "/api/streams?name=s{}&src={}",
                n % 100,
                q(&format!("rtsp://127.0.0.1:9/{n}"))
            ))
        };
        let writes: Vec<String> = (0..400).map(|n| write(worker * 400 + n)).collect();
        load.spawn(async move {
            for put in writes.iter().cycle() {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let answered = if worker % 2 == 0 {
                    client.get(&list).send().await
                } else {
                    client.put(put).send().await
                };
                if answered.is_err() {
                    return; // the server is gone
                }
            }
        });
    }
    let died = until(Duration::from_secs(20), || async {
        client
            .get(g.api("/api"))
            .send()
            .await
            .is_err()
            .then_some(())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join_all().await;
    assert!(
        died.is_some(),
        "{}: still answering after 20 s of lists during writes",
        g.label()
    );
    let last_words = g.last_words();
    assert!(
        last_words.contains("fatal error: concurrent map"),
        "{}: {last_words}",
        g.label()
    );
}

async fn probe_query_dials_the_camera(g: Go2rtc) {
    let camera = SimCamera::start().await.unwrap();
    assert_eq!(put(&g, "cam", &camera.url("live")).await.status, 200);
    let probe = g.api("/api/streams?src=cam&video=all&audio=all");
    let up = get(&probe).await;
    assert_eq!(up.status, 200, "{}: probe, camera up: {up:?}", g.label());
    let json: Value = up.json();
    assert!(json["producers"].is_array(), "{}: {json}", g.label());
    camera.stop().await;
    let down = get(&probe).await;
    assert_eq!(
        down.status,
        500,
        "{}: probe, camera down: {down:?}",
        g.label()
    );
    let port = camera.port();
    assert!(
        down.body.contains(&format!("dial tcp 127.0.0.1:{port}")) && down.body.contains("refused"),
        "{}: {down:?}",
        g.label()
    );
    let unknown = get(&g.api("/api/streams?src=nothing&video=all&audio=all")).await;
    assert_eq!(unknown.status, 404, "{}: {unknown:?}", g.label());
}

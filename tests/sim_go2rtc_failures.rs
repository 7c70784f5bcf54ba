//! The go2rtc simulator's camera connections and their failure modes (SERVERS.md, "Camera
//! connections and their failure modes"): producer counters, the preload redial schedule, and
//! the opt-in stuck stream. Real sockets on 127.0.0.1; conditions are polled with a deadline.

use std::future::Future;
use std::time::Duration;

use camsync_sim::camera::SimCamera;
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions, redial_delay};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// reqwest with `rustls-no-provider` needs a provider even for plain http.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn call(sim: &Go2rtcSim, method: Method, path: &str, query: &[(&str, &str)]) -> StatusCode {
    let url = format!("{}{path}", sim.api_url());
    let response = client().request(method, url).query(query).send().await;
    response.unwrap().status()
}

async fn put_stream(sim: &Go2rtcSim, name: &str, source: &str) {
    let status = call(
        sim,
        Method::PUT,
        "/api/streams",
        &[("name", name), ("src", source)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

async fn preload(sim: &Go2rtcSim, name: &str) -> StatusCode {
    call(sim, Method::PUT, "/api/preload", &[("src", name)]).await
}

async fn list(sim: &Go2rtcSim) -> serde_json::Value {
    let url = format!("{}/api/streams", sim.api_url());
    let body = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// The status of one `DESCRIBE` through go2rtc's RTSP proxy.
async fn describe(sim: &Go2rtcSim, name: &str) -> u16 {
    let authority = sim.rtsp_url().trim_start_matches("rtsp://").to_owned();
    let mut stream = TcpStream::connect(authority).await.unwrap();
    let request = format!(
        "DESCRIBE {}/{name} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        sim.rtsp_url()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut status_line = String::new();
    BufReader::new(stream)
        .read_line(&mut status_line)
        .await
        .unwrap();
    status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// Polls `check` every 20 ms until it holds; fails after `limit`. Returns the time it took.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Whether the stream's counter grows over `window`.
async fn grows(sim: &Go2rtcSim, name: &str, window: Duration) -> bool {
    let before = sim.bytes_recv(name);
    tokio::time::sleep(window).await;
    sim.bytes_recv(name) > before
}

/// A camera and a go2rtc with stream `cam` on it, preloaded.
async fn preloaded() -> (SimCamera, Go2rtcSim) {
    let camera = SimCamera::start().await.unwrap();
    let sim = Go2rtcSim::start(Go2rtcSimOptions::default()).await.unwrap();
    put_stream(&sim, "cam", &camera.url("s")).await;
    assert_eq!(preload(&sim, "cam").await, StatusCode::OK);
    (camera, sim)
}

const WINDOW: Duration = Duration::from_millis(150);

#[tokio::test]
async fn a_preloaded_producer_shows_growing_counters_and_its_consumer() {
    let (camera, sim) = preloaded().await;
    put_stream(&sim, "idle", &camera.url("t")).await;
    assert!(sim.producer_connected("cam"));
    assert!(grows(&sim, "cam", WINDOW).await);

    let streams = list(&sim).await;
    let producer = &streams["cam"]["producers"][0];
    assert_eq!(producer["url"], camera.url("s"));
    assert_eq!(
        producer["remote_addr"],
        format!("127.0.0.1:{}", camera.port())
    );
    assert_eq!(producer["medias"][0], "video, recvonly, H264");
    let shown = producer["bytes_recv"].as_u64().unwrap();
    assert!(shown > 0, "{producer}");
    let consumers = streams["cam"]["consumers"].as_array().unwrap();
    assert_eq!(consumers.len(), 1, "the preload is a consumer");

    // Without consumers: no connection, the URL only, consumers null.
    assert_eq!(
        streams["idle"],
        serde_json::json!({"producers": [{"url": camera.url("t")}], "consumers": null})
    );
    assert_eq!(sim.bytes_recv("idle"), None);
    assert_eq!(describe(&sim, "idle").await, 200);
    let streams = list(&sim).await;
    assert_eq!(
        streams["idle"]["consumers"],
        serde_json::Value::Null,
        "a DESCRIBE's consumer leaves with its request"
    );

    // The single-stream view agrees, and grows between reads.
    let url = format!("{}/api/streams?src=cam", sim.api_url());
    let one: serde_json::Value = serde_json::from_str(
        &client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(one["producers"][0]["bytes_recv"].as_u64().unwrap() >= shown);

    // Dropping the preload stops the producer: URL only again.
    assert_eq!(
        call(&sim, Method::DELETE, "/api/preload", &[("src", "cam")]).await,
        StatusCode::OK
    );
    assert!(!sim.producer_connected("cam"));
    assert_eq!(
        list(&sim).await["cam"]["producers"][0].get("bytes_recv"),
        None
    );
}

#[tokio::test]
async fn counters_freeze_while_the_camera_is_stopped_or_hung() {
    let (camera, sim) = preloaded().await;
    assert!(grows(&sim, "cam", WINDOW).await);

    camera.stop().await;
    eventually(
        Duration::from_secs(2),
        "producer notices the stop",
        || async { !sim.producer_connected("cam") },
    )
    .await;
    assert!(!grows(&sim, "cam", WINDOW).await, "frozen while stopped");
    let streams = list(&sim).await;
    assert_eq!(
        streams["cam"]["consumers"].as_array().map(Vec::len),
        Some(1),
        "the preload consumer stays attached"
    );
    assert!(streams["cam"]["producers"][0]["bytes_recv"].as_u64() > Some(0));
    assert_eq!(describe(&sim, "cam").await, 200, "cached tracks");

    camera.resume().await.unwrap();
    eventually(Duration::from_secs(3), "redial after resume", || async {
        sim.producer_connected("cam")
    })
    .await;
    assert!(grows(&sim, "cam", WINDOW).await);

    // Hung: the connection stays, nothing is answered: frozen within the stall limit.
    camera.hang();
    eventually(Duration::from_secs(2), "frozen while hung", || async {
        !grows(&sim, "cam", WINDOW).await
    })
    .await;
    assert!(
        sim.producer_connected("cam"),
        "not yet go2rtc's 5 s read timeout"
    );
    camera.answer();
    eventually(Duration::from_secs(2), "flows again", || async {
        grows(&sim, "cam", WINDOW).await
    })
    .await;
}

#[test]
fn the_redial_schedule_is_go2rtcs_fixed_one() {
    let delays: Vec<u64> = (0..23).map(|r| redial_delay(r).as_secs()).collect();
    let mut expected = vec![1; 5];
    expected.extend([5; 5]);
    expected.extend([10; 10]);
    expected.extend([60; 3]);
    assert_eq!(delays, expected);
    assert_eq!(redial_delay(u32::MAX), Duration::from_secs(60));
}

#[tokio::test]
async fn a_camera_back_after_a_short_outage_is_picked_up_at_the_next_1_s_redial() {
    let (camera, sim) = preloaded().await;
    let describes = camera.describe_count();
    camera.stop().await;
    let gone = Instant::now();
    eventually(Duration::from_secs(2), "loss noticed", || async {
        !sim.producer_connected("cam")
    })
    .await;
    // Back well before the 1 s redial (the immediate redial at the loss has failed).
    tokio::time::sleep(Duration::from_millis(300)).await;
    camera.resume().await.unwrap();
    let back = Instant::now();
    assert!(!sim.producer_connected("cam"), "no dial between redials");
    eventually(
        Duration::from_secs(3),
        "picked up at the redial",
        || async { sim.producer_connected("cam") },
    )
    .await;
    let since_loss = gone.elapsed();
    assert!(
        since_loss >= Duration::from_millis(950) && since_loss < Duration::from_millis(1_900),
        "data again {since_loss:?} after the loss ({:?} after the camera came back)",
        back.elapsed()
    );
    assert!(grows(&sim, "cam", WINDOW).await);
    assert_eq!(
        camera.describe_count(),
        describes + 1,
        "one successful redial; the failed ones were refused before DESCRIBE"
    );
}

#[tokio::test]
async fn re_putting_the_preload_dials_at_once() {
    let (camera, sim) = preloaded().await;
    camera.stop().await;
    eventually(Duration::from_secs(2), "loss noticed", || async {
        !sim.producer_connected("cam")
    })
    .await;
    // Wait into the 5 s part of the schedule (dials at 0, 1, 2, 3, 4, 5 s, then 10 s).
    tokio::time::sleep(Duration::from_millis(5_300)).await;
    camera.resume().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !sim.producer_connected("cam"),
        "the camera sits healthy, waiting for the next dial"
    );
    assert!(!grows(&sim, "cam", WINDOW).await);
    assert_eq!(describe(&sim, "cam").await, 200, "looks up, is not");

    let asked = Instant::now();
    assert_eq!(preload(&sim, "cam").await, StatusCode::OK);
    assert!(sim.producer_connected("cam"));
    assert!(asked.elapsed() < Duration::from_millis(500));
    assert!(grows(&sim, "cam", WINDOW).await);
}

#[tokio::test]
async fn delete_put_preload_dials_at_once_with_fresh_counters() {
    let (camera, sim) = preloaded().await;
    camera.stop().await;
    eventually(Duration::from_secs(2), "loss noticed", || async {
        !sim.producer_connected("cam")
    })
    .await;
    camera.resume().await.unwrap();
    assert_eq!(
        call(&sim, Method::DELETE, "/api/streams", &[("src", "cam")]).await,
        StatusCode::OK
    );
    put_stream(&sim, "cam", &camera.url("s")).await;
    assert_eq!(sim.bytes_recv("cam"), None, "a new object, not preloaded");
    assert_eq!(preload(&sim, "cam").await, StatusCode::OK);
    assert!(sim.producer_connected("cam"));
    assert!(grows(&sim, "cam", WINDOW).await);
}

#[tokio::test]
async fn a_stuck_stream_answers_404_until_deleted_and_added_again() {
    let camera = SimCamera::start().await.unwrap();
    let sim = Go2rtcSim::start(Go2rtcSimOptions::default()).await.unwrap();
    sim.set_stuck_after_reboot(true);
    put_stream(&sim, "cam", &camera.url("s")).await;

    assert_eq!(describe(&sim, "cam").await, 200);
    camera.stop().await;
    assert_eq!(describe(&sim, "cam").await, 404, "camera down");
    camera.resume().await.unwrap();
    let describes = camera.describe_count();
    for _ in 0..3 {
        assert_eq!(
            describe(&sim, "cam").await,
            404,
            "camera answers, stream stuck"
        );
    }
    assert!(sim.is_stuck("cam"));
    assert!(
        camera.describe_count() > describes,
        "the camera itself answers"
    );

    assert_eq!(
        call(&sim, Method::DELETE, "/api/streams", &[("src", "cam")]).await,
        StatusCode::OK
    );
    put_stream(&sim, "cam", &camera.url("s")).await;
    assert!(!sim.is_stuck("cam"));
    assert_eq!(describe(&sim, "cam").await, 200);
}

#[tokio::test]
async fn a_stuck_preloaded_stream_freezes_and_a_restart_heals_it() {
    let (camera, sim) = preloaded().await;
    sim.set_stuck_after_reboot(true);
    camera.stop().await;
    eventually(Duration::from_secs(2), "loss noticed", || async {
        !sim.producer_connected("cam")
    })
    .await;
    assert_eq!(describe(&sim, "cam").await, 200, "cached tracks while down");
    camera.resume().await.unwrap();
    eventually(Duration::from_secs(3), "redialed", || async {
        sim.producer_connected("cam")
    })
    .await;
    assert!(sim.is_stuck("cam"));
    assert_eq!(describe(&sim, "cam").await, 404);
    assert!(
        !grows(&sim, "cam", WINDOW).await,
        "no data on a stuck stream"
    );

    sim.set_stuck_after_reboot(false);
    assert!(sim.is_stuck("cam"), "stuck streams stay stuck");

    // A restart reloads the file (which holds the PUT stream and its preload): fresh objects.
    sim.restart().await;
    assert!(!sim.is_stuck("cam"));
    assert_eq!(describe(&sim, "cam").await, 200);
    eventually(
        Duration::from_secs(2),
        "the preload dials at start",
        || async { sim.producer_connected("cam") },
    )
    .await;
    assert!(grows(&sim, "cam", WINDOW).await);
}

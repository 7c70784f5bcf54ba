//! The simulators themselves, over real sockets: the go2rtc behaviours camsync relies on
//! (SERVERS.md) and the simulated camera.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use camsync_sim::camera::SimCamera;
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// reqwest with `rustls-no-provider` needs a provider even for plain http.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn sim() -> Go2rtcSim {
    Go2rtcSim::start(Go2rtcSimOptions::default()).await.unwrap()
}

fn file_with(name: &str, sources: &[&str]) -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([(
        name.to_owned(),
        sources.iter().map(|s| (*s).to_owned()).collect(),
    )])
}

/// One request to `/api/streams` with `query` pairs; returns status and body.
async fn api(sim: &Go2rtcSim, method: Method, query: &[(&str, &str)]) -> (StatusCode, String) {
    try_api(sim, method, query).await.unwrap()
}

async fn try_api(
    sim: &Go2rtcSim,
    method: Method,
    query: &[(&str, &str)],
) -> reqwest::Result<(StatusCode, String)> {
    let url = format!("{}/api/streams", sim.api_url());
    let response = client().request(method, url).query(query).send().await?;
    Ok((response.status(), response.text().await?))
}

async fn list(sim: &Go2rtcSim) -> serde_json::Value {
    let (status, body) = api(sim, Method::GET, &[]).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_str(&body).unwrap()
}

/// A raw RTSP exchange: one request, one response.
struct RtspAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RtspAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn rtsp(method: &str, url: &str, extra_headers: &str) -> RtspAnswer {
    let authority = url
        .strip_prefix("rtsp://")
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let mut stream = TcpStream::connect(authority).await.unwrap();
    let request = format!("{method} {url} RTSP/1.0\r\nCSeq: 7\r\n{extra_headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut answer = RtspAnswer {
        status,
        headers,
        body: String::new(),
    };
    let length = answer
        .header("Content-Length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.unwrap();
    answer.body = String::from_utf8(body).unwrap();
    answer
}

async fn describe(url: &str) -> u16 {
    rtsp("DESCRIBE", url, "").await.status
}

/// Polls until nothing accepts connections on `url`'s address, or fails after 5 s.
async fn assert_refused_soon(url: &str) {
    let authority = url.split("://").nth(1).unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(&authority).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "{authority} still accepts connections"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn put_get_delete_round_trip() {
    let sim = sim().await;
    let (status, body) = api(
        &sim,
        Method::PUT,
        &[("name", "cam1"), ("src", "rtsp://127.0.0.1:9/a")],
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));

    let (status, body) = api(&sim, Method::GET, &[("src", "cam1")]).await;
    assert_eq!(status, StatusCode::OK);
    let stream: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        stream,
        serde_json::json!({"producers": [{"url": "rtsp://127.0.0.1:9/a"}], "consumers": null})
    );
    assert_eq!(
        sim.file_streams(),
        file_with("cam1", &["rtsp://127.0.0.1:9/a"])
    );

    let (status, body) = api(&sim, Method::DELETE, &[("src", "cam1")]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    let (status, body) = api(&sim, Method::GET, &[("src", "cam1")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.trim().is_empty(), "{body:?}");
    assert!(sim.file_streams().is_empty());
    assert_eq!(sim.write_count(), 2);
}

#[tokio::test]
async fn put_keeps_source_order_and_hash_options_and_names_by_url() {
    let sim = sim().await;
    let sources = [
        "rtsp://127.0.0.1:9/main#timeout=30",
        "ffmpeg:cam#video=h264",
    ];
    let (status, _) = api(
        &sim,
        Method::PUT,
        &[("name", "cam"), ("src", sources[0]), ("src", sources[1])],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.stream_sources("cam").unwrap(), sources);

    let url = "rtsp://127.0.0.1:9/only?a=1&b=2";
    let (status, _) = api(&sim, Method::PUT, &[("src", url)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.stream_sources(url).unwrap(), [url]);
}

#[tokio::test]
async fn api_rejects_command_and_whitespace_sources_with_empty_400() {
    let sim = sim().await;
    for bad in [
        "exec:ffmpeg -i rtsp://x",
        "echo:rtsp://127.0.0.1/x",
        "expr:1+1",
        "rtsp://127.0.0.1/a b",
    ] {
        let (status, body) = api(&sim, Method::PUT, &[("name", "bad"), ("src", bad)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body.trim().is_empty(), "{bad}: {body:?}");
    }
    assert!(sim.stream_names().is_empty());
    assert!(sim.file_streams().is_empty());
}

#[tokio::test]
async fn read_only_config_answers_400_with_text_but_changes_memory() {
    let sim = sim().await;
    sim.set_config_writable(false);
    let (status, body) = api(
        &sim,
        Method::PUT,
        &[("name", "cam"), ("src", "rtsp://127.0.0.1:9/a")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, "open /config/go2rtc.yaml: read-only file system\n");
    let (status, _) = api(&sim, Method::GET, &[("src", "cam")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(sim.file_streams().is_empty());

    let (status, body) = api(&sim, Method::DELETE, &[("src", "cam")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("read-only file system"));
    assert!(sim.stream_names().is_empty());
}

#[tokio::test]
async fn delete_goes_by_name_in_memory_and_by_src_in_the_file() {
    let mut file = file_with("a", &["rtsp://127.0.0.1:9/a"]);
    file.extend(file_with("b", &["rtsp://127.0.0.1:9/b"]));
    let sim = Go2rtcSim::start(Go2rtcSimOptions {
        file_streams: file,
        ..Default::default()
    })
    .await
    .unwrap();

    let (status, _) = api(&sim, Method::DELETE, &[("name", "a")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.stream_names(), ["b"]);
    assert!(
        sim.file_streams().contains_key("a"),
        "no src: the file is not touched"
    );

    let (status, _) = api(&sim, Method::DELETE, &[("name", "b"), ("src", "b")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(sim.stream_names().is_empty());
    assert!(!sim.file_streams().contains_key("b"));

    let (status, body) = api(&sim, Method::DELETE, &[("src", "never-existed")]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
}

#[tokio::test]
async fn credentials_sent_through_the_api_are_shown_as_sent() {
    // Seen on go2rtc 1.9.14: only values from the environment are masked (CONFORMANCE-NOTES.md).
    let sim = sim().await;
    let sources = [
        "rtsp://admin:s3cret@127.0.0.1:9/a",
        "ffmpeg:rtsp://viewer:pw2@127.0.0.1:9/b#video=h264",
        "rtsp://tokenuser@127.0.0.1:9/c",
    ];
    api(
        &sim,
        Method::PUT,
        &[
            ("name", "cam"),
            ("src", sources[0]),
            ("src", sources[1]),
            ("src", sources[2]),
        ],
    )
    .await;

    let urls: Vec<String> = list(&sim).await["cam"]["producers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["url"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(urls, sources);
    assert_eq!(sim.stream_sources("cam").unwrap(), sources, "kept unmasked");
    assert_eq!(sim.file_streams()["cam"], sources, "written in plain text");
}

#[tokio::test]
async fn writes_without_src_or_name_only_list() {
    let sim = Go2rtcSim::start(Go2rtcSimOptions {
        file_streams: file_with("keep", &["rtsp://127.0.0.1:9/k"]),
        ..Default::default()
    })
    .await
    .unwrap();
    for method in [Method::PUT, Method::DELETE, Method::PATCH, Method::GET] {
        let (status, body) = api(&sim, method.clone(), &[("source", "typo")]).await;
        assert_eq!(status, StatusCode::OK, "{method}");
        let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(listed["keep"].is_object(), "{method}: {body}");
    }
    assert_eq!(sim.stream_names(), ["keep"]);
    assert_eq!(
        sim.file_streams(),
        file_with("keep", &["rtsp://127.0.0.1:9/k"])
    );
    assert_eq!(
        sim.write_count(),
        3,
        "counted as received, although nothing changed"
    );
}

#[tokio::test]
async fn patch_changes_memory_only() {
    let sim = Go2rtcSim::start(Go2rtcSimOptions {
        file_streams: file_with("cam", &["rtsp://127.0.0.1:9/old"]),
        ..Default::default()
    })
    .await
    .unwrap();
    let (status, _) = api(
        &sim,
        Method::PATCH,
        &[("name", "cam"), ("src", "rtsp://127.0.0.1:9/new")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sim.stream_sources("cam").unwrap(),
        ["rtsp://127.0.0.1:9/new"]
    );
    assert_eq!(sim.file_streams()["cam"], ["rtsp://127.0.0.1:9/old"]);
}

fn held_writes() -> Go2rtcSimOptions {
    Go2rtcSimOptions {
        file_streams: file_with("filecam", &["rtsp://127.0.0.1:9/f"]),
        write_hold: Duration::from_millis(200),
        ..Default::default()
    }
}

#[tokio::test]
async fn concurrent_writes_crash_it_until_restart() {
    let sim = Go2rtcSim::start(held_writes()).await.unwrap();
    let (first, second) = tokio::join!(
        try_api(
            &sim,
            Method::PUT,
            &[("name", "a"), ("src", "rtsp://127.0.0.1:9/a")]
        ),
        try_api(
            &sim,
            Method::PUT,
            &[("name", "b"), ("src", "rtsp://127.0.0.1:9/b")]
        ),
    );
    assert!(
        first.is_err() && second.is_err(),
        "a dead process answers nothing: {first:?} {second:?}"
    );
    assert_eq!(
        sim.crashed().as_deref(),
        Some("fatal error: concurrent map writes")
    );
    assert_refused_soon(&sim.api_url()).await;
    assert_refused_soon(&sim.rtsp_url()).await;

    sim.restart().await;
    assert_eq!(sim.crashed(), None);
    assert_eq!(sim.stream_names(), ["filecam"]);
    let (status, _) = api(
        &sim,
        Method::PUT,
        &[("name", "a"), ("src", "rtsp://127.0.0.1:9/a")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_list_during_a_write_crashes_it() {
    let sim = Go2rtcSim::start(held_writes()).await.unwrap();
    let writer = {
        let sim = sim.clone();
        tokio::spawn(async move {
            try_api(
                &sim,
                Method::PUT,
                &[("name", "a"), ("src", "rtsp://127.0.0.1:9/a")],
            )
            .await
        })
    };
    // The write section starts in the same step that counts the request.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.write_count() == 0 {
        assert!(Instant::now() < deadline, "the PUT never arrived");
        tokio::task::yield_now().await;
    }
    assert!(try_api(&sim, Method::GET, &[]).await.is_err());
    assert!(writer.await.unwrap().is_err());
    assert_eq!(
        sim.crashed().as_deref(),
        Some("fatal error: concurrent map iteration and map write")
    );
}

#[tokio::test]
async fn sequential_writes_and_lists_do_not_crash() {
    let sim = Go2rtcSim::start(Go2rtcSimOptions {
        write_hold: Duration::from_millis(5),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..5 {
        let name = format!("cam{i}");
        api(
            &sim,
            Method::PUT,
            &[("name", &name), ("src", "rtsp://127.0.0.1:9/x")],
        )
        .await;
        list(&sim).await;
    }
    let (a, b) = tokio::join!(list(&sim), list(&sim));
    assert_eq!(a, b, "reads may overlap reads");
    assert_eq!(sim.crashed(), None);
    assert_eq!(sim.stream_names().len(), 5);
}

#[tokio::test]
async fn restart_forgets_streams_that_are_not_in_the_file() {
    let sim = Go2rtcSim::start(Go2rtcSimOptions {
        file_streams: file_with("filecam", &["rtsp://127.0.0.1:9/f"]),
        ..Default::default()
    })
    .await
    .unwrap();
    let (api_url, rtsp_url) = (sim.api_url(), sim.rtsp_url());
    api(
        &sim,
        Method::PUT,
        &[("name", "saved"), ("src", "rtsp://127.0.0.1:9/s")],
    )
    .await;
    sim.set_config_writable(false);
    api(
        &sim,
        Method::PUT,
        &[("name", "unsaved"), ("src", "rtsp://127.0.0.1:9/u")],
    )
    .await;
    sim.add_stream_by_hand("by-hand", &["rtsp://127.0.0.1:9/h"]);
    assert_eq!(
        sim.stream_names(),
        ["by-hand", "filecam", "saved", "unsaved"]
    );

    sim.restart().await;
    assert_eq!(
        (sim.api_url(), sim.rtsp_url()),
        (api_url, rtsp_url),
        "same ports"
    );
    assert_eq!(sim.stream_names(), ["filecam", "saved"]);

    api(
        &sim,
        Method::PUT,
        &[("name", "unsaved"), ("src", "rtsp://127.0.0.1:9/u")],
    )
    .await;
    let response = client()
        .post(format!("{}/api/restart", sim.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sim.stream_names(), ["filecam", "saved"]);
}

#[tokio::test]
async fn rtsp_describe_follows_the_camera() {
    let camera = SimCamera::start().await.unwrap();
    let sim = Go2rtcSim::start(Go2rtcSimOptions {
        file_streams: file_with("cam", &[&camera.url("stream1")]),
        ..Default::default()
    })
    .await
    .unwrap();
    let cam = format!("{}/cam", sim.rtsp_url());

    let options = rtsp("OPTIONS", &format!("{}/whatever", sim.rtsp_url()), "").await;
    assert_eq!((options.status, options.header("CSeq")), (200, Some("7")));
    assert!(options.header("Public").unwrap().contains("DESCRIBE"));
    assert_eq!(describe(&format!("{}/unknown", sim.rtsp_url())).await, 404);

    let up = rtsp("DESCRIBE", &cam, "Accept: application/sdp\r\n").await;
    assert_eq!(up.status, 200);
    assert_eq!(up.header("Content-Type"), Some("application/sdp"));
    assert!(
        up.body.starts_with("v=0\r\n") && up.body.contains("H264/90000"),
        "{}",
        up.body
    );
    assert_eq!(camera.describe_count(), 1);

    camera.stop().await;
    assert_eq!(
        describe(&cam).await,
        404,
        "a camera that refuses looks like an unknown stream"
    );
    camera.resume().await.unwrap();
    assert_eq!(describe(&cam).await, 200, "the next DESCRIBE dials afresh");
    assert_eq!(camera.describe_count(), 2);

    let setup = rtsp(
        "SETUP",
        &format!("{cam}/trackID=0"),
        "Transport: RTP/AVP;unicast;client_port=5000-5001\r\n",
    )
    .await;
    assert_eq!(setup.status, 461);
}

#[tokio::test]
async fn camera_stop_refuses_connections_and_resume_keeps_the_port() {
    let camera = SimCamera::start().await.unwrap();
    let url = camera.url("/x");
    assert_eq!(url, format!("rtsp://127.0.0.1:{}/x", camera.port()));
    let describe_ok = rtsp("DESCRIBE", &url, "").await;
    assert_eq!(describe_ok.status, 200);
    assert_eq!(
        describe_ok.header("Content-Base"),
        Some(format!("{url}/").as_str())
    );

    camera.stop().await;
    assert!(
        TcpStream::connect(("127.0.0.1", camera.port()))
            .await
            .is_err()
    );
    camera.resume().await.unwrap();
    camera.resume().await.unwrap();
    assert_eq!(describe(&url).await, 200);
}

#[tokio::test]
async fn camera_basic_auth_directly_and_through_go2rtc() {
    let camera = SimCamera::start_with_auth("admin", "p@ss").await.unwrap();
    let url = camera.url("main");
    let denied = rtsp("DESCRIBE", &url, "").await;
    assert_eq!(denied.status, 401);
    assert_eq!(
        denied.header("WWW-Authenticate"),
        Some(r#"Basic realm="camera""#)
    );
    // admin:p@ss
    assert_eq!(
        rtsp(
            "DESCRIBE",
            &url,
            "Authorization: Basic YWRtaW46cEBzcw==\r\n"
        )
        .await
        .status,
        200
    );
    assert_eq!(rtsp("OPTIONS", &url, "").await.status, 200);

    let sim = sim().await;
    let good = url.replace("rtsp://", "rtsp://admin:p%40ss@");
    let bad = url.replace("rtsp://", "rtsp://admin:wrong@");
    api(&sim, Method::PUT, &[("name", "good"), ("src", &good)]).await;
    api(&sim, Method::PUT, &[("name", "bad"), ("src", &bad)]).await;
    assert_eq!(describe(&format!("{}/good", sim.rtsp_url())).await, 200);
    assert_eq!(describe(&format!("{}/bad", sim.rtsp_url())).await, 404);
}

#[tokio::test]
async fn probe_query_dials_the_camera() {
    let camera = SimCamera::start().await.unwrap();
    let sim = sim().await;
    api(
        &sim,
        Method::PUT,
        &[("name", "cam"), ("src", &camera.url("x"))],
    )
    .await;
    let probe = [("src", "cam"), ("video", "all"), ("audio", "all")];

    let (status, body) = api(&sim, Method::GET, &probe).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(camera.describe_count(), 1);

    camera.stop().await;
    let (status, body) = api(&sim, Method::GET, &probe).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        format!(
            "streams: dial tcp 127.0.0.1:{}: connect: connection refused\n",
            camera.port()
        )
    );
    let (status, _) = api(&sim, Method::GET, &[("src", "cam")]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "without media keys nothing is dialed"
    );
    let (status, _) = api(&sim, Method::GET, &[("src", "nope"), ("video", "all")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn other_hosts_are_never_dialed() {
    let sim = sim().await;
    api(
        &sim,
        Method::PUT,
        &[("name", "far"), ("src", "rtsp://192.0.2.10:554/x")],
    )
    .await;
    let started = Instant::now();
    assert_eq!(describe(&format!("{}/far", sim.rtsp_url())).await, 404);
    let (status, body) = api(&sim, Method::GET, &[("src", "far"), ("video", "")]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, "streams: dial tcp 192.0.2.10:554: i/o timeout\n");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn preload_dials_first_and_keeps_the_stream_describable() {
    let camera = SimCamera::start().await.unwrap();
    let sim = sim().await;
    api(
        &sim,
        Method::PUT,
        &[("name", "cam"), ("src", &camera.url("x"))],
    )
    .await;
    let preload = |src: &'static str| {
        client()
            .put(format!("{}/api/preload", sim.api_url()))
            .query(&[("src", src)])
            .send()
    };

    assert_eq!(
        preload("nope").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    camera.stop().await;
    let down = preload("cam").await.unwrap();
    assert_eq!(down.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(down.text().await.unwrap().contains("connection refused"));
    camera.resume().await.unwrap();
    assert_eq!(preload("cam").await.unwrap().status(), StatusCode::OK);
    assert_eq!(sim.preloads(), ["cam"]);

    camera.stop().await;
    assert_eq!(
        describe(&format!("{}/cam", sim.rtsp_url())).await,
        200,
        "cached tracks"
    );
    // Re-registering makes a new stream object: the preload is gone.
    api(
        &sim,
        Method::PUT,
        &[("name", "cam"), ("src", &camera.url("x"))],
    )
    .await;
    assert!(sim.preloads().is_empty());
    assert_eq!(describe(&format!("{}/cam", sim.rtsp_url())).await, 404);
}

#[tokio::test]
async fn api_basic_auth_and_info() {
    let sim = Go2rtcSim::start(Go2rtcSimOptions {
        username: Some("admin".into()),
        password: Some("pw".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = client();
    let denied = client
        .get(format!("{}/api", sim.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(denied.text().await.unwrap(), "Unauthorized\n");

    let info: serde_json::Value = client
        .get(format!("{}/api", sim.api_url()))
        .basic_auth("admin", Some("pw"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["version"], "1.9.14");
    assert_eq!(info["config_path"], "/config/go2rtc.yaml");
    let rtsp_port = sim.rtsp_url().rsplit(':').next().unwrap().to_owned();
    assert_eq!(info["rtsp"]["listen"], format!(":{rtsp_port}"));
    assert_eq!(sim.request_count(), 2);
}

//! The RTSP prober over real sockets: against the simulated camera in each of its modes, through
//! the go2rtc and MediaMTX simulators' RTSP proxies, and against scripted peers for what no
//! simulator does (closing after a 401, malformed or oversized answers).

use std::collections::BTreeMap;
use std::time::Duration;

use camsync::health::probe::{Answer, Phase, Probe, ProbeError};
use camsync::secret::Secret;
use camsync_sim::camera::SimCamera;
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

/// Appears nowhere but in the credentials handed to probes.
const PASSWORD: &str = "pr0be-MARKER-7f3a";
const USER: &str = "admin";

fn probe(url: &str, credentials: Option<(&str, &str)>, timeout: Duration) -> Probe {
    Probe {
        url: Url::parse(url).unwrap(),
        credentials: credentials.map(|(user, pass)| (user.to_owned(), Secret::new(pass))),
        timeout,
    }
}

fn open(url: &str) -> Probe {
    probe(url, None, Duration::from_secs(3))
}

fn with_password(url: &str, password: &str) -> Probe {
    probe(url, Some((USER, password)), Duration::from_secs(3))
}

fn status(answer: Result<Answer, ProbeError>) -> u16 {
    match answer {
        Ok(answer) => answer.status,
        Err(e) => panic!("no answer: {e}"),
    }
}

fn assert_no_password(err: &ProbeError) {
    let shown = format!("{err} | {err:?}");
    assert!(!shown.contains(PASSWORD), "password leaked: {shown}");
}

#[tokio::test]
async fn options_and_describe_answer_with_the_sdp_media() {
    let camera = SimCamera::start().await.unwrap();
    let probe = open(&camera.url("main"));

    let options = probe.options().await.unwrap();
    assert_eq!(
        (options.status, options.reason.as_str()),
        (200, "OK"),
        "{options:?}"
    );
    assert!(options.media.is_empty());

    let describe = probe.describe().await.unwrap();
    assert_eq!(describe.status, 200);
    assert_eq!(describe.media, ["video H264"]);
    assert!(describe.latency < Duration::from_secs(1));

    assert_eq!(camera.options_count(), 1);
    assert_eq!(camera.describe_count(), 1);
    assert_eq!(camera.connections(), 2, "one TCP connection per probe");
}

#[tokio::test]
async fn basic_auth_is_answered_on_the_same_connection() {
    let camera = SimCamera::start_with_auth(USER, PASSWORD).await.unwrap();
    let url = camera.url("main");

    let answer = with_password(&url, PASSWORD).describe().await.unwrap();
    assert_eq!((answer.status, answer.media.len()), (200, 1));
    assert_eq!(camera.connections(), 1, "the retry reuses the connection");
    assert_eq!(camera.describe_count(), 2, "401, then 200");

    assert_eq!(status(with_password(&url, "wrong").describe().await), 401);
    assert_eq!(
        camera.describe_count(),
        4,
        "a second 401 is the answer, not a loop"
    );
    assert_eq!(status(open(&url).describe().await), 401);
    assert_eq!(camera.describe_count(), 5, "no credentials, no retry");
    assert_eq!(camera.connections(), 3);

    assert_eq!(
        status(open(&url).options().await),
        200,
        "OPTIONS needs no auth"
    );
}

#[tokio::test]
async fn digest_auth_is_answered() {
    let camera = SimCamera::start_with_digest(USER, PASSWORD).await.unwrap();
    let url = camera.url("main");

    let answer = with_password(&url, PASSWORD).describe().await.unwrap();
    assert_eq!(
        (answer.status, answer.media.as_slice()),
        (200, &["video H264".to_owned()][..])
    );
    assert_eq!(status(with_password(&url, "wrong").describe().await), 401);
    assert_eq!(status(open(&url).describe().await), 401);
    let other_user = probe(&url, Some(("root", PASSWORD)), Duration::from_secs(3));
    assert_eq!(status(other_user.describe().await), 401);
    assert_eq!(camera.connections(), 4);
}

#[tokio::test]
async fn a_stopped_camera_is_refused_at_once() {
    let camera = SimCamera::start().await.unwrap();
    camera.stop().await;
    let started = Instant::now();
    let err = probe(
        &camera.url("main"),
        Some((USER, PASSWORD)),
        Duration::from_secs(5),
    )
    .describe()
    .await
    .unwrap_err();
    assert!(matches!(err, ProbeError::Refused { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_no_password(&err);

    camera.resume().await.unwrap();
    assert_eq!(status(open(&camera.url("main")).describe().await), 200);
}

#[tokio::test]
async fn a_hung_camera_times_out_in_the_answer_phase() {
    let camera = SimCamera::start_with_auth(USER, PASSWORD).await.unwrap();
    camera.hang();
    let timeout = Duration::from_millis(300);
    let probe = probe(&camera.url("main"), Some((USER, PASSWORD)), timeout);

    let started = Instant::now();
    let err = probe.describe().await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            ProbeError::Timeout { phase: Phase::Answer, after, .. } if after == timeout
        ),
        "{err:?}"
    );
    assert!(took >= timeout && took < Duration::from_secs(2), "{took:?}");
    assert_eq!(camera.connections(), 1, "it connected, then waited");
    assert_no_password(&err);

    camera.answer();
    assert_eq!(status(probe.describe().await), 200);
}

#[tokio::test]
async fn each_probe_opens_exactly_one_connection() {
    let camera = SimCamera::start().await.unwrap();
    let probe = open(&camera.url("x"));
    for n in 1..=3 {
        probe.describe().await.unwrap();
        assert_eq!(camera.connections(), n);
    }
    probe.options().await.unwrap();
    assert_eq!(camera.connections(), 4);
}

#[tokio::test]
async fn describe_through_the_go2rtc_proxy() {
    let camera = SimCamera::start().await.unwrap();
    let sim = Go2rtcSim::start(Go2rtcSimOptions {
        file_streams: BTreeMap::from([("cam".to_owned(), vec![camera.url("s")])]),
        ..Default::default()
    })
    .await
    .unwrap();
    let cam = open(&format!("{}/cam", sim.rtsp_url()));

    let answer = cam.describe().await.unwrap();
    assert_eq!(
        (answer.status, answer.media.as_slice()),
        (200, &["video H264".to_owned()][..])
    );
    assert_eq!(camera.describe_count(), 1, "go2rtc dialed the camera");
    let unknown = open(&format!("{}/unknown", sim.rtsp_url()));
    assert_eq!(status(unknown.describe().await), 404);
    assert_eq!(
        status(unknown.options().await),
        200,
        "OPTIONS checks no path"
    );

    camera.stop().await;
    assert_eq!(
        status(cam.describe().await),
        404,
        "a refusing camera looks unknown"
    );
}

#[tokio::test]
async fn mediamtx_holds_an_on_demand_describe_until_its_start_timeout() {
    let camera = SimCamera::start().await.unwrap();
    let hung = SimCamera::start().await.unwrap();
    hung.hang();
    let on_demand = |source: String| json!({"source": source, "sourceOnDemand": true, "sourceOnDemandStartTimeout": "400ms"});
    let sim = MediamtxSim::start(MediamtxSimOptions {
        file_paths: BTreeMap::from([
            ("up".to_owned(), on_demand(camera.url("s"))),
            ("hung".to_owned(), on_demand(hung.url("s"))),
        ]),
        ..MediamtxSimOptions::default()
    })
    .await
    .unwrap();
    let path = |name: &str, timeout| probe(&format!("{}/{name}", sim.rtsp_url()), None, timeout);

    let answer = path("up", Duration::from_secs(3)).describe().await.unwrap();
    assert_eq!((answer.status, answer.media.len()), (200, 1));
    assert_eq!(
        status(path("unknown", Duration::from_secs(3)).describe().await),
        400
    );

    let err = path("hung", Duration::from_millis(150))
        .describe()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::Timeout {
                phase: Phase::Answer,
                ..
            }
        ),
        "a probe shorter than the server's dial sees only a timeout: {err:?}"
    );
    let answer = path("hung", Duration::from_secs(3))
        .describe()
        .await
        .unwrap();
    assert_eq!(answer.status, 400, "a longer one gets the server's verdict");
    assert!(answer.latency >= Duration::from_millis(400), "{answer:?}");
}

/// A peer that, for each entry of `script`, accepts one connection, reads one request, writes
/// the entry verbatim (nothing for an empty one) and hangs up. Yields the requests it read.
async fn scripted(script: Vec<String>) -> (String, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("rtsp://{}/cam", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut requests = Vec::new();
        for answer in script {
            let (stream, _) = listener.accept().await.unwrap();
            let mut stream = BufReader::new(stream);
            let mut request = String::new();
            loop {
                let mut line = String::new();
                if stream.read_line(&mut line).await.unwrap() == 0 || line == "\r\n" {
                    break;
                }
                request.push_str(&line);
            }
            requests.push(request);
            // The prober may hang up before reading everything (an oversized answer).
            let _ = stream.get_mut().write_all(answer.as_bytes()).await;
        }
        requests
    });
    (url, task)
}

#[tokio::test]
async fn a_server_that_hangs_up_after_its_401_is_answered_on_a_new_connection() {
    let (url, peer) = scripted(vec![
        "RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nConnection: close\r\n\
         WWW-Authenticate: Basic realm=\"x\"\r\n\r\n"
            .to_owned(),
        "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: 48\r\n\r\n\
         m=audio 0 RTP/AVP 0\r\nm=video 0 RTP/AVP 26\r\nv=0\r\n"
            .to_owned(),
    ])
    .await;
    let answer = with_password(&url, PASSWORD).describe().await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.media, ["audio PCMU", "video JPEG"]);

    let requests = peer.await.unwrap();
    assert!(requests[0].starts_with(&format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n")));
    assert!(requests[0].contains("\r\nUser-Agent: camsync/"));
    assert!(requests[0].contains("\r\nAccept: application/sdp\r\n"));
    assert!(
        !requests[0].contains("Authorization"),
        "no credentials before a challenge"
    );
    assert!(requests[1].starts_with(&format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\n")));
    assert!(requests[1].contains("\r\nAuthorization: Basic "));
}

#[tokio::test]
async fn broken_answers_are_errors_and_none_shows_the_password() {
    let oversized_head = format!("RTSP/1.0 200 OK\r\nX: {}\r\n\r\n", "a".repeat(1 << 20));
    let cases: [(&str, String); 5] = [
        ("closed", String::new()),
        (
            "http",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned(),
        ),
        (
            "huge body",
            "RTSP/1.0 200 OK\r\nContent-Length: 99999999\r\n\r\n".to_owned(),
        ),
        ("huge head", oversized_head),
        (
            "401 without a challenge",
            "RTSP/1.0 401 Unauthorized\r\n\r\n".to_owned(),
        ),
    ];
    for (case, answer) in cases {
        let (url, peer) = scripted(vec![answer]).await;
        let started = Instant::now();
        let err = with_password(&url, PASSWORD).describe().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{case}");
        let expected = match case {
            "closed" => matches!(err, ProbeError::Closed { .. }),
            "401 without a challenge" => matches!(err, ProbeError::Auth { .. }),
            _ => matches!(err, ProbeError::Protocol { .. }),
        };
        assert!(expected, "{case}: {err:?}");
        assert_no_password(&err);
        peer.await.unwrap();
    }

    let mut leaky = with_password("rtsp://127.0.0.1:9/x", PASSWORD);
    leaky.url = Url::parse(&format!("rtsp://{USER}:{PASSWORD}@127.0.0.1:9/x")).unwrap();
    let err = leaky.describe().await.unwrap_err();
    assert!(matches!(err, ProbeError::InvalidUrl { .. }), "{err:?}");
    assert_no_password(&err);
    assert!(!format!("{leaky:?}").contains(PASSWORD));
}

/// A "camera" that answers every request with a header that never ends: `line` again and again.
async fn endless_header(line: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("rtsp://{}/cam", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 2048];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
                let _ = stream.write_all(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n").await;
                while stream.write_all(line.as_bytes()).await.is_ok() {}
            });
        }
    });
    url
}

#[tokio::test]
async fn an_endless_header_is_an_error_not_unbounded_memory() {
    for line in [
        "X-Pad: 1\r\n",
        "X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        let url = endless_header(line).await;
        let mut probe = with_password(&url, PASSWORD);
        probe.timeout = Duration::from_secs(30);
        let started = Instant::now();
        let err = probe.describe().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{line:?}");
        assert!(matches!(err, ProbeError::Protocol { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("lines") || text.contains("bytes"),
            "{line:?}: {text}"
        );
    }
}

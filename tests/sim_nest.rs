//! The Nest (SDM API) simulator over real sockets: the OAuth refresh, the device list, the
//! live-stream commands with Google's request and answer shapes, the command quota, and an RTSP
//! endpoint that serves a stream only while its token is alive.

#[path = "common/player.rs"]
mod player;

use std::time::{Duration, SystemTime};

use camsync::health::probe::Probe;
use camsync_sim::nest::{EXTEND, GENERATE, NestSim, NestSimOptions, STOP};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

const DEADLINE: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn sim(options: NestSimOptions) -> NestSim {
    NestSim::start(options).await.unwrap()
}

/// The token endpoint's answer to a refresh with these credentials.
async fn refresh(sim: &NestSim, client_id: &str, secret: &str, token: &str) -> (u16, Value) {
    let response = client()
        .post(sim.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("refresh_token", token),
        ])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// An access token for the default credentials.
async fn access_token(sim: &NestSim) -> String {
    let o = NestSimOptions::default();
    let (status, body) = refresh(sim, &o.client_id, &o.client_secret, &o.refresh_token).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn get(sim: &NestSim, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = client().get(format!("{}/{path}", sim.sdm_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn command(
    sim: &NestSim,
    token: &str,
    device: &str,
    command: &str,
    params: Value,
) -> (u16, Value) {
    let response = client()
        .post(format!(
            "{}/{}:executeCommand",
            sim.sdm_url(),
            sim.device_name(device)
        ))
        .bearer_auth(token)
        .json(&json!({ "command": command, "params": params }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// `command` (an extension or a stop) on cam-1's stream with `extension` token.
async fn on_stream(
    sim: &NestSim,
    token: &str,
    command_name: &str,
    extension: &str,
) -> (u16, Value) {
    let params = json!({ "streamExtensionToken": extension });
    command(sim, token, "cam-1", command_name, params).await
}

/// A generated stream: its URL and extension token.
async fn generate(sim: &NestSim, token: &str, device: &str) -> (String, String) {
    let (status, body) = command(sim, token, device, GENERATE, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let results = &body["results"];
    (
        results["streamUrls"]["rtspUrl"]
            .as_str()
            .unwrap()
            .to_owned(),
        results["streamExtensionToken"].as_str().unwrap().to_owned(),
    )
}

/// The status of a `DESCRIBE` of `url`, as camsync's prober sees it.
async fn describe(url: &str) -> u16 {
    let probe = Probe {
        url: url.parse().unwrap(),
        credentials: None,
        timeout: Duration::from_secs(5),
    };
    probe.describe().await.unwrap().status
}

/// Polls `describe(url)` until it answers `status` or [`DEADLINE`] passes.
async fn describe_until(url: &str, status: u16) -> bool {
    let end = tokio::time::Instant::now() + DEADLINE;
    while tokio::time::Instant::now() < end {
        if describe(url).await == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Whether the server closes a playing session within [`DEADLINE`] (media until then is read
/// and dropped).
async fn session_ends(mut session: tokio::net::TcpStream) -> bool {
    let mut buffer = vec![0u8; 64 * 1024];
    let read_to_end = async {
        loop {
            match session.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(DEADLINE, read_to_end).await.is_ok()
}

/// Whether a playing session still receives media (an interleaved frame) within a second.
async fn media_flows(session: &mut tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let first = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match session.read(&mut byte).await {
                Ok(0) | Err(_) => return false,
                Ok(_) if byte[0] == b'$' => return true,
                Ok(_) => {}
            }
        }
    });
    first.await.unwrap_or(false)
}

fn replace_auth(url: &str, token: &str) -> String {
    let (base, _) = url.split_once("?auth=").unwrap();
    format!("{base}?auth={token}")
}

#[tokio::test]
async fn refresh_grants_access_tokens_and_refuses_wrong_or_revoked_credentials() {
    let sim = sim(NestSimOptions::default()).await;
    let o = NestSimOptions::default();

    let (status, body) = refresh(&sim, &o.client_id, &o.client_secret, &o.refresh_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));

    let (status, body) = refresh(&sim, "other-client", &o.client_secret, &o.refresh_token).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));
    let (status, body) = refresh(&sim, &o.client_id, &o.client_secret, "1//wrong").await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")));

    let before = access_token(&sim).await;
    sim.revoke_refresh_token();
    let (status, body) = refresh(&sim, &o.client_id, &o.client_secret, &o.refresh_token).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")));
    let (status, _) = get(&sim, "enterprises/sim-project/devices", Some(&before)).await;
    assert_eq!(status, 200, "an access token given before stays valid");
    assert_eq!(sim.token_requests(), 5);
}

#[tokio::test]
async fn devices_are_listed_for_a_bearer_token_only() {
    let sim = sim(NestSimOptions {
        devices: vec!["front".into(), "garden".into()],
        ..NestSimOptions::default()
    })
    .await;
    let (status, body) = get(&sim, "enterprises/sim-project/devices", None).await;
    assert_eq!(
        (status, &body["error"]["status"]),
        (401, &json!("UNAUTHENTICATED"))
    );

    let token = access_token(&sim).await;
    let (status, body) = get(&sim, "enterprises/sim-project/devices", Some(&token)).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [sim.device_name("front"), sim.device_name("garden")]);
    assert_eq!(
        body["devices"][0]["traits"]["sdm.devices.traits.CameraLiveStream"]["supportedProtocols"],
        json!(["RTSP"])
    );
    let (status, body) = get(&sim, "enterprises/sim-project/devices/nope", Some(&token)).await;
    assert_eq!(
        (status, &body["error"]["status"]),
        (404, &json!("NOT_FOUND"))
    );
}

#[tokio::test]
async fn a_generated_stream_plays_through_extensions_and_ends_when_stopped() {
    let sim = sim(NestSimOptions::default()).await;
    let token = access_token(&sim).await;
    let started = SystemTime::now();
    let (status, body) = command(&sim, &token, "cam-1", GENERATE, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let results = &body["results"];
    let url = results["streamUrls"]["rtspUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let stream_token = results["streamToken"].as_str().unwrap();
    assert!(url.ends_with(&format!("?auth={stream_token}")), "{url}");
    let expires = humantime::parse_rfc3339(results["expiresAt"].as_str().unwrap()).unwrap();
    let lifetime = expires.duration_since(started).unwrap();
    assert!(
        lifetime > Duration::from_secs(295) && lifetime <= Duration::from_secs(301),
        "{lifetime:?}"
    );
    assert_eq!(describe(&url).await, 200);
    assert_eq!(describe(&replace_auth(&url, "g.0.forged")).await, 401);
    let mut session = player::play(&url).await;
    assert!(media_flows(&mut session).await);

    let extension = results["streamExtensionToken"].as_str().unwrap();
    let (status, body) = on_stream(&sim, &token, EXTEND, extension).await;
    assert_eq!(status, 200, "{body}");
    let extended = &body["results"];
    assert!(
        extended.get("streamUrls").is_none(),
        "an extension has no URL"
    );
    let renewed = replace_auth(&url, extended["streamToken"].as_str().unwrap());
    assert_ne!(renewed, url);
    assert_eq!(describe(&renewed).await, 200);
    assert!(
        media_flows(&mut session).await,
        "an extension keeps viewers"
    );
    let (status, body) = on_stream(&sim, &token, EXTEND, extension).await;
    assert_eq!(
        (status, &body["error"]["status"]),
        (400, &json!("INVALID_ARGUMENT")),
        "an extension token is used once"
    );

    let next = extended["streamExtensionToken"].as_str().unwrap();
    let (status, body) = on_stream(&sim, &token, STOP, next).await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(describe(&renewed).await, 401);
    assert!(session_ends(session).await, "a stop ends playing sessions");
    assert!(sim.live_devices().is_empty());
}

#[tokio::test]
async fn a_stream_not_extended_expires_and_its_viewers_are_cut() {
    let sim = sim(NestSimOptions {
        stream_lifetime: Duration::from_millis(800),
        ..NestSimOptions::default()
    })
    .await;
    let token = access_token(&sim).await;
    let (url, extension) = generate(&sim, &token, "cam-1").await;
    let session = player::play(&url).await;
    assert_eq!(sim.live_devices(), ["cam-1"]);

    assert!(session_ends(session).await, "the session ends at expiry");
    assert!(describe_until(&url, 401).await);
    assert!(sim.live_devices().is_empty());
    let (status, body) = on_stream(&sim, &token, EXTEND, &extension).await;
    assert_eq!(
        (status, &body["error"]["status"]),
        (400, &json!("INVALID_ARGUMENT"))
    );
}

#[tokio::test]
async fn commands_beyond_the_quota_answer_429_until_a_minute_has_passed() {
    let sim = sim(NestSimOptions {
        devices: vec!["a".into(), "b".into()],
        ..NestSimOptions::default()
    })
    .await;
    let token = access_token(&sim).await;
    for n in 0..10 {
        generate(&sim, &token, if n % 2 == 0 { "a" } else { "b" }).await;
    }
    let (status, body) = command(&sim, &token, "a", GENERATE, json!({})).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(body["error"]["code"], 429);

    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::time::resume();
    generate(&sim, &token, "a").await;
    let statuses: Vec<u16> = sim.commands().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [[200; 10].as_slice(), &[429, 200]].concat());
}

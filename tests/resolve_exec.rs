//! `exec` and `http` resolvers: a command or a GET that tells a camera's current URL and its
//! expiry. One that hangs, prints garbage, fails or answers an expiry in the past gives a clear
//! error for its camera and no secret; the other cameras are unaffected; and in `camsync run`
//! the resolved URL reaches the servers.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use camsync::resolve::account::{Account, Settings, StreamState};
use camsync::resolve::exec::ExecResolver;
use camsync::resolve::http::HttpResolver;
use camsync::resolve::live::LiveStreams;
use camsync::secret::Secret;
use common::daemon::{DEADLINE, start_with};
use common::*;
use tokio::net::TcpListener;

/// What only a resolver's output holds: it must never be shown.
const TOKEN: &str = "Tok-91f2e7";
/// A token some vendors put in the URL's path: it must never be shown either.
const PATH_TOKEN: &str = "Path-5c03aa";

/// A resolver script: by device, a good answer, a hang, garbage, an expiry in the past, a
/// failure.
fn script(dir: &Path) -> String {
    let path = dir.join("resolve.sh");
    std::fs::write(
        &path,
        format!(
            r#"#!/bin/sh
case "$1" in
  good*) echo "{{\"url\": \"rtsp://127.0.0.1:9/{PATH_TOKEN}/$1?token={TOKEN}\", \"expires_at\": \"$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)\"}}" ;;
  hang) sleep 30 ;;
  garbage) echo "url=rtsp://127.0.0.1:9/x?token={TOKEN}" ;;
  past) echo "{{\"url\": \"rtsp://127.0.0.1:9/p?token={TOKEN}\", \"expires_at\": \"2001-01-01T00:00:00Z\"}}" ;;
  *) echo "no such camera, token {TOKEN}" >&2; exit 3 ;;
esac
"#
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn exec(dir: &Path) -> ExecResolver {
    ExecResolver {
        name: "vendor".into(),
        argv: vec![script(dir), "{device}".into()],
        timeout: Duration::from_millis(500),
    }
}

/// The error a device's resolution gives, checked for its resolver, device and no secret.
async fn error_of(resolver: &impl LiveStreams, device: &str) -> String {
    let error = resolver.generate(device).await.unwrap_err().to_string();
    assert!(error.contains(device), "{error}");
    assert!(!error.contains(TOKEN), "the token leaks: {error}");
    error
}

#[tokio::test]
async fn an_exec_resolver_answers_or_says_clearly_what_went_wrong_per_camera() {
    let dir = tempfile::tempdir().unwrap();
    let resolver = exec(dir.path());
    let grant = resolver.generate("good").await.unwrap();
    assert_eq!(
        grant.url.expose(),
        format!("rtsp://127.0.0.1:9/{PATH_TOKEN}/good?token={TOKEN}")
    );
    let left = grant
        .expires
        .saturating_duration_since(tokio::time::Instant::now());
    assert!(left > Duration::from_secs(3500), "{left:?}");

    let started = std::time::Instant::now();
    let hang = error_of(&resolver, "hang").await;
    assert!(
        hang.contains("no answer within 500ms") && hang.contains("stopped"),
        "{hang}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the command was killed"
    );
    let garbage = error_of(&resolver, "garbage").await;
    assert!(garbage.contains("is not the JSON"), "{garbage}");
    let past = error_of(&resolver, "past").await;
    assert!(
        past.contains("2001-01-01T00:00:00Z is in the past"),
        "{past}"
    );
    let failed = error_of(&resolver, "nope").await;
    assert!(failed.contains("exit status: 3"), "{failed}");
    assert!(
        failed.starts_with("resolver vendor: device nope"),
        "{failed}"
    );
}

#[tokio::test]
async fn a_broken_camera_of_a_resolver_leaves_the_others_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let account = Account::start(
        "vendor",
        exec(dir.path()),
        Settings {
            jitter: || 0.0,
            ..Settings::paced(600, Duration::from_secs(60))
        },
    );
    let wanted: BTreeMap<String, String> = ["garbage", "good-1", "hang", "past", "good-2"]
        .iter()
        .map(|d| (format!("cam-{d}"), (*d).to_owned()))
        .collect();
    account.want(wanted);
    let mut resolutions = account.resolutions();
    let settled = tokio::time::timeout(
        DEADLINE,
        resolutions.wait_for(|r| {
            r.len() == 5
                && r.values()
                    .all(|c| c.state == StreamState::Live || c.error.is_some())
        }),
    )
    .await;
    assert!(settled.is_ok(), "{:?}", account.resolutions().borrow());
    let resolutions = account.resolutions().borrow().clone();
    for good in ["cam-good-1", "cam-good-2"] {
        assert_eq!(resolutions[good].state, StreamState::Live, "{good}");
    }
    for (bad, says) in [
        ("cam-garbage", "is not the JSON"),
        ("cam-hang", "no answer within"),
        ("cam-past", "in the past"),
    ] {
        let r = &resolutions[bad];
        assert_eq!(
            (r.state, r.url.is_none()),
            (StreamState::Pending, true),
            "{bad}"
        );
        let error = r.error.as_deref().unwrap_or_default();
        assert!(error.contains(says), "{bad}: {error}");
    }
}

#[tokio::test]
async fn an_http_resolver_sends_its_bearer_and_keeps_the_answer_to_itself() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let router = axum::Router::new().route(
        "/url/{device}",
        get(
            |UrlPath(device): UrlPath<String>, headers: HeaderMap| async move {
                let authorized = headers
                    .get("authorization")
                    .is_some_and(|v| v == "Bearer api-key");
                match (authorized, device.as_str()) {
                    (false, _) => (StatusCode::UNAUTHORIZED, format!("no; {TOKEN}")),
                    (true, "door 1") => (
                        StatusCode::OK,
                        format!(r#"{{"urls": ["rtsp://127.0.0.1:9/d?token={TOKEN}"]}}"#),
                    ),
                    (true, _) => (StatusCode::OK, format!("<html>{TOKEN}</html>")),
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/url/{{device}}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let key = Some(Secret::new("api-key"));
    let resolver = HttpResolver::new("cloud", &url, key, Duration::from_secs(5)).unwrap();
    let grant = resolver.generate("door 1").await.unwrap();
    assert_eq!(
        grant.url.expose(),
        format!("rtsp://127.0.0.1:9/d?token={TOKEN}")
    );
    let garbage = error_of(&resolver, "other").await;
    assert!(garbage.contains("is not the JSON"), "{garbage}");

    let keyless = HttpResolver::new("cloud", &url, None, Duration::from_secs(5)).unwrap();
    let refused = error_of(&keyless, "door 1").await;
    assert!(refused.contains("GET answered 401"), "{refused}");
}

#[tokio::test]
async fn camsync_run_gives_the_servers_what_an_exec_resolver_answers() {
    let f = Fixture::new().await;
    let script = script(f.dir.path());
    f.write_config(&format!(
        "resolvers:\n  - name: vendor\n    exec: [{script}, \"{{device}}\"]\n    timeout: 2s\n"
    ));
    std::fs::write(
        f.path("cameras.yaml"),
        "cameras:\n  - name: yard\n    resolve: { resolver: vendor, device: good-yard }\n  \
         - name: shed\n    resolve: { resolver: vendor, device: past }\n  \
         - name: wrong\n    resolve: { resolver: nobody, device: x }\n",
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let d = start_with(f.config(), Some(listener));
    let expected = format!("rtsp://127.0.0.1:9/{PATH_TOKEN}/good-yard?token={TOKEN}");
    let yard = || f.go2rtc.stream_sources("yard") == Some(vec![expected.clone()]);
    assert!(eventually(DEADLINE, yard).await, "{:?}", f.names());
    assert_eq!(
        f.names(),
        ["yard"],
        "shed has no URL yet; wrong is rejected"
    );
    // The API shows the resolved stream's scheme and host alone: its path holds a token too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let body = reqwest::get(format!("{api}/v1/cameras/yard"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for secret in [TOKEN, PATH_TOKEN] {
        assert!(!body.contains(secret), "{secret} leaks: {body}");
    }
    let yard: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(yard["sources"][0], "rtsp://127.0.0.1:9/***");
    let rejected = d.current();
    assert!(rejected.syncs >= 1);
    d.stop().await;

    // A one-shot plan has no resolver: it holds the stream it cannot resolve, and says why
    // the third camera is rejected.
    let report = f.plan().await;
    let yard = &report.targets[0].steps[0];
    assert_eq!((yard.stream.as_str(), yard.action.name()), ("yard", "hold"));
    assert_eq!(
        report.rejected[0].reason,
        r#"camera "wrong": resolve: unknown resolver "nobody" (in the config: vendor)"#
    );
}

//! The calls the scenarios make, answered as plain data (status and body) so that the sim's
//! and the real server's answers compare as values.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A status and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

pub async fn http(method: &str, url: &str, body: Option<Value>) -> Answer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client.request(method, url).timeout(Duration::from_secs(30));
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Answer { status, body }
}

pub async fn get(url: &str) -> Answer {
    http("GET", url, None).await
}

/// The status a `DESCRIBE` of `url` gets (`None`: no answer within `timeout`, or the
/// connection failed), and how long it took.
pub async fn describe(url: &str, timeout: Duration) -> (Option<u16>, Duration) {
    let started = tokio::time::Instant::now();
    let status = tokio::time::timeout(timeout, describe_status(url)).await;
    (status.ok().flatten(), started.elapsed())
}

async fn describe_status(url: &str) -> Option<u16> {
    let authority = url.strip_prefix("rtsp://")?.split('/').next()?;
    let stream = TcpStream::connect(authority).await.ok()?;
    let (reader, mut writer) = stream.into_split();
    let request = format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n");
    writer.write_all(request.as_bytes()).await.ok()?;
    let mut line = String::new();
    BufReader::new(reader).read_line(&mut line).await.ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Polls `check` every 100 ms until it returns `Some` or `deadline` passes.
pub async fn until<T, F, Fut>(deadline: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Percent-encodes a query value.
pub fn q(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Runs `camsync` with `config` off the async runtime; panics unless it succeeds.
pub async fn camsync(config: &std::path::Path, args: &[&str]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_camsync"));
    command
        .args(args)
        .env("CAMSYNC_CONFIG", config)
        .env_remove("CAMSYNC_LOG")
        .stdin(std::process::Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("camsync task")
        .expect("run camsync");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "camsync {args:?} failed:\n{text}");
    text
}

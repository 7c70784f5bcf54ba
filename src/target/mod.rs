//! Targets: the servers camsync writes to, behind one trait.
//!
//! A target lists the stream names it has, and creates/replaces or deletes one stream at a
//! time. It also renders what it would send for a camera ([`Target::render`]); the ledger's
//! fingerprint of that text is how camsync knows, without reading secrets back from a server
//! that masks them, whether a stream is up to date.

pub mod go2rtc;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::camera::Camera;
use crate::config::{TargetConfig, TargetKind};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Target: Send + Sync {
    fn name(&self) -> &str;

    /// A canonical rendering of everything this target would send for `camera`, secrets
    /// included. Never log it; it only feeds the fingerprint.
    fn render(&self, camera: &Camera) -> String;

    /// The names of every stream the server has now, camsync's or not.
    fn list(&self) -> BoxFuture<'_, Result<BTreeSet<String>, TargetError>>;

    /// Creates the stream, or replaces it entirely.
    fn upsert<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>>;

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Applied, TargetError>>;
}

/// How a write took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// The server changed its running state but could not save its own config file (go2rtc
    /// with a read-only or missing config): the change is lost when it restarts, and camsync's
    /// resync puts it back.
    NotPersisted {
        detail: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {target}: cannot reach {url}: {detail}")]
    Unreachable {
        target: String,
        url: String,
        detail: String,
    },
    #[error("target {target}: {op} timed out after {timeout:?}")]
    Timeout {
        target: String,
        op: String,
        timeout: Duration,
    },
    #[error(
        "target {target}: {op}: the server refused the credentials (401); check the target's `username` and `password_env` / `password_file`"
    )]
    Unauthorized { target: String, op: String },
    #[error("target {target}: {op}: rejected: {detail}")]
    Rejected {
        target: String,
        op: String,
        detail: String,
    },
    #[error("target {target}: {op}: HTTP {status}: {detail}")]
    Status {
        target: String,
        op: String,
        status: u16,
        detail: String,
    },
    #[error("target {target}: {op}: unexpected answer: {detail}")]
    Protocol {
        target: String,
        op: String,
        detail: String,
    },
    #[error("target {target}: cannot set up an HTTP client: {detail}")]
    Client { target: String, detail: String },
}

impl TargetError {
    /// Whether trying again later can help: transport failures, timeouts, 5xx and 429.
    pub fn is_retryable(&self) -> bool {
        match self {
            TargetError::Unreachable { .. } | TargetError::Timeout { .. } => true,
            TargetError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Builds the configured targets.
pub fn from_config(configs: &[TargetConfig]) -> Result<Vec<Arc<dyn Target>>, TargetError> {
    configs
        .iter()
        .map(|c| -> Result<Arc<dyn Target>, TargetError> {
            match c.kind {
                TargetKind::Go2rtc => Ok(Arc::new(go2rtc::Go2rtc::new(c)?)),
            }
        })
        .collect()
}

/// An HTTP client with rustls (ring) and the target's timeout.
pub(crate) fn http_client(target: &str, timeout: Duration) -> Result<reqwest::Client, TargetError> {
    // Several clients may race to install the process-wide provider; losing the race is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| TargetError::Client {
            target: target.to_owned(),
            detail: e.without_url().to_string(),
        })
}

/// Maps a transport error. The URL is dropped from the message: its query may hold a source
/// with credentials.
pub(crate) fn transport_error(
    target: &str,
    op: &str,
    base: &url::Url,
    timeout: Duration,
    e: reqwest::Error,
) -> TargetError {
    if e.is_timeout() {
        return TargetError::Timeout {
            target: target.to_owned(),
            op: op.to_owned(),
            timeout,
        };
    }
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&crate::secret::redact(&s.to_string()));
        source = s.source();
    }
    TargetError::Unreachable {
        target: target.to_owned(),
        url: base.to_string(),
        detail,
    }
}

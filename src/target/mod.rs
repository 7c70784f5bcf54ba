//! Targets: the servers camsync writes to, behind one trait.
//!
//! A target lists the stream names it has, and creates/replaces or deletes one stream at a
//! time. It also renders what it would send for a camera ([`Target::render`]); the ledger's
//! fingerprint of that text is how camsync knows, without reading secrets back from a server
//! that masks them, whether a stream is up to date.

pub mod go2rtc;
mod http;
pub mod mediamtx;
pub mod timed;
mod yaml_file;

use std::collections::{BTreeMap, BTreeSet};
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

    /// What the server says of each stream it has now (passive health signals), in one or a
    /// few list calls.
    fn observe(&self) -> BoxFuture<'_, Result<BTreeMap<String, StreamObservation>, TargetError>>;

    /// Creates the stream, or replaces it entirely.
    fn upsert<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>>;

    /// Creates a stream the server did not have at the last list; where the server can add a
    /// stream in one call that refuses an existing one, it costs one call, not a read and a
    /// write (and falls back to [`Target::upsert`] if the stream appeared meanwhile).
    fn create<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
        self.upsert(camera)
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Applied, TargetError>>;

    /// Cheaply asks whether the server lost what camsync wrote: its run identifier (MediaMTX's
    /// start time) and whether `canary`, a stream camsync owns there, still exists. Called
    /// every `restart_check`, so it must cost one or two small reads.
    fn run_check<'a>(
        &'a self,
        canary: Option<&'a str>,
    ) -> BoxFuture<'a, Result<RunCheck, TargetError>>;

    /// Brings a stream the health monitor found lost (`restart: false`: add it again) or stuck
    /// (`restart: true`: delete and add it, which gives new consumers a fresh stream at once).
    fn recover<'a>(
        &'a self,
        camera: &'a Camera,
        restart: bool,
    ) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(async move {
            if restart {
                self.delete(&camera.name).await?;
            }
            // Lost or just deleted: most likely not there.
            self.create(camera).await
        })
    }

    /// Whether [`Target::recover`] can act here (a file target needs the server's `api:`).
    fn can_recover(&self) -> bool {
        true
    }

    /// Whether camsync can see what the server runs, not only what it was sent (a file target
    /// without the server's `api:` cannot check that the server loaded the file).
    fn observes(&self) -> bool {
        true
    }

    /// Restarts the whole server, when the server can be asked to (go2rtc's
    /// `POST /api/restart`). Only the health monitor's opt-in escalation calls it.
    fn restart_server(&self) -> Option<BoxFuture<'_, Result<(), TargetError>>> {
        None
    }

    /// A target that applies many changes in one go (a file: one atomic write for any number
    /// of streams) says so here; the reconciler then hands it all of a sync's writes at once.
    fn as_batch(&self) -> Option<&dyn BatchTarget> {
        None
    }
}

/// One write of a sync.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Upsert(&'a Camera),
    Delete(&'a str),
}

/// A file as it is and as a batch would leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub path: std::path::PathBuf,
    pub before: String,
    pub after: String,
}

pub trait BatchTarget: Send + Sync {
    /// What `write_batch` would make of the file, without writing anything.
    fn preview<'a>(
        &'a self,
        changes: &'a [Change<'a>],
    ) -> BoxFuture<'a, Result<Preview, TargetError>>;

    /// Applies `changes` together. The outer error means nothing was applied (and may be
    /// retried); otherwise there is one result per change, in order (a change the target
    /// cannot represent fails on its own).
    fn write_batch<'a>(
        &'a self,
        changes: &'a [Change<'a>],
    ) -> BoxFuture<'a, Result<Vec<Result<Applied, TargetError>>, TargetError>>;
}

/// What [`Target::run_check`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCheck {
    /// Changes when the server restarts; `None` when the server does not say.
    pub epoch: Option<String>,
    /// The canary stream is gone: the server restarted, reloaded its file, or someone deleted it.
    pub canary_missing: bool,
}

/// What a server's API says of one stream right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamObservation {
    /// The source is connected and delivering (MediaMTX `ready`; go2rtc: a producer that has
    /// received bytes).
    pub ready: bool,
    /// Bytes received from the camera so far; growing while data flows.
    pub bytes_in: u64,
    /// Readers or consumers attached.
    pub consumers: usize,
}

/// How a write took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// The write took effect with a caveat the operator should know: go2rtc changed its running
    /// state but could not save its own config file (read-only or missing: the change is lost
    /// when it restarts, and camsync's resync puts it back), or a preload is still pending
    /// because the camera is down.
    Partial {
        detail: String,
    },
}

/// Why a call to a target failed. Each message is whole (the cause included, credentials
/// masked), so a log line or an API answer needs only its `Display`; the typed cause is kept as
/// its `source()` where there is one.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "target {target}: cannot reach {url}: {}",
        http::redacted_chain(source)
    )]
    Unreachable {
        target: String,
        url: String,
        /// Without its URL (which may carry credentials).
        #[source]
        source: reqwest::Error,
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
    /// The server refused a write; `detail` is its answer.
    #[error("target {target}: {op}: rejected: {detail}")]
    Rejected {
        target: String,
        op: String,
        detail: String,
    },
    #[error("target {target}: {op}: HTTP {status}: {detail}")]
    Http {
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
    /// The target's file is not as it must be (camsync's own finding).
    #[error("target {target}: {detail}")]
    File { target: String, detail: String },
    /// The target's file could not be read, parsed or edited.
    #[error("target {target}: {what}: {source}")]
    FileAccess {
        target: String,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("target {target}: {source}")]
    Write {
        target: String,
        #[source]
        source: crate::atomic_file::AtomicWriteError,
    },
    /// What camsync owns there could not be read from or written to its ledger.
    #[error("target {target}: {source}")]
    Ledger {
        target: String,
        #[source]
        source: crate::ledger::LedgerError,
    },
    #[error("target {target}: cannot set up an HTTP client: {source}")]
    Client {
        target: String,
        #[source]
        source: reqwest::Error,
    },
    /// The target's configuration lacks what this use needs (config validation rules it out).
    #[error("target {target}: {reason}")]
    Config {
        target: String,
        reason: &'static str,
    },
    #[error(
        "target {target}: {op}: the answer is larger than {limit} bytes, the most camsync reads; \
         check that the target's `api` URL is the server's API"
    )]
    TooLarge {
        target: String,
        op: String,
        limit: usize,
    },
}

impl TargetError {
    /// Whether trying again later can help: transport failures, timeouts, 5xx and 429.
    pub fn is_retryable(&self) -> bool {
        match self {
            TargetError::Unreachable { .. } | TargetError::Timeout { .. } => true,
            TargetError::Http { status, .. } => *status >= 500 || *status == 429,
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
                TargetKind::Mediamtx => Ok(Arc::new(mediamtx::Mediamtx::new(c)?)),
                TargetKind::Go2rtcFile | TargetKind::MediamtxFile => {
                    Ok(Arc::new(yaml_file::YamlFile::new(c)?))
                }
            }
        })
        .collect()
}

//! The one observation path of the health monitor's rounds and of `camsync probe`: many
//! streams looked at through a server's RTSP proxy (`DESCRIBE`), and, where the caller asks,
//! their cameras (a TCP connect), at most [`PROBES_IN_FLIGHT`] at once so that a large site
//! never opens hundreds of RTSP sessions together.
//!
//! All network access goes through a [`Prober`], so rounds and checks run against fakes under
//! tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::probe::{Answer, Probe, ProbeError};
use super::state::CameraReach;
use crate::target::BoxFuture;

/// How many streams are looked at at once.
pub const PROBES_IN_FLIGHT: usize = 8;

/// The view of the network: a `DESCRIBE` through a server's proxy, and whether a camera
/// accepts a connection.
pub trait Prober: Send + Sync {
    fn describe(
        &self,
        url: url::Url,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Answer, ProbeError>>;
    fn reach(&self, addr: String, timeout: Duration) -> BoxFuture<'_, CameraReach>;
}

/// The real network: RTSP `DESCRIBE` and a plain TCP connect.
pub struct NetProber;

impl Prober for NetProber {
    fn describe(
        &self,
        url: url::Url,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Answer, ProbeError>> {
        Box::pin(async move {
            Probe {
                url,
                credentials: None,
                timeout,
            }
            .describe()
            .await
        })
    }

    /// A TCP connect: a down camera refuses it (or lets it time out) without any session cost.
    fn reach(&self, addr: String, timeout: Duration) -> BoxFuture<'_, CameraReach> {
        Box::pin(async move {
            match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(_)) => CameraReach::Answers,
                _ => CameraReach::Down,
            }
        })
    }
}

/// When a look asks the camera itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskCamera {
    /// Only when the proxy was asked and does not serve the stream.
    IfNotServed,
    /// Always: the stream looks frozen, and a cached answer of the proxy proves nothing.
    Always,
}

/// One stream to look at: `key` is the caller's name for it.
pub struct Look<K> {
    pub key: K,
    /// The stream's path on the server's proxy; `None` when the target has no `rtsp:`.
    pub proxy: Option<url::Url>,
    /// `host:port` of the camera, when it can be reached over TCP.
    pub camera: Option<String>,
    pub ask_camera: AskCamera,
}

/// What one look saw.
pub struct Seen<K> {
    pub key: K,
    /// The proxy's answer; `None` when there was no proxy to ask.
    pub proxy: Option<Result<Answer, ProbeError>>,
    /// How long the proxy took to answer (or to fail).
    pub latency: Duration,
    /// `Unknown` when the camera was not asked.
    pub camera: CameraReach,
}

impl<K> Seen<K> {
    /// Whether the proxy served the stream (`DESCRIBE` answered 200).
    pub fn served(&self) -> bool {
        matches!(&self.proxy, Some(Ok(answer)) if answer.status == 200)
    }

    /// Whether the proxy asked for credentials (401): a server whose reads need them says
    /// nothing about the stream to a probe without them.
    pub fn refused(&self) -> bool {
        matches!(&self.proxy, Some(Ok(answer)) if answer.status == 401)
    }
}

/// Time limits of a sweep.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// One proxy probe: longer than the server's own dial (see [`super::probe`]).
    pub probe: Duration,
    /// One camera connect.
    pub camera: Duration,
}

/// Looks at every stream of `looks`, at most [`PROBES_IN_FLIGHT`] at once; the results in the
/// order they finished.
pub async fn sweep<K: Send + 'static>(
    prober: &Arc<dyn Prober>,
    looks: Vec<Look<K>>,
    limits: Limits,
) -> Vec<Seen<K>> {
    let permits = Arc::new(Semaphore::new(PROBES_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    for look in looks {
        let permits = permits.clone();
        let prober = prober.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            look_once(prober.as_ref(), look, limits).await
        });
    }
    let mut seen = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(one) => seen.push(one),
            Err(e) => tracing::error!(error = %e, "a probe task failed"),
        }
    }
    seen
}

async fn look_once<K>(prober: &dyn Prober, look: Look<K>, limits: Limits) -> Seen<K> {
    let started = Instant::now();
    let proxy = match look.proxy {
        Some(url) => Some(prober.describe(url, limits.probe).await),
        None => None,
    };
    let latency = started.elapsed();
    let served = matches!(&proxy, Some(Ok(answer)) if answer.status == 200);
    let camera = match look.camera {
        Some(addr) if look.ask_camera == AskCamera::Always || (!served && proxy.is_some()) => {
            prober.reach(addr, limits.camera).await
        }
        _ => CameraReach::Unknown,
    };
    Seen {
        key: look.key,
        proxy,
        latency,
        camera,
    }
}

/// Whether any of the cameras at `addrs` accepts a connection now, at most
/// [`PROBES_IN_FLIGHT`] at once; returns as soon as one does.
pub async fn any_answers(
    prober: &Arc<dyn Prober>,
    addrs: impl IntoIterator<Item = String>,
    timeout: Duration,
) -> bool {
    let permits = Arc::new(Semaphore::new(PROBES_IN_FLIGHT));
    let mut checks = JoinSet::new();
    for addr in addrs {
        let permits = permits.clone();
        let prober = prober.clone();
        checks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            prober.reach(addr, timeout).await
        });
    }
    while let Some(done) = checks.join_next().await {
        if matches!(done, Ok(CameraReach::Answers)) {
            return true;
        }
    }
    false
}

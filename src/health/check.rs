//! One check of every (camera, target) path, now, for `camsync probe`: what the server's API
//! says of the stream, and what its RTSP proxy answers to a `DESCRIBE`.
//!
//! Each target's stream list is read once. A path the server does not list is not probed (a
//! 404 would say nothing more). Probes run at most [`PROBES_IN_FLIGHT`] at a time, so a large
//! site does not open hundreds of RTSP sessions at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::probe::Probe;
use crate::camera::Camera;
use crate::config::Config;
use crate::target::{StreamStatus, Target, TargetError};

/// How many DESCRIBEs may be open at once.
pub const PROBES_IN_FLIGHT: usize = 8;

/// A proxy probe must wait longer than the server's own dial: go2rtc holds a DESCRIBE up to
/// ~10 s while it dials the camera, MediaMTX an on-demand path up to its start timeout (10 s by
/// default) plus ~2 s after bad credentials.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// A target to check, with the RTSP address of its proxy (if configured).
pub struct CheckedTarget {
    pub target: Arc<dyn Target>,
    pub rtsp: Option<url::Url>,
}

impl CheckedTarget {
    /// Every target of `config`, in order.
    pub fn from_config(config: &Config) -> Result<Vec<CheckedTarget>, TargetError> {
        Ok(crate::target::from_config(&config.targets)?
            .into_iter()
            .zip(&config.targets)
            .map(|(target, c)| CheckedTarget {
                target,
                rtsp: c.rtsp.clone(),
            })
            .collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The proxy answers DESCRIBE with 200.
    Ok,
    /// The server does not list the stream.
    NotListed,
    /// Listed, but the proxy does not serve it (the answer says why not, if at all).
    NotServed,
    /// The server's API does not answer.
    TargetDown,
    /// Listed; no `rtsp:` address configured for the target, so only the API was asked.
    NotProbed,
}

#[derive(Debug, Clone, Serialize)]
pub struct PathCheck {
    pub camera: String,
    pub target: String,
    pub verdict: Verdict,
    /// What the API says of the stream, when it answered and lists it.
    pub status: Option<StreamStatus>,
    /// The proxy's RTSP status code, when it answered.
    pub rtsp_status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub detail: Option<String>,
}

/// Checks every (camera, target) pair the cameras want, in camera then target order.
pub async fn check(
    targets: &[CheckedTarget],
    cameras: &[&Camera],
    timeout: Duration,
) -> Vec<PathCheck> {
    let permits = Arc::new(Semaphore::new(PROBES_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let mut checks = Vec::new();
    for (t_index, checked) in targets.iter().enumerate() {
        let name = checked.target.name().to_owned();
        let listing: Result<BTreeMap<String, StreamStatus>, String> =
            checked.target.status().await.map_err(|e| e.to_string());
        for (c_index, camera) in cameras
            .iter()
            .enumerate()
            .filter(|(_, c)| c.wants_target(&name))
        {
            let mut check = PathCheck {
                camera: camera.name.clone(),
                target: name.clone(),
                verdict: Verdict::NotListed,
                status: None,
                rtsp_status: None,
                latency_ms: None,
                detail: None,
            };
            match &listing {
                Err(e) => {
                    check.verdict = Verdict::TargetDown;
                    check.detail = Some(e.clone());
                }
                Ok(streams) => match streams.get(&camera.name) {
                    None => {}
                    Some(status) => {
                        check.status = Some(*status);
                        check.verdict = Verdict::NotProbed;
                        if let Some(url) = checked
                            .rtsp
                            .as_ref()
                            .and_then(|base| base.join(&camera.name).ok())
                        {
                            let permits = permits.clone();
                            let probe = Probe {
                                url,
                                credentials: None,
                                timeout,
                            };
                            tasks.spawn(async move {
                                let _permit = permits.acquire_owned().await;
                                ((c_index, t_index), describe(check, &probe).await)
                            });
                            continue;
                        }
                    }
                },
            }
            checks.push(((c_index, t_index), check));
        }
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(result) => checks.push(result),
            Err(e) => tracing::error!(error = %e, "a probe task failed"),
        }
    }
    checks.sort_by_key(|(order, _)| *order);
    checks.into_iter().map(|(_, check)| check).collect()
}

async fn describe(mut check: PathCheck, probe: &Probe) -> PathCheck {
    match probe.describe().await {
        Ok(answer) => {
            check.rtsp_status = Some(answer.status);
            check.latency_ms = Some(answer.latency.as_millis().try_into().unwrap_or(u64::MAX));
            if answer.status == 200 {
                check.verdict = Verdict::Ok;
                check.detail = (!answer.media.is_empty()).then(|| answer.media.join(", "));
            } else {
                check.verdict = Verdict::NotServed;
                check.detail = Some(format!("RTSP {} {}", answer.status, answer.reason));
            }
        }
        Err(e) => {
            check.verdict = Verdict::NotServed;
            check.detail = Some(format!("proxy: {e}"));
        }
    }
    check
}

/// The human table.
pub fn render_text(checks: &[PathCheck]) -> String {
    let mut out = String::new();
    for c in checks {
        let verdict = serde_json::to_value(c.verdict).ok();
        let verdict = verdict.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
        let latency = c.latency_ms.map_or("-".to_owned(), |ms| format!("{ms} ms"));
        let detail = c.detail.as_deref().unwrap_or("");
        out.push_str(&format!(
            "{:<24} {:<12} {verdict:<11} {latency:>8}  {detail}\n",
            c.camera, c.target
        ));
    }
    out
}

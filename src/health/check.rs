//! One check of every (camera, target) path, now, for `camsync probe`: what the server's API
//! says of the stream, and what its RTSP proxy answers to a `DESCRIBE`.
//!
//! Each target's stream list is read once. A path the server does not list is not probed (a
//! 404 would say nothing more). Probes go the health monitor's way ([`super::sweep`]), at most
//! [`super::sweep::PROBES_IN_FLIGHT`] at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::sweep::{AskCamera, Limits, Look, NetProber, Prober, sweep};
use crate::camera::Camera;
use crate::config::Config;
use crate::target::{StreamObservation, Target, TargetError};
use serde::Serialize;

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
    pub status: Option<StreamObservation>,
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
    let prober: Arc<dyn Prober> = Arc::new(NetProber);
    check_with(&prober, targets, cameras, timeout).await
}

/// [`check`] through `prober`.
pub async fn check_with(
    prober: &Arc<dyn Prober>,
    targets: &[CheckedTarget],
    cameras: &[&Camera],
    timeout: Duration,
) -> Vec<PathCheck> {
    let mut checks = Vec::new();
    let mut looks = Vec::new();
    for (t_index, checked) in targets.iter().enumerate() {
        let name = checked.target.name().to_owned();
        let listing: Result<BTreeMap<String, StreamObservation>, String> =
            checked.target.observe().await.map_err(|e| e.to_string());
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
                Ok(streams) => {
                    if let Some(status) = streams.get(&camera.name) {
                        check.status = Some(*status);
                        check.verdict = Verdict::NotProbed;
                        let proxy = checked
                            .rtsp
                            .as_ref()
                            .and_then(|b| b.join(&camera.name).ok());
                        if proxy.is_some() {
                            looks.push(Look {
                                key: ((c_index, t_index), check),
                                proxy,
                                camera: None,
                                ask_camera: AskCamera::IfNotServed,
                            });
                            continue;
                        }
                    }
                }
            }
            checks.push(((c_index, t_index), check));
        }
    }
    let limits = Limits {
        probe: timeout,
        camera: timeout,
    };
    for seen in sweep(prober, looks, limits).await {
        let (order, mut check) = seen.key;
        match seen.proxy {
            Some(Ok(answer)) => {
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
            Some(Err(e)) => {
                check.verdict = Verdict::NotServed;
                check.detail = Some(format!("proxy: {e}"));
            }
            None => {}
        }
        checks.push((order, check));
    }
    checks.sort_by_key(|(order, _)| *order);
    checks.into_iter().map(|(_, check)| check).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::fakes::{FakeNet, FakeServer, Proxy};

    fn listed(names: &[&str]) -> BTreeMap<String, StreamObservation> {
        names
            .iter()
            .map(|n| (n.to_string(), StreamObservation::default()))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn verdicts_follow_the_list_then_the_proxy_on_the_monitors_path() {
        let cameras: Vec<Camera> = ["door", "gone", "yard"]
            .iter()
            .map(|n| Camera::example(n, "rtsp://127.0.0.1:10000/s"))
            .collect();
        let cameras: Vec<&Camera> = cameras.iter().collect();
        let proxied = Arc::new(FakeServer::listing("proxied", listed(&["door", "yard"])));
        let api_only = Arc::new(FakeServer::listing("api-only", listed(&["door"])));
        let down = Arc::new(FakeServer::listing("down", listed(&[])));
        *down.streams.lock().unwrap() = None;
        let rtsp = url::Url::parse("rtsp://127.0.0.1:8554/").ok();
        let targets = [
            CheckedTarget {
                target: proxied,
                rtsp: rtsp.clone(),
            },
            CheckedTarget {
                target: api_only,
                rtsp: None,
            },
            CheckedTarget { target: down, rtsp },
        ];
        let net = Arc::new(FakeNet::default());
        net.proxy
            .lock()
            .unwrap()
            .insert("door".into(), Proxy::Serves);
        net.proxy
            .lock()
            .unwrap()
            .insert("yard".into(), Proxy::Hangs);
        let prober: Arc<dyn Prober> = net.clone();

        let checks = check_with(&prober, &targets, &cameras, Duration::from_secs(15)).await;
        let got: Vec<(&str, &str, Verdict)> = checks
            .iter()
            .map(|c| (c.camera.as_str(), c.target.as_str(), c.verdict))
            .collect();
        assert_eq!(
            got,
            [
                ("door", "proxied", Verdict::Ok),
                ("door", "api-only", Verdict::NotProbed),
                ("door", "down", Verdict::TargetDown),
                ("gone", "proxied", Verdict::NotListed),
                ("gone", "api-only", Verdict::NotListed),
                ("gone", "down", Verdict::TargetDown),
                ("yard", "proxied", Verdict::NotServed),
                ("yard", "api-only", Verdict::NotListed),
                ("yard", "down", Verdict::TargetDown),
            ]
        );
        assert_eq!(checks[0].rtsp_status, Some(200));
        let yard = &checks[6];
        assert!(
            yard.detail
                .as_deref()
                .is_some_and(|d| d.contains("no answer within 15s")),
            "{yard:?}"
        );
        assert_eq!(net.describes.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}

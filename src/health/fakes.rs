//! Fakes of a server and of the network for the health module's unit tests under tokio's
//! paused clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::probe::{Answer, Phase, ProbeError};
use super::state::CameraReach;
use super::sweep::Prober;
use crate::camera::Camera;
use crate::target::{Applied, BoxFuture, RunCheck, StreamObservation, Target, TargetError};

/// A server whose stream list the test sets; the monitor must never write to it.
pub struct FakeServer {
    name: String,
    pub streams: Mutex<Option<BTreeMap<String, StreamObservation>>>,
}

impl Target for FakeServer {
    fn name(&self) -> &str {
        &self.name
    }
    fn render(&self, _: &Camera) -> String {
        String::new()
    }
    fn list(&self) -> BoxFuture<'_, Result<BTreeSet<String>, TargetError>> {
        unreachable!("the health checks read the status")
    }
    fn observe(&self) -> BoxFuture<'_, Result<BTreeMap<String, StreamObservation>, TargetError>> {
        let streams = self.streams.lock().unwrap().clone();
        let name = self.name.clone();
        Box::pin(async move {
            streams.ok_or_else(|| TargetError::Timeout {
                target: name,
                op: "status".into(),
                timeout: std::time::Duration::from_secs(5),
            })
        })
    }
    fn upsert<'a>(&'a self, _: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
        unreachable!("the health checks never write")
    }
    fn delete<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Applied, TargetError>> {
        unreachable!("the health checks never write")
    }
    fn run_check<'a>(&'a self, _: Option<&'a str>) -> BoxFuture<'a, Result<RunCheck, TargetError>> {
        unreachable!("the health checks do not check restarts")
    }
}

/// What the proxy does with a stream's `DESCRIBE`.
#[derive(Clone, Copy)]
pub enum Proxy {
    Serves,
    Answers404,
    /// Asks for credentials (a server whose reads need them).
    Answers401,
    /// Holds the request until the probe's timeout.
    Hangs,
}

/// The network: per stream, what its proxy does; per camera address, whether it answers.
/// Each `DESCRIBE` takes 100 ms.
#[derive(Default)]
pub struct FakeNet {
    pub proxy: Mutex<BTreeMap<String, Proxy>>,
    pub cameras_up: Mutex<BTreeSet<String>>,
    pub describes: AtomicUsize,
    in_flight: AtomicUsize,
    pub most_in_flight: AtomicUsize,
}

impl Prober for FakeNet {
    fn describe(
        &self,
        url: url::Url,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Answer, ProbeError>> {
        Box::pin(async move {
            self.describes.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            let stream = url.path().trim_start_matches('/').to_owned();
            let behaviour = self.proxy.lock().unwrap().get(&stream).copied();
            let answer = match behaviour.unwrap_or(Proxy::Answers404) {
                Proxy::Hangs => {
                    tokio::time::sleep(timeout).await;
                    Err(ProbeError::Timeout {
                        url: url.to_string(),
                        phase: Phase::Answer,
                        after: timeout,
                    })
                }
                proxy => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let status = match proxy {
                        Proxy::Serves => 200,
                        Proxy::Answers401 => 401,
                        _ => 404,
                    };
                    Ok(Answer {
                        status,
                        reason: String::new(),
                        latency: Duration::from_millis(100),
                        media: Vec::new(),
                    })
                }
            };
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            answer
        })
    }

    fn reach(&self, addr: String, _: Duration) -> BoxFuture<'_, CameraReach> {
        let up = self.cameras_up.lock().unwrap().contains(&addr);
        Box::pin(async move {
            if up {
                CameraReach::Answers
            } else {
                CameraReach::Down
            }
        })
    }
}

impl FakeServer {
    /// A server `name` listing `streams`.
    pub fn listing(name: &str, streams: BTreeMap<String, StreamObservation>) -> FakeServer {
        FakeServer {
            name: name.into(),
            streams: Mutex::new(Some(streams)),
        }
    }
}

//! go2rtc over its HTTP API (`/api/streams`).
//!
//! Invariants (SERVERS.md):
//! - One call at a time per server: go2rtc's handlers take no lock and a list overlapping a
//!   write crashes it. Every call holds `serial`.
//! - Every write sends `src` (without it go2rtc answers 200 with the full list and does
//!   nothing); DELETE sends both `name` and `src`, because newer go2rtc deletes the running
//!   stream by `name` and the config entry by `src`, older ones both by `src`.
//! - A PUT answered 400 with an empty body (1.9.x) or a `streams: …` text (newer builds) was
//!   refused: nothing changed. Any other 400 text comes from saving go2rtc's config file, after
//!   the stream was already changed in memory: confirmed with `GET ?src=` and reported as
//!   [`Applied::Partial`].
//! - Sources read back are masked, so nothing here compares URLs: the ledger's fingerprint says
//!   whether a stream is current.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::camera::Camera;
use crate::config::TargetConfig;
use crate::http_body::detail;
use crate::target::http::ApiClient;
use crate::target::{Applied, BoxFuture, RunCheck, StreamObservation, Target, TargetError};

const STREAMS: &str = "api/streams";
const PRELOAD: &str = "api/preload";

pub struct Go2rtc {
    api: ApiClient,
    serial: Mutex<()>,
}

impl Go2rtc {
    pub fn new(config: &TargetConfig) -> Result<Go2rtc, TargetError> {
        Ok(Go2rtc {
            api: ApiClient::new(config)?,
            serial: Mutex::new(()),
        })
    }

    /// One call to `path` with `query`. Callers hold `serial`.
    async fn call(
        &self,
        op: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(StatusCode, String), TargetError> {
        let request = self.api.request(op, method, path)?.query(query);
        self.api.send(op, request).await
    }

    /// Whether the server has a stream called `name` right now (no dialing).
    async fn exists(&self, op: &str, name: &str) -> Result<bool, TargetError> {
        match self
            .call(op, Method::GET, STREAMS, &[("src", name)])
            .await?
        {
            (StatusCode::OK, _) => Ok(true),
            (StatusCode::NOT_FOUND, _) => Ok(false),
            (status, body) => Err(self.api.unexpected(op, status, detail(&body))),
        }
    }

    /// `GET /api/streams`: every stream with its producers and consumers.
    async fn streams(&self) -> Result<BTreeMap<String, StreamJson>, TargetError> {
        let op = "list streams";
        let _serial = self.serial.lock().await;
        let (status, body) = self.call(op, Method::GET, STREAMS, &[]).await?;
        if status != StatusCode::OK {
            return Err(self.api.unexpected(op, status, detail(&body)));
        }
        let streams: Option<BTreeMap<String, Option<StreamJson>>> = serde_json::from_str(&body)
            .map_err(|e| {
                self.api
                    .protocol(op, format!("not a JSON object of streams: {e}"))
            })?;
        Ok(streams
            .unwrap_or_default()
            .into_iter()
            .map(|(name, s)| (name, s.unwrap_or_default()))
            .collect())
    }

    async fn list_names(&self) -> Result<BTreeSet<String>, TargetError> {
        Ok(self.streams().await?.into_keys().collect())
    }

    async fn observe_streams(&self) -> Result<BTreeMap<String, StreamObservation>, TargetError> {
        Ok(self
            .streams()
            .await?
            .into_iter()
            .map(|(name, s)| {
                let bytes_in: u64 = s.producers.iter().flatten().map(|p| p.bytes_recv).sum();
                let status = StreamObservation {
                    ready: bytes_in > 0,
                    bytes_in,
                    consumers: s.consumers.map_or(0, |c| c.len()),
                };
                (name, status)
            })
            .collect())
    }

    async fn put(&self, camera: &Camera) -> Result<Applied, TargetError> {
        let op = format!("put stream {:?}", camera.name);
        let sources: Vec<String> = camera.sources.iter().map(|s| s.expose()).collect();
        let mut query = vec![("name", camera.name.as_str())];
        query.extend(sources.iter().map(|s| ("src", s.as_str())));
        let _serial = self.serial.lock().await;
        let applied = match self.call(&op, Method::PUT, STREAMS, &query).await? {
            (StatusCode::OK, _) => Applied::Done,
            (StatusCode::BAD_REQUEST, body) if is_source_refusal(&body) => {
                let shown: Vec<String> = camera.sources.iter().map(|s| s.redacted()).collect();
                return Err(self.api.rejected(
                    &op,
                    format!(
                        "go2rtc refused the source(s) {}; check the scheme is one go2rtc supports",
                        shown.join(", ")
                    ),
                ));
            }
            (StatusCode::BAD_REQUEST, body) => {
                if !self.exists(&op, &camera.name).await? {
                    return Err(self.api.rejected(&op, detail(&body)));
                }
                Applied::Partial {
                    detail: format!(
                        "in memory only, go2rtc could not save its file: {}",
                        detail(&body)
                    ),
                }
            }
            (status, body) => return Err(self.api.unexpected(&op, status, detail(&body))),
        };
        if camera.preload {
            self.preload(&camera.name).await
        } else {
            Ok(applied)
        }
    }

    /// Keeps `name` connected. A new stream object loses its preload (go2rtc #2359), so this
    /// follows every PUT of a preloaded stream. go2rtc answers 500 both when its dial fails
    /// (the camera is down: the preload is pending) and when only saving its file fails (the
    /// preload is active in memory); the preload list tells which.
    async fn preload(&self, name: &str) -> Result<Applied, TargetError> {
        let op = format!("preload stream {name:?}");
        match self
            .call(&op, Method::PUT, PRELOAD, &[("src", name)])
            .await?
        {
            (StatusCode::OK, _) => Ok(Applied::Done),
            (status, body) if status.is_server_error() => {
                let detail = if self.preloaded(&op, name).await? {
                    format!(
                        "preloaded in memory only, go2rtc could not save its file: {}",
                        detail(&body)
                    )
                } else {
                    format!(
                        "stream written, preload pending (go2rtc could not dial the camera): {}",
                        detail(&body)
                    )
                };
                Ok(Applied::Partial { detail })
            }
            (status, body) => Err(self.api.unexpected(&op, status, detail(&body))),
        }
    }

    async fn preloaded(&self, op: &str, name: &str) -> Result<bool, TargetError> {
        let (status, body) = self.call(op, Method::GET, PRELOAD, &[]).await?;
        if status != StatusCode::OK {
            return Err(self.api.unexpected(op, status, detail(&body)));
        }
        let preloads: Option<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(&body).map_err(|e| {
                self.api
                    .protocol(op, format!("not a JSON object of preloads: {e}"))
            })?;
        Ok(preloads.is_some_and(|p| p.contains_key(name)))
    }

    async fn remove(&self, name: &str) -> Result<Applied, TargetError> {
        let op = format!("delete stream {name:?}");
        let _serial = self.serial.lock().await;
        match self
            .call(
                &op,
                Method::DELETE,
                STREAMS,
                &[("name", name), ("src", name)],
            )
            .await?
        {
            (StatusCode::OK, _) => Ok(Applied::Done),
            (StatusCode::BAD_REQUEST, body) if !self.exists(&op, name).await? => {
                Ok(Applied::Partial {
                    detail: format!(
                        "deleted in memory only, go2rtc could not save its file: {}",
                        detail(&body)
                    ),
                })
            }
            (status, body) => Err(self.api.unexpected(&op, status, detail(&body))),
        }
    }
}

/// Whether a 400 to PUT means go2rtc refused the source (as opposed to failing to save its file).
fn is_source_refusal(body: &str) -> bool {
    let text = body.trim();
    text.is_empty() || text.starts_with("streams:")
}

/// One stream of `GET /api/streams`, as far as health needs it (tolerant: every field optional).
#[derive(Debug, Default, Deserialize)]
struct StreamJson {
    producers: Option<Vec<ProducerJson>>,
    consumers: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Default, Deserialize)]
struct ProducerJson {
    #[serde(default)]
    bytes_recv: u64,
}

impl Go2rtc {
    /// go2rtc reports no start time; a missing canary is how a restart shows.
    async fn check_run(&self, canary: Option<&str>) -> Result<RunCheck, TargetError> {
        let Some(name) = canary else {
            return Ok(RunCheck::default());
        };
        let _serial = self.serial.lock().await;
        Ok(RunCheck {
            epoch: None,
            canary_missing: !self.exists("check for a restart", name).await?,
        })
    }
}

impl Go2rtc {
    /// `POST /api/restart`: go2rtc re-executes itself and reloads its file.
    async fn restart(&self) -> Result<(), TargetError> {
        let op = "restart go2rtc";
        let _serial = self.serial.lock().await;
        match self.call(op, Method::POST, "api/restart", &[]).await? {
            (StatusCode::OK, _) => Ok(()),
            (status, body) => Err(self.api.unexpected(op, status, detail(&body))),
        }
    }
}

impl Target for Go2rtc {
    fn name(&self) -> &str {
        &self.api.target
    }

    fn render(&self, camera: &Camera) -> String {
        let sources: Vec<String> = camera.sources.iter().map(|s| s.expose()).collect();
        serde_json::json!({ "src": sources, "preload": camera.preload }).to_string()
    }

    fn list(&self) -> BoxFuture<'_, Result<BTreeSet<String>, TargetError>> {
        Box::pin(self.list_names())
    }

    fn observe(&self) -> BoxFuture<'_, Result<BTreeMap<String, StreamObservation>, TargetError>> {
        Box::pin(self.observe_streams())
    }

    fn upsert<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(self.put(camera))
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(self.remove(name))
    }

    fn run_check<'a>(
        &'a self,
        canary: Option<&'a str>,
    ) -> BoxFuture<'a, Result<RunCheck, TargetError>> {
        Box::pin(self.check_run(canary))
    }

    fn restart_server(&self) -> Option<BoxFuture<'_, Result<(), TargetError>>> {
        Some(Box::pin(self.restart()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_failed_file_saves_are_told_apart() {
        // 1.9.x refuses with an empty body (Go's http.Error writes a newline), newer builds with
        // a `streams:` text; anything else is the config file failing after the change.
        assert!(is_source_refusal("\n"));
        assert!(is_source_refusal("streams: source not supported\n"));
        assert!(is_source_refusal("streams: invalid dynamic source"));
        assert!(!is_source_refusal(
            "open /config/go2rtc.yaml: read-only file system\n"
        ));
        assert!(!is_source_refusal(
            "yaml: line 1: did not find expected key"
        ));
    }
}

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
//!   [`Applied::NotPersisted`].
//! - Sources read back are masked, so nothing here compares URLs: the ledger's fingerprint says
//!   whether a stream is current.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::sync::Mutex;

use super::{Applied, BoxFuture, Target, TargetError, http_client, transport_error};
use crate::camera::Camera;
use crate::config::TargetConfig;
use crate::secret::{Secret, redact};

pub struct Go2rtc {
    name: String,
    base: url::Url,
    streams_url: url::Url,
    client: reqwest::Client,
    auth: Option<(String, Secret)>,
    timeout: Duration,
    serial: Mutex<()>,
}

impl Go2rtc {
    pub fn new(config: &TargetConfig) -> Result<Go2rtc, TargetError> {
        let mut base = config.api.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let streams_url = base.join("api/streams").map_err(|e| TargetError::Client {
            target: config.name.clone(),
            detail: e.to_string(),
        })?;
        Ok(Go2rtc {
            name: config.name.clone(),
            client: http_client(&config.name, config.timeout)?,
            auth: config.username.clone().zip(config.password.clone()),
            timeout: config.timeout,
            base,
            streams_url,
            serial: Mutex::new(()),
        })
    }

    /// Sends one request and reads the whole answer. Callers hold `serial`.
    async fn call(
        &self,
        op: &str,
        method: Method,
        query: &[(&str, &str)],
    ) -> Result<(StatusCode, String), TargetError> {
        let mut request = self
            .client
            .request(method, self.streams_url.clone())
            .query(query);
        if let Some((user, pass)) = &self.auth {
            request = request.basic_auth(user, Some(pass.expose()));
        }
        let map = |e| transport_error(&self.name, op, &self.base, self.timeout, e);
        let response = request.send().await.map_err(map)?;
        let status = response.status();
        let body = response.text().await.map_err(map)?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(TargetError::Unauthorized {
                target: self.name.clone(),
                op: op.to_owned(),
            });
        }
        Ok((status, body))
    }

    fn unexpected(&self, op: &str, status: StatusCode, body: &str) -> TargetError {
        TargetError::Status {
            target: self.name.clone(),
            op: op.to_owned(),
            status: status.as_u16(),
            detail: detail(body),
        }
    }

    /// Whether the server has a stream called `name` right now (no dialing).
    async fn exists(&self, op: &str, name: &str) -> Result<bool, TargetError> {
        match self.call(op, Method::GET, &[("src", name)]).await? {
            (StatusCode::OK, _) => Ok(true),
            (StatusCode::NOT_FOUND, _) => Ok(false),
            (status, body) => Err(self.unexpected(op, status, &body)),
        }
    }

    async fn list_names(&self) -> Result<BTreeSet<String>, TargetError> {
        let op = "list streams";
        let _serial = self.serial.lock().await;
        let (status, body) = self.call(op, Method::GET, &[]).await?;
        if status != StatusCode::OK {
            return Err(self.unexpected(op, status, &body));
        }
        let streams: Option<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(&body).map_err(|e| TargetError::Protocol {
                target: self.name.clone(),
                op: op.to_owned(),
                detail: format!("not a JSON object of streams: {e}"),
            })?;
        Ok(streams
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    async fn put(&self, camera: &Camera) -> Result<Applied, TargetError> {
        let op = format!("put stream {:?}", camera.name);
        let sources: Vec<String> = camera.sources.iter().map(|s| s.expose()).collect();
        let mut query = vec![("name", camera.name.as_str())];
        query.extend(sources.iter().map(|s| ("src", s.as_str())));
        let _serial = self.serial.lock().await;
        match self.call(&op, Method::PUT, &query).await? {
            (StatusCode::OK, _) => Ok(Applied::Done),
            (StatusCode::BAD_REQUEST, body) if is_source_refusal(&body) => {
                Err(TargetError::Rejected {
                    target: self.name.clone(),
                    op,
                    detail: format!(
                        "go2rtc refused the source(s) {}; check the scheme is one go2rtc supports",
                        camera
                            .sources
                            .iter()
                            .map(|s| s.redacted())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            }
            (StatusCode::BAD_REQUEST, body) => {
                if self.exists(&op, &camera.name).await? {
                    Ok(Applied::NotPersisted {
                        detail: detail(&body),
                    })
                } else {
                    Err(TargetError::Rejected {
                        target: self.name.clone(),
                        op,
                        detail: detail(&body),
                    })
                }
            }
            (status, body) => Err(self.unexpected(&op, status, &body)),
        }
    }

    async fn remove(&self, name: &str) -> Result<Applied, TargetError> {
        let op = format!("delete stream {name:?}");
        let _serial = self.serial.lock().await;
        match self
            .call(&op, Method::DELETE, &[("name", name), ("src", name)])
            .await?
        {
            (StatusCode::OK, _) => Ok(Applied::Done),
            (StatusCode::BAD_REQUEST, body) if !self.exists(&op, name).await? => {
                Ok(Applied::NotPersisted {
                    detail: detail(&body),
                })
            }
            (status, body) => Err(self.unexpected(&op, status, &body)),
        }
    }
}

/// Whether a 400 to PUT means go2rtc refused the source (as opposed to failing to save its file).
fn is_source_refusal(body: &str) -> bool {
    let text = body.trim();
    text.is_empty() || text.starts_with("streams:")
}

/// A server's error text, trimmed and with any credentials masked.
fn detail(body: &str) -> String {
    let text = body.trim();
    if text.is_empty() {
        "(empty answer)".into()
    } else {
        redact(text)
    }
}

impl Target for Go2rtc {
    fn name(&self) -> &str {
        &self.name
    }

    fn render(&self, camera: &Camera) -> String {
        let sources: Vec<String> = camera.sources.iter().map(|s| s.expose()).collect();
        serde_json::json!({ "src": sources }).to_string()
    }

    fn list(&self) -> BoxFuture<'_, Result<BTreeSet<String>, TargetError>> {
        Box::pin(self.list_names())
    }

    fn upsert<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(self.put(camera))
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(self.remove(name))
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

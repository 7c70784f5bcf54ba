//! Google's Smart Device Management API for one Device Access account: the OAuth refresh of its
//! access token and the three live-stream commands (`GenerateRtspStream`, `ExtendRtspStream`,
//! `StopRtspStream`), as [`LiveStreams`] over HTTP ([`SdmClient`]).
//!
//! - **Secrets stay inside.** The client secret, the refresh token, the access token, a
//!   stream's URL and its tokens are [`Secret`]s; no error carries one (Google's own error
//!   messages are shown through [`crate::secret::redact`] and cut).
//! - **The access token is refreshed ahead of expiry** (a minute before), once at a time, and
//!   once more on a 401 from the API (a token revoked early). A refused refresh
//!   (`invalid_grant`, `invalid_client`) is [`ResolveError::Revoked`]: nothing but a new sign-in
//!   fixes it.
//! - **Answers are classified for the renewal:** 429 is [`ResolveError::RateLimited`] (wait, the
//!   stream is fine); an extension Google refuses with 400/404 is [`ResolveError::StreamGone`]
//!   (generate a new stream); anything else is worth a retry with backoff.
//! - Each call is bounded by the account's timeout, and each answer by [`MAX_ANSWER_BYTES`].
//!
//! Times: `expiresAt` is wall-clock time; a [`StreamGrant`] holds it as tokio's [`Instant`],
//! converted on receipt, so that the renewal runs on one clock (and tests may pause it).

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::live::{LiveStreams, ResolveError, StreamGrant, instant_at};
use crate::config::NestAccountConfig;
use crate::http_body::{self, BodyError};
use crate::secret::{Secret, redact};

/// The largest answer read from Google (its answers are a few hundred bytes).
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// An access token is refreshed this long before it expires.
const REFRESH_AHEAD: Duration = Duration::from_secs(60);

const GENERATE: &str = "sdm.devices.commands.CameraLiveStream.GenerateRtspStream";
const EXTEND: &str = "sdm.devices.commands.CameraLiveStream.ExtendRtspStream";
const STOP: &str = "sdm.devices.commands.CameraLiveStream.StopRtspStream";

/// [`LiveStreams`] over HTTP.
pub struct SdmClient {
    account: NestAccountConfig,
    http: reqwest::Client,
    /// The access token and when it expires.
    access: Mutex<Option<(Secret, Instant)>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tokens {
    stream_token: String,
    stream_extension_token: String,
    expires_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamUrls {
    rtsp_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Generated {
    stream_urls: StreamUrls,
    #[serde(flatten)]
    tokens: Tokens,
}

#[derive(Deserialize)]
struct Results<T> {
    results: T,
}

impl SdmClient {
    pub fn new(account: NestAccountConfig) -> Result<SdmClient, ResolveError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(account.timeout)
            .connect_timeout(account.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| ResolveError::Transport {
                account: account.name.clone(),
                op: "set up the HTTP client",
                detail: redact(&e.without_url().to_string()),
            })?;
        Ok(SdmClient {
            account,
            http,
            access: Mutex::new(None),
        })
    }

    /// A live access token, refreshed when it is missing, about to expire or `stale`.
    async fn access_token(&self, stale: bool) -> Result<Secret, ResolveError> {
        let mut access = self.access.lock().await;
        if let Some((token, expires)) = access.as_ref()
            && !stale
            && Instant::now() + REFRESH_AHEAD < *expires
        {
            return Ok(token.clone());
        }
        let op = "refresh the access token";
        let account = &self.account;
        let request = self.http.post(account.token_url.clone()).form(&[
            ("grant_type", "refresh_token"),
            ("client_id", account.client_id.as_str()),
            ("client_secret", account.client_secret.expose()),
            ("refresh_token", account.refresh_token.expose()),
        ]);
        let (status, body) = self.send(op, request).await?;
        if !status.is_success() {
            let error = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned));
            return Err(match error.as_deref() {
                Some(error @ ("invalid_grant" | "invalid_client" | "unauthorized_client")) => {
                    ResolveError::Revoked {
                        account: account.name.clone(),
                        error: error.to_owned(),
                    }
                }
                _ => self.http_error(op, status, &body),
            });
        }
        let answer: TokenAnswer = self.parse(op, &body)?;
        let token = Secret::new(answer.access_token);
        let expires = Instant::now() + Duration::from_secs(answer.expires_in);
        *access = Some((token.clone(), expires));
        Ok(token)
    }

    /// Runs `command` on `device`; a 401 refreshes the access token and tries once more.
    async fn execute(
        &self,
        op: &'static str,
        device: &str,
        command: &str,
        params: serde_json::Value,
    ) -> Result<String, ResolveError> {
        let url = format!(
            "{}/{device}:executeCommand",
            self.account.sdm_url.as_str().trim_end_matches('/')
        );
        let body = json!({ "command": command, "params": params });
        let mut stale = false;
        loop {
            let token = self.access_token(stale).await?;
            let request = self.http.post(&url).bearer_auth(token.expose()).json(&body);
            let (status, answer) = self.send(op, request).await?;
            match status {
                StatusCode::UNAUTHORIZED if !stale => stale = true,
                StatusCode::TOO_MANY_REQUESTS => {
                    return Err(ResolveError::RateLimited {
                        account: self.account.name.clone(),
                    });
                }
                s if s.is_success() => return Ok(answer),
                s if command == EXTEND
                    && matches!(s, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND) =>
                {
                    return Err(ResolveError::StreamGone {
                        device: device.to_owned(),
                        status: s.as_u16(),
                        detail: google_message(&answer),
                    });
                }
                s => return Err(self.http_error(op, s, &answer)),
            }
        }
    }

    async fn send(
        &self,
        op: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, String), ResolveError> {
        let transport = |e: reqwest::Error| ResolveError::Transport {
            account: self.account.name.clone(),
            op,
            detail: redact(&e.without_url().to_string()),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let body = http_body::read(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => ResolveError::Malformed {
                    account: self.account.name.clone(),
                    op,
                    detail: format!("longer than {MAX_ANSWER_BYTES} bytes"),
                },
                BodyError::Transport(e) => transport(e),
            })?;
        Ok((status, body))
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        body: &str,
    ) -> Result<T, ResolveError> {
        serde_json::from_str(body).map_err(|e| ResolveError::Malformed {
            account: self.account.name.clone(),
            op,
            // serde's message names the field, never the value.
            detail: e.to_string(),
        })
    }

    fn http_error(&self, op: &'static str, status: StatusCode, body: &str) -> ResolveError {
        ResolveError::Http {
            account: self.account.name.clone(),
            op,
            status: status.as_u16(),
            detail: google_message(body),
        }
    }

    fn expiry(&self, op: &'static str, expires_at: &str) -> Result<Instant, ResolveError> {
        let at =
            humantime::parse_rfc3339_weak(expires_at).map_err(|e| ResolveError::Malformed {
                account: self.account.name.clone(),
                op,
                detail: format!("expiresAt {expires_at:?}: {e}"),
            })?;
        // Google's clock a little ahead of ours leaves a stream that is about to expire.
        Ok(instant_at(at).unwrap_or_else(Instant::now))
    }
}

impl LiveStreams for SdmClient {
    async fn generate(&self, device: &str) -> Result<StreamGrant, ResolveError> {
        let op = "GenerateRtspStream";
        let answer = self.execute(op, device, GENERATE, json!({})).await?;
        let Results { results } = self.parse::<Results<Generated>>(op, &answer)?;
        if Url::parse(&results.stream_urls.rtsp_url).is_err() {
            return Err(ResolveError::Malformed {
                account: self.account.name.clone(),
                op,
                detail: "streamUrls.rtspUrl is not a URL".into(),
            });
        }
        Ok(StreamGrant {
            url: Secret::new(results.stream_urls.rtsp_url),
            extension_token: Secret::new(results.tokens.stream_extension_token),
            expires: self.expiry(op, &results.tokens.expires_at)?,
        })
    }

    async fn extend(&self, device: &str, grant: &StreamGrant) -> Result<StreamGrant, ResolveError> {
        let op = "ExtendRtspStream";
        let params = json!({ "streamExtensionToken": grant.extension_token.expose() });
        let answer = self.execute(op, device, EXTEND, params).await?;
        let Results { results } = self.parse::<Results<Tokens>>(op, &answer)?;
        Ok(StreamGrant {
            url: with_stream_token(&grant.url, &results.stream_token),
            extension_token: Secret::new(results.stream_extension_token),
            expires: self.expiry(op, &results.expires_at)?,
        })
    }

    async fn stop(&self, device: &str, grant: &StreamGrant) -> Result<(), ResolveError> {
        let params = json!({ "streamExtensionToken": grant.extension_token.expose() });
        self.execute("StopRtspStream", device, STOP, params)
            .await
            .map(drop)
    }
}

/// `url` with its `auth=` parameter set to `token` (the other parameters kept in order), as
/// clients of the SDM API do after an extension.
pub fn with_stream_token(url: &Secret, token: &str) -> Secret {
    let Ok(mut parsed) = Url::parse(url.expose()) else {
        return url.clone();
    };
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "auth")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("auth", token);
    Secret::new(parsed.to_string())
}

/// Google's `error.message`, or the body, redacted and cut.
fn google_message(body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
    http_body::detail(message.as_deref().unwrap_or(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extension_replaces_only_the_stream_token() {
        let url = Secret::new("rtsps://h.example:443/sdm_live/abc?auth=g.0.old&x=1");
        assert_eq!(
            with_stream_token(&url, "g.0.new").expose(),
            "rtsps://h.example:443/sdm_live/abc?x=1&auth=g.0.new"
        );
    }

    #[test]
    fn google_messages_are_shown_cut_and_without_credentials() {
        let body = r#"{"error":{"code":400,"message":"bad rtsp://u:pw@h/x","status":"X"}}"#;
        assert_eq!(google_message(body), "bad rtsp://u:***@h/x");
        assert_eq!(google_message(" "), "(empty answer)");
    }
}

//! An `http` resolver: a GET (with an optional bearer token) whose answer is a camera's current
//! stream URL and its expiry as JSON (see [`StreamGrant::from_answer`]). `{device}` in the URL
//! becomes the camera's `device`, percent-encoded. Each request is bounded by the resolver's
//! `timeout` and each answer by [`MAX_ANSWER_BYTES`]; an answer is never shown in an error (it
//! may hold a token).

use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::live::{ResolveError, StreamGrant, UrlSource};
use crate::config::RESOLVER_DEVICE as DEVICE;
use crate::http_body::{self, BodyError};
use crate::secret::{Secret, redact};

/// The largest answer read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub struct HttpResolver {
    name: String,
    url: String,
    bearer: Option<Secret>,
    http: reqwest::Client,
}

impl HttpResolver {
    pub fn new(
        name: &str,
        url: &str,
        bearer: Option<Secret>,
        timeout: Duration,
    ) -> Result<HttpResolver, ResolveError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| ResolveError::Transport {
                account: name.to_owned(),
                op: "set up the HTTP client",
                detail: redact(&e.without_url().to_string()),
            })?;
        Ok(HttpResolver {
            name: name.to_owned(),
            url: url.to_owned(),
            bearer,
            http,
        })
    }

    async fn run(&self, device: &str) -> Result<StreamGrant, ResolveError> {
        let op = "GET";
        let url = self.url.replace(
            DEVICE,
            &utf8_percent_encode(device, NON_ALPHANUMERIC).to_string(),
        );
        let mut request = self.http.get(url);
        if let Some(bearer) = &self.bearer {
            request = request.bearer_auth(bearer.expose());
        }
        let transport = |e: reqwest::Error| ResolveError::Transport {
            account: self.name.clone(),
            op,
            detail: redact(&e.without_url().to_string()),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ResolveError::Http {
                account: self.name.clone(),
                op,
                status: status.as_u16(),
                detail: format!(
                    "for device {device} (the answer is not shown: it may hold a token)"
                ),
            });
        }
        let body = http_body::read(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => ResolveError::Malformed {
                    account: self.name.clone(),
                    op,
                    detail: format!("longer than {MAX_ANSWER_BYTES} bytes"),
                },
                BodyError::Transport(e) => transport(e),
            })?;
        StreamGrant::from_answer(&body, |detail| ResolveError::Failed {
            account: self.name.clone(),
            device: device.to_owned(),
            detail,
        })
    }
}

impl UrlSource for HttpResolver {
    async fn ask(&self, device: &str) -> Result<StreamGrant, ResolveError> {
        self.run(device).await
    }
}

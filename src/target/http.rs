//! The HTTP plumbing every API target shares: base URL, Basic auth, timeouts, and errors that
//! never carry a URL's query (it may hold a source with credentials).

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};

use super::TargetError;
use crate::config::TargetConfig;
use crate::secret::{Secret, redact};

pub(crate) struct ApiClient {
    pub target: String,
    base: url::Url,
    client: reqwest::Client,
    auth: Option<(String, Secret)>,
    timeout: Duration,
}

impl ApiClient {
    pub fn new(config: &TargetConfig) -> Result<ApiClient, TargetError> {
        let mut base = config.api.clone().ok_or_else(|| TargetError::Client {
            target: config.name.clone(),
            detail: "no `api` URL configured".into(),
        })?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        // Several clients may race to install the process-wide provider; losing is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| TargetError::Client {
                target: config.name.clone(),
                detail: e.without_url().to_string(),
            })?;
        Ok(ApiClient {
            target: config.name.clone(),
            base,
            client,
            auth: config.username.clone().zip(config.password.clone()),
            timeout: config.timeout,
        })
    }

    /// A request to `path` (relative to the API base, e.g. `api/streams`).
    pub fn request(
        &self,
        op: &str,
        method: Method,
        path: &str,
    ) -> Result<RequestBuilder, TargetError> {
        let url = self.base.join(path).map_err(|e| TargetError::Protocol {
            target: self.target.clone(),
            op: op.to_owned(),
            detail: format!("cannot build the URL for {path:?}: {e}"),
        })?;
        let request = self.client.request(method, url);
        Ok(match &self.auth {
            Some((user, pass)) => request.basic_auth(user, Some(pass.expose())),
            None => request,
        })
    }

    /// Sends a request and reads the whole answer; 401 becomes [`TargetError::Unauthorized`].
    pub async fn send(
        &self,
        op: &str,
        request: RequestBuilder,
    ) -> Result<(StatusCode, String), TargetError> {
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(op, e))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| self.transport_error(op, e))?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(TargetError::Unauthorized {
                target: self.target.clone(),
                op: op.to_owned(),
            });
        }
        Ok((status, body))
    }

    /// An answer the caller did not expect.
    pub fn unexpected(&self, op: &str, status: StatusCode, detail: String) -> TargetError {
        TargetError::Status {
            target: self.target.clone(),
            op: op.to_owned(),
            status: status.as_u16(),
            detail,
        }
    }

    pub fn rejected(&self, op: &str, detail: String) -> TargetError {
        TargetError::Rejected {
            target: self.target.clone(),
            op: op.to_owned(),
            detail,
        }
    }

    pub fn protocol(&self, op: &str, detail: String) -> TargetError {
        TargetError::Protocol {
            target: self.target.clone(),
            op: op.to_owned(),
            detail,
        }
    }

    fn transport_error(&self, op: &str, e: reqwest::Error) -> TargetError {
        if e.is_timeout() {
            return TargetError::Timeout {
                target: self.target.clone(),
                op: op.to_owned(),
                timeout: self.timeout,
            };
        }
        let e = e.without_url();
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&redact(&s.to_string()));
            source = s.source();
        }
        TargetError::Unreachable {
            target: self.target.clone(),
            url: self.base.to_string(),
            detail,
        }
    }
}

/// A server's error text, trimmed and with any credentials masked.
pub(crate) fn detail(body: &str) -> String {
    let text = body.trim();
    if text.is_empty() {
        "(empty answer)".into()
    } else {
        redact(text)
    }
}

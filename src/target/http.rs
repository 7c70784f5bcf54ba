//! The HTTP plumbing every API target shares: base URL, Basic auth, timeouts, and errors that
//! never carry a URL's query (it may hold a source with credentials).
//!
//! Bounds: a whole exchange, from connecting to the last byte of the answer, takes at most the
//! target's `timeout`; an answer's body is read up to [`MAX_RESPONSE_BYTES`] and refused beyond,
//! so a server that answers with an endless body costs neither unbounded time nor memory.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};

use super::TargetError;
use crate::config::TargetConfig;
use crate::http_body::BodyError;
use crate::secret::{Secret, redact};

/// The largest answer body read from a server (64 MiB: a list of 100,000 streams fits).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

pub(crate) struct ApiClient {
    pub target: String,
    base: url::Url,
    client: reqwest::Client,
    auth: Option<(String, Secret)>,
    timeout: Duration,
}

impl ApiClient {
    pub fn new(config: &TargetConfig) -> Result<ApiClient, TargetError> {
        let mut base = config.api.clone().ok_or_else(|| TargetError::Config {
            target: config.name.clone(),
            reason: "no `api` URL configured",
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
                source: e.without_url(),
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
        let body = self.read_body(op, response, MAX_RESPONSE_BYTES).await?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(TargetError::Unauthorized {
                target: self.target.clone(),
                op: op.to_owned(),
            });
        }
        Ok((status, body))
    }

    /// The body of `response` as text, refused once longer than `limit` bytes.
    async fn read_body(
        &self,
        op: &str,
        response: reqwest::Response,
        limit: usize,
    ) -> Result<String, TargetError> {
        crate::http_body::read(response, limit)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => TargetError::TooLarge {
                    target: self.target.clone(),
                    op: op.to_owned(),
                    limit,
                },
                BodyError::Transport(e) => self.transport_error(op, e),
            })
    }

    /// An answer the caller did not expect.
    pub fn unexpected(&self, op: &str, status: StatusCode, detail: String) -> TargetError {
        TargetError::Http {
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
        TargetError::Unreachable {
            target: self.target.clone(),
            url: self.base.to_string(),
            source: e.without_url(),
        }
    }
}

/// `error` and its causes, one after the other, credentials masked in each.
pub(super) fn redacted_chain(error: &reqwest::Error) -> String {
    let mut text = redact(&error.to_string());
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&redact(&s.to_string()));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::config::TargetKind;

    /// A server on 127.0.0.1:0 that answers every connection with a chunked body that never
    /// ends, a chunk every `pause`.
    async fn endless_server(pause: Duration) -> url::Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = stream.read(&mut request).await;
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                                Transfer-Encoding: chunked\r\n\r\n";
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                    while stream.write_all(chunk.as_bytes()).await.is_ok() {
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                });
            }
        });
        url
    }

    fn client(api: url::Url, timeout: Duration) -> ApiClient {
        ApiClient::new(&TargetConfig {
            name: "g".into(),
            kind: TargetKind::Go2rtc,
            api: Some(api),
            rtsp: None,
            username: None,
            password: None,
            timeout,
            path: None,
            inline_credentials: false,
            env_file: None,
            max_writes_per_minute: None,
            max_in_flight: 1,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn an_endless_body_is_refused_at_the_cap_naming_the_server() {
        let api = client(
            endless_server(Duration::ZERO).await,
            Duration::from_secs(60),
        );
        let request = api.request("list", Method::GET, "api/streams").unwrap();
        let e = api.send("list", request).await.unwrap_err();
        assert!(matches!(e, TargetError::TooLarge { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("target g: list") && e.contains(&MAX_RESPONSE_BYTES.to_string()),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_body_that_never_ends_is_cut_by_the_timeout() {
        let api = client(
            endless_server(Duration::from_millis(50)).await,
            Duration::from_millis(500),
        );
        let started = Instant::now();
        let request = api.request("list", Method::GET, "api/streams").unwrap();
        let e = api.send("list", request).await.unwrap_err();
        assert!(matches!(e, TargetError::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

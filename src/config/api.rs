//! The `api:` section: where the daemon's HTTP API listens and the secrets that guard it.
//!
//! Invariant: a listener that is not on loopback always has a bearer token, so nothing outside
//! the machine can change what camsync does without one.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::values::{ConfigError, Invalid, parse_duration, resolve_secret};
use crate::secret::Secret;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9180";
pub const DEFAULT_WEBHOOK_WINDOW: Duration = Duration::from_secs(300);
/// Default of `api.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default of `api.header_timeout`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `api.max_event_streams`.
pub const DEFAULT_MAX_EVENT_STREAMS: usize = 32;

/// The daemon's HTTP API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where the API listens (default 127.0.0.1:9180).
    pub listen: SocketAddr,
    /// Bearer token for the mutating routes (`Authorization: Bearer …`); required off loopback.
    pub token: Option<Secret>,
    /// Key of the webhook's HMAC-SHA256 signature.
    pub webhook_secret: Option<Secret>,
    /// How old a signed webhook's timestamp may be (either way) before it is refused as stale
    /// or replayed (default 5m).
    pub webhook_window: Duration,
    /// How many connections the API holds open at once (default 256). When all are taken,
    /// idle ones are closed to make room; if none is idle, new ones wait to be accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's header, and how long a kept-alive
    /// connection may stay idle between requests (default 10s).
    pub header_timeout: Duration,
    /// How many `GET /v1/events` streams may be open at once (default 32); more are refused
    /// with 503.
    pub max_event_streams: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9180))),
            token: None,
            webhook_secret: None,
            webhook_window: DEFAULT_WEBHOOK_WINDOW,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub listen: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub webhook_secret_env: Option<Spanned<String>>,
    pub webhook_secret_file: Option<Spanned<String>>,
    pub webhook_window: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<usize>>,
    pub header_timeout: Option<Spanned<String>>,
    pub max_event_streams: Option<Spanned<usize>>,
}

/// Parses `listen`: an `address:port`; IPv6 in brackets.
fn parse_listen(s: &Spanned<String>) -> Result<SocketAddr, String> {
    s.value.parse().map_err(|_| {
        format!(
            "{} is not an address and port such as 127.0.0.1:9180 or [::1]:9180",
            crate::echo::Echo(&s.value)
        )
    })
}

/// Why a listener may not start without a token, if it may not.
fn check_token(listen: SocketAddr, token: Option<&Secret>) -> Result<(), String> {
    if listen.ip().is_loopback() || token.is_some() {
        return Ok(());
    }
    Err(format!(
        "{listen} is reachable from other machines; set `token_env` or `token_file` so that \
         only callers with the token can change anything, or listen on 127.0.0.1"
    ))
}

/// The `api:` section, or its defaults.
pub(super) fn parse(
    raw: Option<RawApi>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    invalid: &Invalid<'_>,
) -> Result<ApiConfig, ConfigError> {
    let Some(raw_api) = raw else {
        return Ok(ApiConfig::default());
    };
    let mut config = ApiConfig::default();
    if let Some(listen) = &raw_api.listen {
        config.listen =
            parse_listen(listen).map_err(|r| invalid(listen.referenced.line(), "api.listen", r))?;
    }
    let secret = |env_key: &Option<Spanned<String>>, file_key, name| {
        resolve_secret(env_key, file_key, name, base, env)
            .map_err(|(line, key, reason)| invalid(line, &format!("api.{key}"), reason))
    };
    config.token = secret(&raw_api.token_env, &raw_api.token_file, "token")?;
    config.webhook_secret = secret(
        &raw_api.webhook_secret_env,
        &raw_api.webhook_secret_file,
        "webhook_secret",
    )?;
    if let Some(window) = &raw_api.webhook_window {
        config.webhook_window = parse_duration(window)
            .map_err(|r| invalid(window.referenced.line(), "api.webhook_window", r))?;
    }
    if let Some(timeout) = &raw_api.header_timeout {
        config.header_timeout = parse_duration(timeout)
            .map_err(|r| invalid(timeout.referenced.line(), "api.header_timeout", r))?;
    }
    for (raw, key, value) in [
        (
            &raw_api.max_connections,
            "api.max_connections",
            &mut config.max_connections,
        ),
        (
            &raw_api.max_event_streams,
            "api.max_event_streams",
            &mut config.max_event_streams,
        ),
    ] {
        if let Some(n) = raw {
            if n.value == 0 {
                return Err(invalid(
                    n.referenced.line(),
                    key,
                    "must be at least 1".into(),
                ));
            }
            *value = n.value;
        }
    }
    let line = raw_api.listen.as_ref().map_or(1, |l| l.referenced.line());
    check_token(config.listen, config.token.as_ref())
        .map_err(|r| invalid(line, "api.listen", r))?;
    Ok(config)
}

//! The `api:` section: where the daemon's HTTP API listens and the secrets that guard it.
//!
//! Invariant: a listener that is not on loopback always has a bearer token, so nothing outside
//! the machine can change what camsync does without one.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::secret::Secret;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9180";
pub const DEFAULT_WEBHOOK_WINDOW: Duration = Duration::from_secs(300);

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
}

/// Parses `listen`: an `address:port`; IPv6 in brackets.
pub(super) fn parse_listen(s: &Spanned<String>) -> Result<SocketAddr, String> {
    s.value.parse().map_err(|_| {
        format!(
            "{:?} is not an address and port such as 127.0.0.1:9180 or [::1]:9180",
            s.value
        )
    })
}

/// Why a listener may not start without a token, if it may not.
pub(super) fn check_token(listen: SocketAddr, token: Option<&Secret>) -> Result<(), String> {
    if listen.ip().is_loopback() || token.is_some() {
        return Ok(());
    }
    Err(format!(
        "{listen} is reachable from other machines; set `token_env` or `token_file` so that \
         only callers with the token can change anything, or listen on 127.0.0.1"
    ))
}

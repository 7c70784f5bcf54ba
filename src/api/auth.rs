//! Who may call the API: the bearer token and the webhook's HMAC signature.
//!
//! - **Bearer token** (`api.token_env` / `api.token_file`): `Authorization: Bearer <token>`.
//!   When one is configured, every route under `/v1/` needs it (the open ones are `/healthz`,
//!   `/readyz`, `/metrics` and `/v1/openapi.json`). Without one, the config guarantees the
//!   listener is on loopback.
//! - **Webhook signature** (`api.webhook_secret_env` / `_file`): headers
//!   `X-Camsync-Timestamp: <Unix seconds, optionally with a fraction>` and
//!   `X-Camsync-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. A timestamp
//!   further than `api.webhook_window` from now is stale; a signature already accepted is a
//!   replay. Either is refused. The webhook takes a valid signature or the bearer token.
//!
//! Every comparison with a secret is constant-time ([`Mac::verify_slice`]); the token is
//! compared through an HMAC of it, so neither its bytes nor its length leak through timing.
//! The replay memory is bounded: [`MAX_REMEMBERED`] signatures, each forgotten once its
//! timestamp leaves the window (after which it would be stale anyway).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::error::ApiError;
use crate::config::ApiConfig;
use crate::secret::Secret;

pub const TIMESTAMP_HEADER: &str = "x-camsync-timestamp";
pub const SIGNATURE_HEADER: &str = "x-camsync-signature";
const SIGNATURE_PREFIX: &str = "sha256=";

/// Signatures remembered for replay detection at most; past this, signed webhooks are refused
/// with 429 until old ones leave the window.
pub const MAX_REMEMBERED: usize = 65_536;

/// The key under which tokens are hashed before the constant-time comparison.
const TOKEN_KEY: &[u8] = b"camsync bearer token";

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// The `X-Camsync-Signature` value for `body` sent at `timestamp` (Unix seconds, as sent).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    format!(
        "{SIGNATURE_PREFIX}{}",
        hex::encode(m.finalize().into_bytes())
    )
}

pub struct Auth {
    /// HMAC of the token under [`TOKEN_KEY`].
    token: Option<Vec<u8>>,
    webhook_secret: Option<Secret>,
    window: Duration,
    /// Accepted signatures → when they leave the window.
    seen: Mutex<HashMap<Vec<u8>, SystemTime>>,
}

impl Auth {
    pub fn new(config: &ApiConfig) -> Auth {
        Auth {
            token: config.token.as_ref().map(|t| {
                let mut m = mac(TOKEN_KEY);
                m.update(t.expose().as_bytes());
                m.finalize().into_bytes().to_vec()
            }),
            webhook_secret: config.webhook_secret.clone(),
            window: config.webhook_window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the bearer token of a `/v1/` request; anything goes when none is configured.
    pub fn bearer(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let Some(given) = bearer_token(headers) else {
            return Err(ApiError::Unauthorized(
                "missing bearer token: send `Authorization: Bearer <token>` (the token of api.token_env / api.token_file)".into(),
            ));
        };
        let mut m = mac(TOKEN_KEY);
        m.update(given.as_bytes());
        m.verify_slice(expected)
            .map_err(|_| ApiError::Unauthorized("wrong bearer token".into()))
    }

    /// Checks a webhook: a valid signature, or the bearer token.
    pub fn webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), ApiError> {
        let signed = headers.contains_key(SIGNATURE_HEADER);
        match (&self.webhook_secret, signed) {
            (Some(secret), true) => self.signature(secret, headers, body, now),
            (Some(_), false) if self.token.is_none() || bearer_token(headers).is_none() => {
                Err(ApiError::Unauthorized(format!(
                    "missing signature: send {TIMESTAMP_HEADER} (Unix seconds) and {SIGNATURE_HEADER}: \
                     sha256=<hex HMAC-SHA256 of \"<timestamp>.<body>\" under the webhook secret>"
                )))
            }
            (None, true) if self.token.is_some() && bearer_token(headers).is_none() => {
                Err(ApiError::Unauthorized(
                    "webhook signatures are not configured (api.webhook_secret_env / api.webhook_secret_file); send the bearer token".into(),
                ))
            }
            _ => self.bearer(headers),
        }
    }

    fn signature(
        &self,
        secret: &Secret,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), ApiError> {
        let unauthorized = |why: String| Err(ApiError::Unauthorized(why));
        let Some(timestamp) = header(headers, TIMESTAMP_HEADER) else {
            return unauthorized(format!("missing {TIMESTAMP_HEADER} (Unix seconds)"));
        };
        let Some(sent) = parse_timestamp(timestamp) else {
            return unauthorized(format!(
                "{TIMESTAMP_HEADER} must be a Unix time in seconds, such as 1700000000 or 1700000000.123"
            ));
        };
        let skew = now.duration_since(sent).unwrap_or_else(|e| e.duration());
        if skew > self.window {
            return unauthorized(format!(
                "stale timestamp: {}s away from camsync's clock, more than api.webhook_window ({}s)",
                skew.as_secs(),
                self.window.as_secs()
            ));
        }
        let tag = header(headers, SIGNATURE_HEADER)
            .and_then(|s| s.strip_prefix(SIGNATURE_PREFIX))
            .and_then(|h| hex::decode(h).ok());
        let Some(tag) = tag else {
            return unauthorized(format!("{SIGNATURE_HEADER} must be sha256=<64 hex digits>"));
        };
        let mut m = mac(secret.expose().as_bytes());
        m.update(timestamp.as_bytes());
        m.update(b".");
        m.update(body);
        if m.verify_slice(&tag).is_err() {
            return unauthorized("signature does not match the body and timestamp".into());
        }
        self.remember(tag, sent + self.window, now)
    }

    /// Records an accepted signature; refuses one seen before.
    fn remember(&self, tag: Vec<u8>, expires: SystemTime, now: SystemTime) -> Result<(), ApiError> {
        let mut seen = crate::lock::lock(&self.seen);
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, until| *until >= now);
        }
        if seen.contains_key(&tag) {
            return Err(ApiError::Unauthorized(
                "replayed: this signature was already accepted; sign each delivery with a fresh timestamp (with a fraction, e.g. `date +%s.%N`) or add a \"nonce\" to the body".into(),
            ));
        }
        if seen.len() >= MAX_REMEMBERED {
            return Err(ApiError::TooMany(
                "too many signed webhooks within api.webhook_window; retry later".into(),
            ));
        }
        seen.insert(tag, expires);
        Ok(())
    }
}

/// Unix seconds, optionally with a fraction (`date +%s.%N`), as sent.
fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let nanos: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    let nanos: u32 = nanos.parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::new(whole.parse().ok()?, nanos))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = header(headers, "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &str = "hook-key";

    fn auth(token: Option<&str>, secret: Option<&str>) -> Auth {
        Auth::new(&ApiConfig {
            token: token.map(Secret::new),
            webhook_secret: secret.map(Secret::new),
            ..ApiConfig::default()
        })
    }

    fn signed(timestamp: u64, body: &[u8]) -> HeaderMap {
        let ts = timestamp.to_string();
        let mut h = HeaderMap::new();
        h.insert(TIMESTAMP_HEADER, HeaderValue::from_str(&ts).unwrap());
        h.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&sign(SECRET, &ts, body)).unwrap(),
        );
        h
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn why(result: Result<(), ApiError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // As the README's example computes it:
        // printf '%s' '1700000000.{}' | openssl dgst -sha256 -hmac hook-key
        assert_eq!(
            sign(SECRET, "1700000000", b"{}"),
            "sha256=b67103b47f6a38d9fb33da47af979d4b13d5be721452e6e70ff2c81b1729b991"
        );
    }

    #[test]
    fn timestamps_are_unix_seconds_with_an_optional_fraction() {
        assert_eq!(parse_timestamp("1700000000"), Some(at(1_700_000_000)));
        assert_eq!(
            parse_timestamp("1700000000.25"),
            Some(at(1_700_000_000) + Duration::from_millis(250))
        );
        for bad in ["", ".5", "17e8", "-1", "1.2.3", "12 "] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_same_body_twice_in_one_second_passes_with_distinct_timestamps() {
        let a = auth(None, Some(SECRET));
        for ts in ["1000.1", "1000.2"] {
            let mut h = HeaderMap::new();
            h.insert(TIMESTAMP_HEADER, HeaderValue::from_static(ts));
            h.insert(
                SIGNATURE_HEADER,
                HeaderValue::from_str(&sign(SECRET, ts, b"{}")).unwrap(),
            );
            assert!(a.webhook(&h, b"{}", at(1_001)).is_ok(), "{ts}");
        }
    }

    #[test]
    fn a_valid_signature_passes_once_and_its_replay_is_refused() {
        let a = auth(None, Some(SECRET));
        let h = signed(1_000, b"{}");
        assert!(a.webhook(&h, b"{}", at(1_010)).is_ok());
        assert!(why(a.webhook(&h, b"{}", at(1_011))).contains("replayed"));
    }

    #[test]
    fn wrong_stale_future_and_missing_signatures_are_refused() {
        let a = auth(None, Some(SECRET));
        let h = signed(1_000, b"{}");
        assert!(why(a.webhook(&h, b"{\"name\":\"x\"}", at(1_000))).contains("does not match"));
        assert!(why(a.webhook(&h, b"{}", at(1_000 + 301))).contains("stale"));
        assert!(why(a.webhook(&h, b"{}", at(1_000 - 301))).contains("stale"));
        assert!(why(a.webhook(&HeaderMap::new(), b"{}", at(1_000))).contains("missing signature"));
        let mut no_ts = h.clone();
        no_ts.remove(TIMESTAMP_HEADER);
        assert!(why(a.webhook(&no_ts, b"{}", at(1_000))).contains("missing x-camsync-timestamp"));
    }

    #[test]
    fn the_bearer_token_is_checked_and_also_opens_the_webhook() {
        let a = auth(Some("t0ken"), Some(SECRET));
        let mut h = HeaderMap::new();
        assert!(why(a.bearer(&h)).contains("missing bearer token"));
        h.insert("authorization", HeaderValue::from_static("Bearer nope"));
        assert!(why(a.bearer(&h)).contains("wrong bearer token"));
        h.insert("authorization", HeaderValue::from_static("Bearer t0ken"));
        assert!(a.bearer(&h).is_ok());
        assert!(a.webhook(&h, b"{}", at(1)).is_ok());
        // Without any secret configured (loopback only), everything is open.
        assert!(
            auth(None, None)
                .webhook(&HeaderMap::new(), b"{}", at(1))
                .is_ok()
        );
    }

    #[test]
    fn replay_memory_is_bounded_and_forgets_what_left_the_window() {
        let a = auth(None, Some(SECRET));
        let now = at(10_000);
        {
            let mut seen = a.seen.lock().unwrap();
            for i in 0..MAX_REMEMBERED as u64 {
                seen.insert(i.to_le_bytes().to_vec(), at(i % 2 * 20_000));
            }
        }
        // Full: the expired half is dropped and the new signature fits.
        assert!(a.webhook(&signed(10_000, b"{}"), b"{}", now).is_ok());
        assert_eq!(a.seen.lock().unwrap().len(), MAX_REMEMBERED / 2 + 1);
    }
}

//! What a resolver offers the renewal: a live stream granted for a while ([`StreamGrant`]),
//! the three calls that make, extend and end one ([`LiveStreams`]), and why one failed
//! ([`ResolveError`]). Google's SDM API is one; a command or an HTTP endpoint that prints a
//! URL with its expiry are others.

use std::future::Future;

use tokio::time::Instant;

use crate::secret::Secret;

/// A live stream: where to play it, how to extend it, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamGrant {
    /// The URL to play, with its token (Nest: in its `auth=` parameter).
    pub url: Secret,
    /// What extends it (Nest's `streamExtensionToken`; empty where extending means asking
    /// again).
    pub extension_token: Secret,
    pub expires: Instant,
}

/// The calls of one account or resolver, for the renewal to drive (and tests to fake).
pub trait LiveStreams: Send + Sync + 'static {
    /// A new stream of `device` (Nest: `GenerateRtspStream` on `enterprises/…/devices/…`).
    fn generate(
        &self,
        device: &str,
    ) -> impl Future<Output = Result<StreamGrant, ResolveError>> + Send;

    /// The same stream with a later expiry (Nest: `ExtendRtspStream`, new tokens in the URL's
    /// `auth=`; elsewhere: the URL asked for again).
    fn extend(
        &self,
        device: &str,
        grant: &StreamGrant,
    ) -> impl Future<Output = Result<StreamGrant, ResolveError>> + Send;

    /// Ends the stream (Nest: `StopRtspStream`; elsewhere nothing).
    fn stop(
        &self,
        device: &str,
        grant: &StreamGrant,
    ) -> impl Future<Output = Result<(), ResolveError>> + Send;
}

/// A resolver that only tells a URL (`exec`, `http`): a new stream and an extension are both
/// asking again, and nothing ends a stream.
pub trait UrlSource: Send + Sync + 'static {
    fn ask(&self, device: &str) -> impl Future<Output = Result<StreamGrant, ResolveError>> + Send;
}

impl<T: UrlSource> LiveStreams for T {
    async fn generate(&self, device: &str) -> Result<StreamGrant, ResolveError> {
        self.ask(device).await
    }

    async fn extend(&self, device: &str, _: &StreamGrant) -> Result<StreamGrant, ResolveError> {
        self.ask(device).await
    }

    async fn stop(&self, _: &str, _: &StreamGrant) -> Result<(), ResolveError> {
        Ok(())
    }
}

/// Why a resolver's call failed. None carries a token, a secret or a stream URL.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "nest account {account}: Google refused the refresh token ({error}); sign in again \
         (Device Access partner connection) and set the new refresh token"
    )]
    Revoked { account: String, error: String },
    #[error("resolver {account}: the command quota is used up (429)")]
    RateLimited { account: String },
    #[error(
        "nest device {device}: the stream cannot be extended ({status}: {detail}); it is generated anew"
    )]
    StreamGone {
        device: String,
        status: u16,
        detail: String,
    },
    #[error("resolver {account}: {op} answered {status}: {detail}")]
    Http {
        account: String,
        op: &'static str,
        status: u16,
        detail: String,
    },
    #[error("resolver {account}: {op}: {detail}")]
    Transport {
        account: String,
        op: &'static str,
        detail: String,
    },
    #[error("resolver {account}: {op}: unexpected answer: {detail}")]
    Malformed {
        account: String,
        op: &'static str,
        detail: String,
    },
    #[error("resolver {account}: device {device}: {detail}")]
    Failed {
        account: String,
        device: String,
        detail: String,
    },
}

impl ResolveError {
    /// Whether nothing but the operator can fix it (a new refresh token).
    pub fn is_revoked(&self) -> bool {
        matches!(self, ResolveError::Revoked { .. })
    }
}

/// What an `exec` or `http` resolver answers: `{"url": …, "expires_at": …}` (or `"urls"`, of
/// which the first is played; `expires_at` in RFC 3339, or absent for a URL that does not
/// expire).
#[derive(serde::Deserialize)]
struct Answer {
    url: Option<String>,
    urls: Option<Vec<String>>,
    expires_at: Option<String>,
}

/// How long a URL without `expires_at` is kept before it is asked for again.
pub const NO_EXPIRY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl StreamGrant {
    /// The grant an `exec` or `http` resolver's `text` describes; `why` names the resolver
    /// and device in an error (which never quotes the text: it holds a token).
    pub fn from_answer(
        text: &str,
        why: impl Fn(String) -> ResolveError,
    ) -> Result<StreamGrant, ResolveError> {
        let answer: Answer = serde_json::from_str(text).map_err(|e| {
            why(format!(
                "the answer is not the JSON {{\"url\": …, \"expires_at\": …}} ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let url = answer
            .url
            .or_else(|| answer.urls.and_then(|u| u.into_iter().next()))
            .ok_or_else(|| why("the answer has no `url` (nor `urls`)".into()))?;
        if url::Url::parse(&url).is_err() {
            return Err(why("the answer's `url` is not a URL".into()));
        }
        let expires = match answer.expires_at {
            None => Instant::now() + NO_EXPIRY,
            Some(at) => {
                let at = humantime::parse_rfc3339_weak(&at).map_err(|e| {
                    why(format!(
                        "`expires_at` {} is not an RFC 3339 time ({e})",
                        crate::echo::Echo(&at)
                    ))
                })?;
                let left = at
                    .duration_since(std::time::SystemTime::now())
                    .map_err(|_| {
                        why(format!(
                            "`expires_at` {} is in the past",
                            humantime::format_rfc3339_seconds(at)
                        ))
                    })?;
                Instant::now() + left
            }
        };
        Ok(StreamGrant {
            url: Secret::new(url),
            extension_token: Secret::new(""),
            expires,
        })
    }
}

/// The moment of tokio's clock that wall-clock time `at` is, if it is still ahead.
pub(super) fn instant_at(at: std::time::SystemTime) -> Option<Instant> {
    let left = at.duration_since(std::time::SystemTime::now()).ok()?;
    Some(Instant::now() + left)
}

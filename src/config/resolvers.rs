//! The `resolvers:` section: commands and HTTP endpoints that tell a camera's current stream
//! URL and its expiry, for vendors with their own token dance (cameras name one in
//! `resolve:`). `{device}` in the command's arguments or the URL is replaced by the camera's
//! `device`.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::values::{ConfigError, Invalid, Pace, parse_http_url, resolve_secret};
use crate::echo::Echo;
use crate::secret::{Secret, redact};

/// Defaults: 60 runs or requests a minute, asked again 60 s before expiry, 10 s per run or
/// request.
const DEFAULTS: Pace = Pace {
    max_per_minute: 60,
    renew_before: Duration::from_secs(60),
    timeout: Duration::from_secs(10),
};

/// What `{device}` stands for.
pub const DEVICE: &str = "{device}";

#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// What cameras name in `resolve.resolver`.
    pub name: String,
    pub kind: ResolverKind,
    /// Limit of one run or request; a command still running then is killed.
    pub timeout: Duration,
    /// Runs or requests in any minute (default 60).
    pub max_per_minute: u32,
    /// How long before its expiry a URL is asked for again (default 60s).
    pub renew_before: Duration,
}

#[derive(Clone)]
pub enum ResolverKind {
    /// A command, run without a shell, that prints the answer on its standard output.
    Exec { argv: Vec<String> },
    /// A GET of this URL answers it.
    Http { url: String, bearer: Option<Secret> },
}

/// Shows the program and the URL's scheme, host and path only: an argument or a query may
/// hold a key.
impl fmt::Debug for ResolverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolverKind::Exec { argv } => f
                .debug_struct("Exec")
                .field("program", &argv.first())
                .field("arguments", &argv.len().saturating_sub(1))
                .finish(),
            ResolverKind::Http { url, bearer } => {
                let shown = redact(url.split(['?', '#']).next().unwrap_or_default());
                f.debug_struct("Http")
                    .field("url", &shown)
                    .field("bearer", bearer)
                    .finish()
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResolver {
    name: Spanned<String>,
    exec: Option<Vec<String>>,
    http: Option<Spanned<String>>,
    bearer_env: Option<Spanned<String>>,
    bearer_file: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    max_per_minute: Option<Spanned<u32>>,
    renew_before: Option<Spanned<String>>,
}

pub(super) fn parse(
    raw: Vec<RawResolver>,
    taken: &[String],
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    invalid: &Invalid<'_>,
) -> Result<Vec<ResolverConfig>, ConfigError> {
    let mut resolvers: Vec<ResolverConfig> = Vec::with_capacity(raw.len());
    for r in raw {
        let line = r.name.referenced.line();
        let name = r.name.value;
        let field = |key: &str| format!("resolvers.{key}");
        let clash = taken.contains(&name) || resolvers.iter().any(|o| o.name == name);
        if name.is_empty() || clash {
            return Err(invalid(
                line,
                &field("name"),
                format!(
                    "{} must be a non-empty name that no other resolver or nest account has",
                    Echo(&name)
                ),
            ));
        }
        let bearer = resolve_secret(&r.bearer_env, &r.bearer_file, "bearer", base, env).map_err(
            |(line, key, reason)| {
                invalid(line, &field(&key), format!("resolver {name:?}: {reason}"))
            },
        )?;
        let kind = match (r.exec, r.http, bearer) {
            (Some(argv), None, None) if !argv.is_empty() && !argv[0].is_empty() => {
                ResolverKind::Exec { argv }
            }
            (None, Some(url), bearer) => {
                let example = Spanned {
                    value: url.value.replace(DEVICE, "device"),
                    referenced: url.referenced,
                    defined: url.defined,
                };
                parse_http_url(&example)
                    .map_err(|r| invalid(url.referenced.line(), &field("http"), r))?;
                ResolverKind::Http {
                    url: url.value,
                    bearer,
                }
            }
            (Some(_), None, Some(_)) => {
                return Err(invalid(
                    line,
                    &field("bearer_env"),
                    format!("resolver {name:?}: a bearer token is for `http` resolvers"),
                ));
            }
            _ => {
                return Err(invalid(
                    line,
                    &field("exec"),
                    format!(
                        "resolver {name:?}: give either `exec` (a command and its arguments, run \
                         without a shell) or `http` (a URL to GET)"
                    ),
                ));
            }
        };
        let durations = [&r.renew_before, &r.timeout];
        let pace = Pace::parse(durations, &r.max_per_minute, DEFAULTS, "resolvers", invalid)?;
        resolvers.push(ResolverConfig {
            timeout: pace.timeout,
            renew_before: pace.renew_before,
            max_per_minute: pace.max_per_minute,
            kind,
            name,
        });
    }
    Ok(resolvers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolver_printed_for_debugging_shows_no_key_of_its_url_or_arguments() {
        let http = ResolverKind::Http {
            url: "https://me:pw@vendor.example/v1/{device}/stream?api_key=K3Y#frag".into(),
            bearer: Some(Secret::new("B3ARER")),
        };
        let exec = ResolverKind::Exec {
            argv: vec!["/usr/bin/vendor-url".into(), "--token=T0KEN".into()],
        };
        let shown = format!("{http:?} {exec:?}");
        for secret in ["pw", "K3Y", "frag", "B3ARER", "T0KEN"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("vendor.example/v1/{device}/stream"),
            "{shown}"
        );
        assert!(shown.contains("/usr/bin/vendor-url"), "{shown}");
    }
}

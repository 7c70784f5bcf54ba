//! Reading one value of `camsync.yaml`: durations, server URLs, secrets (`<name>_env` /
//! `<name>_file`) and command paces, and the [`ConfigError`] that names the file, the line and
//! the key. Every section's module reads its values with these.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

use crate::bounded_read;
use crate::echo::Echo;
use crate::secret::Secret;

/// How a section reports a bad value: the line, the key and why.
pub(super) type Invalid<'a> = dyn Fn(u64, &str, String) -> ConfigError + 'a;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}; pass --config or set CAMSYNC_CONFIG")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}:{line}: `{key}`: {reason}")]
    Invalid {
        path: PathBuf,
        line: u64,
        key: String,
        reason: String,
    },
    #[error("environment variable {var}: {reason}")]
    Env { var: &'static str, reason: String },
}

/// Resolves a secret named by `<name>_env` (an environment variable) or `<name>_file` (a file,
/// relative to the config's directory); at most one of them. On error: line, key and reason.
pub(super) fn resolve_secret(
    var: &Option<Spanned<String>>,
    file: &Option<Spanned<String>>,
    name: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, (u64, String, String)> {
    match (var, file) {
        (None, None) => Ok(None),
        (Some(var), None) => env(&var.value).map(Secret::new).map(Some).ok_or_else(|| {
            (
                var.referenced.line(),
                format!("{name}_env"),
                format!("environment variable {} is not set", var.value),
            )
        }),
        (None, Some(file)) => read_secret_file(&base.join(&file.value))
            .map(Some)
            .map_err(|reason| (file.referenced.line(), format!("{name}_file"), reason)),
        (Some(_), Some(file)) => Err((
            file.referenced.line(),
            format!("{name}_file"),
            format!("set `{name}_env` or `{name}_file`, not both"),
        )),
    }
}

/// Reads a secret from a file (a Docker or Kubernetes secret), without its trailing newline.
pub(crate) fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let text = bounded_read::read_to_string(path, bounded_read::SECRET_LIMIT)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(value))
}

/// A command pace and the three durations of a resolver or Nest account (`<section>.<key>`
/// in errors): `max_per_minute`, `renew_before`, `timeout`, each or its default.
pub(super) struct Pace {
    pub(super) max_per_minute: u32,
    pub(super) renew_before: Duration,
    pub(super) timeout: Duration,
}

impl Pace {
    pub(super) fn parse(
        raw: [&Option<Spanned<String>>; 2],
        max_per_minute: &Option<Spanned<u32>>,
        defaults: Pace,
        section: &str,
        invalid: &Invalid<'_>,
    ) -> Result<Pace, ConfigError> {
        let [renew_before, timeout] = raw;
        let duration = |raw: &Option<Spanned<String>>, key: &str, default| match raw {
            None => Ok(default),
            Some(s) => parse_duration(s)
                .map_err(|r| invalid(s.referenced.line(), &format!("{section}.{key}"), r)),
        };
        let max_per_minute = match max_per_minute {
            None => defaults.max_per_minute,
            Some(n) if n.value == 0 => {
                return Err(invalid(
                    n.referenced.line(),
                    &format!("{section}.max_per_minute"),
                    "must be at least 1".into(),
                ));
            }
            Some(n) => n.value,
        };
        Ok(Pace {
            max_per_minute,
            renew_before: duration(renew_before, "renew_before", defaults.renew_before)?,
            timeout: duration(timeout, "timeout", defaults.timeout)?,
        })
    }
}

pub(super) fn parse_duration(s: &Spanned<String>) -> Result<Duration, String> {
    match humantime::parse_duration(&s.value) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".into()),
        Err(e) => Err(format!(
            "{} is not a duration like 30s, 5m or 1h ({e})",
            Echo(&s.value)
        )),
    }
}

/// A server address as shown in an error: credentials masked, escaped, cut.
pub(super) fn shown_url(value: &str) -> String {
    Echo(&crate::secret::redact(value)).to_string()
}

pub(super) fn parse_http_url(s: &Spanned<String>) -> Result<url::Url, String> {
    let url = parse_server_url(s, &["http", "https"], "an http:// or https://")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("put API credentials in `username` / `password_env`, not in the URL".into());
    }
    Ok(url)
}

pub(super) fn parse_rtsp_url(s: &Spanned<String>) -> Result<url::Url, String> {
    parse_server_url(s, &["rtsp", "rtsps"], "an rtsp://")
}

/// A server's address: a URL of one of `schemes` with a host (`shape` names them in errors).
pub(super) fn parse_server_url(
    s: &Spanned<String>,
    schemes: &[&str],
    shape: &str,
) -> Result<url::Url, String> {
    let url = url::Url::parse(&s.value)
        .map_err(|e| format!("{} is not a URL: {e}", shown_url(&s.value)))?;
    if !schemes.contains(&url.scheme()) || url.host_str().is_none() {
        return Err(format!(
            "{} must be {shape} URL with a host",
            shown_url(&s.value)
        ));
    }
    Ok(url)
}

//! The `nest_accounts:` section: Google Device Access accounts whose cameras camsync keeps
//! streaming (see `resolve`). Each account has its OAuth client, a refresh token (from the
//! environment or a file, like every secret), its command quota and the renewal margin.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::values::{ConfigError, Invalid, Pace, parse_http_url, resolve_secret};
use crate::echo::Echo;
use crate::secret::Secret;

/// Google's SDM API.
pub const SDM_URL: &str = "https://smartdevicemanagement.googleapis.com/v1";
/// Google's OAuth token endpoint.
pub const TOKEN_URL: &str = "https://www.googleapis.com/oauth2/v4/token";

/// Defaults: 10 commands a minute (Google's quota per project), renewal 60 s before expiry, 10 s
/// per call.
const DEFAULTS: Pace = Pace {
    max_per_minute: 10,
    renew_before: Duration::from_secs(60),
    timeout: Duration::from_secs(10),
};

/// One Device Access account.
#[derive(Debug, Clone)]
pub struct NestAccountConfig {
    /// What cameras name in `nest.account`.
    pub name: String,
    /// The Device Access project id (`enterprises/<project_id>`).
    pub project_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub refresh_token: Secret,
    /// Commands in any minute (default 10).
    pub max_per_minute: u32,
    /// How long before its expiry a stream is extended (default 60s).
    pub renew_before: Duration,
    pub sdm_url: url::Url,
    pub token_url: url::Url,
    pub timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNestAccount {
    name: Spanned<String>,
    project_id: String,
    client_id: String,
    client_secret_env: Option<Spanned<String>>,
    client_secret_file: Option<Spanned<String>>,
    refresh_token_env: Option<Spanned<String>>,
    refresh_token_file: Option<Spanned<String>>,
    max_per_minute: Option<Spanned<u32>>,
    renew_before: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    sdm_url: Option<Spanned<String>>,
    token_url: Option<Spanned<String>>,
}

pub(super) fn parse(
    raw: Vec<RawNestAccount>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    invalid: &Invalid<'_>,
) -> Result<Vec<NestAccountConfig>, ConfigError> {
    let mut accounts: Vec<NestAccountConfig> = Vec::with_capacity(raw.len());
    for a in raw {
        let line = a.name.referenced.line();
        let name = a.name.value;
        let field = |key: &str| format!("nest_accounts.{key}");
        if name.is_empty() || accounts.iter().any(|other| other.name == name) {
            return Err(invalid(
                line,
                &field("name"),
                format!("{} must be a unique, non-empty account name", Echo(&name)),
            ));
        }
        let secret = |var, file, key: &str| {
            resolve_secret(var, file, key, base, env)
                .map_err(|(line, key, reason)| {
                    invalid(line, &field(&key), format!("account {name:?}: {reason}"))
                })?
                .ok_or_else(|| {
                    invalid(
                        line,
                        &field(key),
                        format!("account {name:?}: set `{key}_env` or `{key}_file`"),
                    )
                })
        };
        let client_secret = secret(&a.client_secret_env, &a.client_secret_file, "client_secret")?;
        let refresh_token = secret(&a.refresh_token_env, &a.refresh_token_file, "refresh_token")?;
        let durations = [&a.renew_before, &a.timeout];
        let pace = Pace::parse(
            durations,
            &a.max_per_minute,
            DEFAULTS,
            "nest_accounts",
            invalid,
        )?;
        let url = |raw: &Option<Spanned<String>>, key: &str, default: &str| match raw {
            None => url::Url::parse(default)
                .map_err(|e| invalid(line, &field(key), format!("default {default}: {e}"))),
            Some(s) => parse_http_url(s).map_err(|r| invalid(s.referenced.line(), &field(key), r)),
        };
        let sdm_url = url(&a.sdm_url, "sdm_url", SDM_URL)?;
        let token_url = url(&a.token_url, "token_url", TOKEN_URL)?;
        if a.project_id.is_empty() || a.project_id.contains('/') {
            return Err(invalid(
                line,
                &field("project_id"),
                format!(
                    "account {name:?}: give the Device Access project id (the part after `enterprises/`)"
                ),
            ));
        }
        accounts.push(NestAccountConfig {
            name,
            project_id: a.project_id,
            client_id: a.client_id,
            client_secret,
            refresh_token,
            max_per_minute: pace.max_per_minute,
            renew_before: pace.renew_before,
            sdm_url,
            token_url,
            timeout: pace.timeout,
        });
    }
    Ok(accounts)
}

impl NestAccountConfig {
    /// `enterprises/<project>/devices/<id>` for a device given by id or by its full name.
    pub fn device_name(&self, device: &str) -> Result<String, String> {
        let prefix = format!("enterprises/{}/devices/", self.project_id);
        let id = device.strip_prefix(&prefix).unwrap_or(device);
        let valid = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(format!("{prefix}{id}"))
        } else {
            Err(format!(
                "nest device {} is not a device id of project {} (give the id, or \
                 `enterprises/{}/devices/<id>`)",
                Echo(device),
                Echo(&self.project_id),
                self.project_id
            ))
        }
    }
}

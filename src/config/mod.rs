//! `camsync.yaml`: reading, environment overrides and validation into a [`Config`].
//!
//! The file is strict: an unknown key, a bad duration or a duplicate target name is an error that
//! names the file, the line and the key. Relative paths are resolved against the config file's
//! directory. Secrets (`password_env`, `password_file`) are resolved here, once.
//!
//! The sections with rules of their own have a module each: `targets`, `health`, `api`,
//! `source`, `shard`, `nest` (`nest_accounts:`) and `resolvers`, which read their values with
//! `values` (durations, URLs, secrets, paces, and [`ConfigError`]); this one reads the file,
//! composes the sections and applies the `CAMSYNC_*` overrides.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

mod api;
mod health;
mod nest;
mod resolvers;
mod shard;
mod source;
mod targets;
mod values;

pub use api::ApiConfig;
pub use health::{DEFAULT_PROBE_TIMEOUT, DEFAULT_RESTART_SERVER_WINDOW, HealthConfig};
pub use nest::NestAccountConfig;
pub use resolvers::{DEVICE as RESOLVER_DEVICE, ResolverConfig, ResolverKind};
pub use shard::Shard;
pub use source::{
    DEFAULT_POSTGRES_TIMEOUT, DEFAULT_SQLITE_POLL, PostgresConfig, SourceConfig, SqliteConfig,
};
pub use targets::{DEFAULT_TIMEOUT, TargetConfig, TargetKind};
pub use values::ConfigError;
use values::parse_duration;
pub(crate) use values::read_secret_file;

use crate::bounded_read;
use crate::echo::Echo;
use crate::profile::{ProfileSpec, Profiles};

pub const DEFAULT_CONFIG_PATH: &str = "camsync.yaml";
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(30);
pub const DEFAULT_RESTART_CHECK: Duration = Duration::from_secs(2);

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from.
    pub path: PathBuf,
    pub source: SourceConfig,
    pub targets: Vec<TargetConfig>,
    /// The ledger file.
    pub state: PathBuf,
    /// How often the daemon converges everything, even without a change.
    pub resync: Duration,
    /// How often the daemon asks each server whether it restarted (one cheap GET; MediaMTX
    /// forgets every API-made path when it does).
    pub restart_check: Duration,
    /// Lets a plan delete more than half of the streams camsync owns on a target.
    pub allow_mass_delete: bool,
    /// Lifecycle profiles: the built-ins with the config's overrides.
    pub profiles: Profiles,
    /// The health monitor; `None` when disabled.
    pub health: Option<HealthConfig>,
    /// The daemon's HTTP API.
    pub api: ApiConfig,
    /// This instance's share of the cameras; `None`: not sharded, every camera is its own.
    pub shard: Option<Shard>,
    /// How failed writes are retried (config `retry:`).
    pub retry: RetryConfig,
    /// The most cameras an inventory may hold (this instance's shard; valid and rejected
    /// entries alike); a larger one is refused and the last good one stays in force.
    pub max_cameras: usize,
    /// Google Device Access accounts, for cameras with `nest:`.
    pub nest_accounts: Vec<NestAccountConfig>,
    /// Commands and HTTP endpoints that tell a camera's URL, for cameras with `resolve:`.
    pub resolvers: Vec<ResolverConfig>,
}

/// Reads environment variables for config and secrets (tests pass their own reader instead).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Default of `max_cameras`: ten times the largest site the benchmarks run.
pub const DEFAULT_MAX_CAMERAS: usize = 100_000;

/// Config `retry:`: how a target's worker retries an item that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// The backoff is exponential from `min` to `max`, with jitter.
    pub min: Duration,
    pub max: Duration,
    /// Failures in a row after which a stream is reported degraded; it is still retried.
    pub degraded_after: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            min: Duration::from_millis(200),
            max: Duration::from_secs(60),
            degraded_after: 5,
        }
    }
}

impl Config {
    pub fn target_kinds(&self) -> BTreeMap<String, TargetKind> {
        self.targets
            .iter()
            .map(|t| (t.name.clone(), t.kind))
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    source: Spanned<source::RawSource>,
    targets: Vec<targets::RawTarget>,
    state: Option<String>,
    resync: Option<Spanned<String>>,
    restart_check: Option<Spanned<String>>,
    #[serde(default)]
    allow_mass_delete: bool,
    profiles: Option<Spanned<BTreeMap<String, ProfileSpec>>>,
    health: Option<health::RawHealth>,
    api: Option<api::RawApi>,
    shard: Option<Spanned<shard::RawShard>>,
    retry: Option<RawRetry>,
    max_cameras: Option<Spanned<usize>>,
    #[serde(default)]
    nest_accounts: Vec<nest::RawNestAccount>,
    #[serde(default)]
    resolvers: Vec<resolvers::RawResolver>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    min: Option<Spanned<String>>,
    max: Option<Spanned<String>>,
    degraded_after: Option<Spanned<u32>>,
}

/// Reads and validates a config file, then applies `CAMSYNC_*` overrides from `env`.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text =
        bounded_read::read_to_string(path, bounded_read::CONFIG_LIMIT).map_err(|source| {
            ConfigError::Read {
                path: path.to_owned(),
                source,
            }
        })?;
    parse(&text, path, env)
}

/// Validates config text as if read from `path`.
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let raw: RawConfig =
        camsync_formats::yaml::from_str(text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let invalid = |line: u64, key: &str, reason: String| ConfigError::Invalid {
        path: path.to_owned(),
        line,
        key: key.to_owned(),
        reason,
    };

    let targets = targets::parse(raw.targets, base, env, &invalid)?;
    let resync = match &raw.resync {
        None => DEFAULT_RESYNC,
        Some(s) => parse_duration(s).map_err(|r| invalid(s.referenced.line(), "resync", r))?,
    };
    let retry = parse_retry(raw.retry.as_ref())
        .map_err(|(line, key, reason)| invalid(line, key, reason))?;
    let restart_check = match &raw.restart_check {
        None => DEFAULT_RESTART_CHECK,
        Some(s) => {
            parse_duration(s).map_err(|r| invalid(s.referenced.line(), "restart_check", r))?
        }
    };
    let profiles = match raw.profiles {
        None => Profiles::builtin(),
        Some(specs) => {
            let line = specs.referenced.line();
            Profiles::with_specs(specs.value).map_err(|r| invalid(line, "profiles", r))?
        }
    };
    let health = health::parse(raw.health, &invalid)?;
    let api = api::parse(raw.api, base, env, &invalid)?;
    let shard = raw
        .shard
        .map(|s| {
            let file = path.display().to_string();
            shard::resolve(s.value, &file, s.referenced.line(), env)
                .map_err(|(line, key, reason)| invalid(line, key, reason))
        })
        .transpose()?;
    let source = source::parse(
        raw.source.value,
        raw.source.referenced.line(),
        base,
        env,
        &invalid,
    )?;
    let max_cameras = match raw.max_cameras {
        None => DEFAULT_MAX_CAMERAS,
        Some(n) if n.value == 0 => {
            return Err(invalid(
                n.referenced.line(),
                "max_cameras",
                "must be at least 1".into(),
            ));
        }
        Some(n) => n.value,
    };
    let mut config = Config {
        path: path.to_owned(),
        source,
        targets,
        state: base.join(raw.state.unwrap_or_else(|| "camsync-state.db".into())),
        resync,
        restart_check,
        allow_mass_delete: raw.allow_mass_delete,
        profiles,
        health,
        api,
        shard,
        retry,
        max_cameras,
        resolvers: Vec::new(),
        nest_accounts: nest::parse(raw.nest_accounts, base, env, &invalid)?,
    };
    let accounts: Vec<String> = config
        .nest_accounts
        .iter()
        .map(|a| a.name.clone())
        .collect();
    config.resolvers = resolvers::parse(raw.resolvers, &accounts, base, env, &invalid)?;
    apply_env(&mut config, env)?;
    Ok(config)
}

/// `CAMSYNC_SOURCE_FILE`, `CAMSYNC_STATE`, `CAMSYNC_RESYNC`, `CAMSYNC_ALLOW_MASS_DELETE`.
fn apply_env(config: &mut Config, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    if let Some(file) = env("CAMSYNC_SOURCE_FILE") {
        config.source = SourceConfig::File(file.into());
    }
    if let Some(state) = env("CAMSYNC_STATE") {
        config.state = state.into();
    }
    if let Some(resync) = env("CAMSYNC_RESYNC") {
        config.resync = humantime::parse_duration(&resync).map_err(|e| ConfigError::Env {
            var: "CAMSYNC_RESYNC",
            reason: format!("{} is not a duration like 30s or 5m ({e})", Echo(&resync)),
        })?;
    }
    if let Some(flag) = env("CAMSYNC_ALLOW_MASS_DELETE") {
        config.allow_mass_delete = match flag.as_str() {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" | "" => false,
            other => {
                return Err(ConfigError::Env {
                    var: "CAMSYNC_ALLOW_MASS_DELETE",
                    reason: format!("{} is not true or false", Echo(other)),
                });
            }
        };
    }
    Ok(())
}

/// Config `retry:`, or its defaults.
fn parse_retry(raw: Option<&RawRetry>) -> Result<RetryConfig, (u64, &'static str, String)> {
    let mut retry = RetryConfig::default();
    let Some(raw) = raw else {
        return Ok(retry);
    };
    if let Some(min) = &raw.min {
        retry.min = parse_duration(min).map_err(|r| (min.referenced.line(), "retry.min", r))?;
    }
    if let Some(max) = &raw.max {
        retry.max = parse_duration(max).map_err(|r| (max.referenced.line(), "retry.max", r))?;
    }
    if retry.max < retry.min || retry.min.is_zero() {
        let line = raw
            .max
            .as_ref()
            .or(raw.min.as_ref())
            .map_or(1, |s| s.referenced.line());
        return Err((
            line,
            "retry",
            format!(
                "`min` ({:?}) must be above zero and at most `max` ({:?})",
                retry.min, retry.max
            ),
        ));
    }
    if let Some(n) = &raw.degraded_after {
        if n.value == 0 {
            return Err((
                n.referenced.line(),
                "retry.degraded_after",
                "must be at least 1".into(),
            ));
        }
        retry.degraded_after = n.value;
    }
    Ok(retry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    const GOOD: &str = "\
source:
  file: cameras.yaml
targets:
  - name: go2rtc
    kind: go2rtc
    api: http://127.0.0.1:1984
    rtsp: rtsp://127.0.0.1:8554
state: camsync-state.db
resync: 30s
";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn err(text: &str) -> String {
        parse(text, Path::new("/etc/camsync/camsync.yaml"), &no_env)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn nest_accounts_and_resolvers_load_with_their_defaults_and_secrets() {
        let env = |name: &str| (name == "NEST_TOKEN").then(|| "1//refresh".to_owned());
        let text = format!(
            "{GOOD}nest_accounts:\n  - name: home\n    project_id: p-1\n    client_id: c.apps\n    \
             client_secret_env: NEST_TOKEN\n    refresh_token_env: NEST_TOKEN\n\
             resolvers:\n  - name: vendor\n    exec: [/bin/vendor, \"{{device}}\"]\n    max_per_minute: 5\n"
        );
        let c = parse(&text, Path::new("/etc/camsync/camsync.yaml"), &env).unwrap();
        let home = &c.nest_accounts[0];
        assert_eq!(home.refresh_token.expose(), "1//refresh");
        assert_eq!(
            (home.max_per_minute, home.renew_before, home.timeout),
            (10, Duration::from_secs(60), Duration::from_secs(10))
        );
        assert_eq!(
            home.sdm_url.as_str(),
            "https://smartdevicemanagement.googleapis.com/v1"
        );
        assert_eq!(
            home.device_name("abc").unwrap(),
            "enterprises/p-1/devices/abc"
        );
        assert_eq!(
            home.device_name("enterprises/p-1/devices/abc").unwrap(),
            "enterprises/p-1/devices/abc"
        );
        assert!(home.device_name("enterprises/other/devices/abc").is_err());
        let vendor = &c.resolvers[0];
        assert_eq!(vendor.max_per_minute, 5);
        assert!(matches!(&vendor.kind, ResolverKind::Exec { argv } if argv[1] == "{device}"));
    }

    #[test]
    fn a_bad_nest_account_or_resolver_is_refused_with_its_line_and_key() {
        let account = "nest_accounts:\n  - name: home\n    project_id: p\n    client_id: c\n";
        assert_eq!(
            err(&format!("{GOOD}{account}    client_secret_env: S\n")),
            "/etc/camsync/camsync.yaml:14: `nest_accounts.client_secret_env`: account \"home\": environment variable S is not set"
        );
        let both = "resolvers:\n  - name: r\n    exec: [a]\n    http: http://127.0.0.1/x\n";
        assert!(
            err(&format!("{GOOD}{both}"))
                .contains("`resolvers.exec`: resolver \"r\": give either `exec`"),
            "{}",
            err(&format!("{GOOD}{both}"))
        );
        let zero = "resolvers:\n  - name: r\n    exec: [a]\n    max_per_minute: 0\n";
        assert!(
            err(&format!("{GOOD}{zero}"))
                .contains("`resolvers.max_per_minute`: must be at least 1")
        );
        let env = |_: &str| Some("x".to_owned());
        let clash = format!(
            "{GOOD}{account}    client_secret_env: S\n    refresh_token_env: T\nresolvers:\n  - name: home\n    exec: [a]\n"
        );
        let clash = parse(&clash, Path::new("/c.yaml"), &env)
            .unwrap_err()
            .to_string();
        assert!(
            clash.contains("no other resolver or nest account has"),
            "{clash}"
        );
    }

    #[test]
    fn the_documented_shape_loads_with_paths_relative_to_the_file() {
        let c = parse(GOOD, Path::new("/etc/camsync/camsync.yaml"), &no_env).unwrap();
        assert_eq!(
            c.source,
            SourceConfig::File("/etc/camsync/cameras.yaml".into())
        );
        assert_eq!(c.state, PathBuf::from("/etc/camsync/camsync-state.db"));
        assert_eq!(c.resync, Duration::from_secs(30));
        assert_eq!(
            c.targets[0].api.as_ref().map(url::Url::as_str),
            Some("http://127.0.0.1:1984/")
        );
        assert!(!c.allow_mass_delete);
    }

    #[test]
    fn a_refused_server_address_is_shown_without_its_password() {
        for (key, value) in [
            ("api", "ftp://admin:Sekrit-41@192.0.2.1/"),
            ("api", "http://admin:Sekrit-41@[bad/"),
            ("rtsp", "http://admin:Sekrit-41@192.0.2.1/"),
        ] {
            let text = format!(
                "source:\n  file: c.yaml\ntargets:\n  - name: g\n    kind: go2rtc\n    api: http://127.0.0.1:1984\n    {key}: {value}\n"
            )
            .replacen("    api: http://127.0.0.1:1984\n    api:", "    api:", 1);
            let e = err(&text);
            assert!(e.contains(key) && !e.contains("Sekrit"), "{e}");
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err(&GOOD.replace("resync: 30s", "resync: 30s\nresink: 1m"));
        assert!(
            e.contains("/etc/camsync/camsync.yaml") && e.contains("resink"),
            "{e}"
        );
        assert!(e.contains("line 10"), "{e}");
    }

    #[test]
    fn bad_duration_names_line_and_key() {
        let e = err(&GOOD.replace("resync: 30s", "resync: soon"));
        assert!(e.contains("camsync.yaml:9: `resync`"), "{e}");
    }

    #[test]
    fn duplicate_target_names_are_refused_with_the_line() {
        let dup = GOOD.replace(
            "state:",
            "  - name: go2rtc\n    kind: go2rtc\n    api: http://127.0.0.1:1985\nstate:",
        );
        let e = err(&dup);
        assert!(
            e.contains("camsync.yaml:8: `targets.name`: duplicate"),
            "{e}"
        );
    }

    #[test]
    fn target_password_comes_from_the_environment() {
        let text = GOOD.replace(
            "    rtsp:",
            "    username: admin\n    password_env: G2R_PASS\n    rtsp:",
        );
        let e = err(&text);
        assert!(e.contains("G2R_PASS") && e.contains("not set"), "{e}");
        let env = |v: &str| (v == "G2R_PASS").then(|| "s3cret".to_string());
        let c = parse(&text, Path::new("c.yaml"), &env).unwrap();
        assert_eq!(
            c.targets[0].password.as_ref().map(Secret::expose),
            Some("s3cret")
        );
    }

    #[test]
    fn env_overrides_apply_and_are_checked() {
        let env = |v: &str| match v {
            "CAMSYNC_RESYNC" => Some("5m".to_string()),
            "CAMSYNC_ALLOW_MASS_DELETE" => Some("true".to_string()),
            _ => None,
        };
        let c = parse(GOOD, Path::new("c.yaml"), &env).unwrap();
        assert_eq!(c.resync, Duration::from_secs(300));
        assert!(c.allow_mass_delete);
        let bad = |v: &str| (v == "CAMSYNC_RESYNC").then(|| "later".to_string());
        let e = parse(GOOD, Path::new("c.yaml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CAMSYNC_RESYNC"), "{e}");
    }

    #[test]
    fn file_targets_need_a_path_and_api_targets_an_api() {
        let with_target = |target: &str| format!("source:\n  file: c.yaml\ntargets:\n{target}");
        let e = err(&with_target("  - name: f\n    kind: mediamtx-file\n"));
        assert!(e.contains("`path`") && e.contains("required"), "{e}");
        let e = err(&with_target("  - name: g\n    kind: go2rtc\n"));
        assert!(e.contains("`api` is required"), "{e}");
        let e = err(&with_target(
            "  - name: g\n    kind: go2rtc\n    api: http://a\n    path: x.yaml\n",
        ));
        assert!(e.contains("only for the file kinds"), "{e}");
        let c = parse(
            &with_target("  - name: f\n    kind: go2rtc-file\n    path: go2rtc.yaml\n    env_file: go2rtc.env\n"),
            Path::new("/etc/camsync/camsync.yaml"),
            &no_env,
        )
        .unwrap();
        assert_eq!(
            c.targets[0].path.as_deref(),
            Some(Path::new("/etc/camsync/go2rtc.yaml"))
        );
        assert_eq!(
            c.targets[0].env_file.as_deref(),
            Some(Path::new("/etc/camsync/go2rtc.env"))
        );
    }

    #[test]
    fn restarting_a_server_is_off_unless_enabled() {
        let c = parse(GOOD, Path::new("c.yaml"), &no_env).unwrap();
        assert_eq!(c.health.and_then(|h| h.restart_server), None);
        let on = format!("{GOOD}health:\n  restart_server: true\n");
        let c = parse(&on, Path::new("c.yaml"), &no_env).unwrap();
        assert_eq!(
            c.health.and_then(|h| h.restart_server),
            Some(DEFAULT_RESTART_SERVER_WINDOW)
        );
        let windowed = format!("{on}  restart_server_window: 6h\n");
        let c = parse(&windowed, Path::new("c.yaml"), &no_env).unwrap();
        assert_eq!(
            c.health.and_then(|h| h.restart_server),
            Some(Duration::from_secs(6 * 3600))
        );
    }

    #[test]
    fn the_api_listens_on_loopback_by_default_and_needs_a_token_elsewhere() {
        let c = parse(GOOD, Path::new("c.yaml"), &no_env).unwrap();
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:9180");
        assert!(c.api.token.is_none());
        let open = format!("{GOOD}api:\n  listen: 0.0.0.0:9180\n");
        let e = err(&open);
        assert!(
            e.contains("camsync.yaml:11: `api.listen`") && e.contains("token_env"),
            "{e}"
        );
        let env = |v: &str| match v {
            "API_TOKEN" => Some("t0ken".to_string()),
            "HOOK_KEY" => Some("k3y".to_string()),
            _ => None,
        };
        let with_token = format!(
            "{open}  token_env: API_TOKEN\n  webhook_secret_env: HOOK_KEY\n  webhook_window: 1m\n"
        );
        let c = parse(&with_token, Path::new("c.yaml"), &env).unwrap();
        assert_eq!(c.api.token.as_ref().map(Secret::expose), Some("t0ken"));
        assert_eq!(
            c.api.webhook_secret.as_ref().map(Secret::expose),
            Some("k3y")
        );
        assert_eq!(c.api.webhook_window, Duration::from_secs(60));
        let e = err(&format!("{GOOD}api:\n  listen: localhost\n"));
        assert!(
            e.contains("`api.listen`") && e.contains("127.0.0.1:9180"),
            "{e}"
        );
        let e = err(&format!("{GOOD}api:\n  token_env: NOPE\n"));
        assert!(e.contains("`api.token_env`") && e.contains("NOPE"), "{e}");
    }

    #[test]
    fn max_cameras_defaults_well_above_ten_thousand_and_must_be_positive() {
        let c = parse(GOOD, Path::new("c.yaml"), &no_env).unwrap();
        assert_eq!(c.max_cameras, DEFAULT_MAX_CAMERAS);
        const { assert!(DEFAULT_MAX_CAMERAS >= 50_000) };
        let c = parse(
            &format!("{GOOD}max_cameras: 12\n"),
            Path::new("c.yaml"),
            &no_env,
        )
        .unwrap();
        assert_eq!(c.max_cameras, 12);
        let e = err(&format!("{GOOD}max_cameras: 0\n"));
        assert!(
            e.contains("`max_cameras`") && e.contains("at least 1"),
            "{e}"
        );
    }

    #[test]
    fn api_connection_limits_have_defaults_and_can_be_set() {
        let c = parse(GOOD, Path::new("c.yaml"), &no_env).unwrap();
        assert_eq!(c.api.max_connections, api::DEFAULT_MAX_CONNECTIONS);
        assert_eq!(c.api.header_timeout, api::DEFAULT_HEADER_TIMEOUT);
        assert_eq!(c.api.max_event_streams, api::DEFAULT_MAX_EVENT_STREAMS);
        let set = format!(
            "{GOOD}api:\n  max_connections: 9\n  header_timeout: 2s\n  max_event_streams: 3\n"
        );
        let c = parse(&set, Path::new("c.yaml"), &no_env).unwrap();
        assert_eq!(c.api.max_connections, 9);
        assert_eq!(c.api.header_timeout, Duration::from_secs(2));
        assert_eq!(c.api.max_event_streams, 3);
        let e = err(&format!("{GOOD}api:\n  max_connections: 0\n"));
        assert!(e.contains("camsync.yaml:11: `api.max_connections`"), "{e}");
    }

    #[test]
    fn two_writers_for_one_server_are_refused_with_the_reason() {
        let with_targets = |targets: &str| format!("source:\n  file: c.yaml\ntargets:\n{targets}");
        let file_and_api = with_targets(
            "  - name: file\n    kind: mediamtx-file\n    path: mediamtx.yml\n    api: http://127.0.0.1:9997\n\
             \x20 - name: api\n    kind: mediamtx\n    api: http://127.0.0.1:9997\n",
        );
        let e = err(&file_and_api);
        assert!(
            e.contains("\"file\" and \"api\"") && e.contains("one source of truth"),
            "{e}"
        );
        let same_file = with_targets(
            "  - name: a\n    kind: go2rtc-file\n    path: g.yaml\n  - name: b\n    kind: go2rtc-file\n    path: g.yaml\n",
        );
        assert!(err(&same_file).contains("the same file"));
        // However it is spelled.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let spelled = |b: &str| {
            with_targets(&format!(
                "  - name: a\n    kind: go2rtc-file\n    path: g.yaml\n  - name: b\n    kind: go2rtc-file\n    path: {b}\n"
            ))
        };
        let config = dir.path().join("c.yaml");
        let absolute = format!("{}/sub/../g.yaml", dir.path().display());
        for b in ["./g.yaml", "sub/../g.yaml", absolute.as_str()] {
            let e = parse(&spelled(b), &config, &no_env)
                .unwrap_err()
                .to_string();
            assert!(e.contains("the same file"), "{b}: {e}");
        }
        // The same file by another name (a symlink) once it exists.
        std::fs::write(dir.path().join("g.yaml"), "streams: {}\n").unwrap();
        std::os::unix::fs::symlink("g.yaml", dir.path().join("link.yaml")).unwrap();
        let e = parse(&spelled("link.yaml"), &config, &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the same file"), "{e}");
        // An env file is written too.
        let env_clash = with_targets(
            "  - name: a\n    kind: go2rtc-file\n    path: g.yaml\n    env_file: go2rtc.env\n  - name: b\n    kind: go2rtc-file\n    path: h.yaml\n    env_file: ./go2rtc.env\n",
        );
        assert!(err(&env_clash).contains("the same file"));
        // A file target that only observes its server's API is fine on its own.
        let observe = with_targets(
            "  - name: file\n    kind: mediamtx-file\n    path: m.yml\n    api: http://127.0.0.1:9997\n",
        );
        assert!(parse(&observe, Path::new("c.yaml"), &no_env).is_ok());
    }
}

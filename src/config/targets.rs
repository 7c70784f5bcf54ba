//! The `targets:` section: each server camsync writes (its API or its YAML file), how to reach
//! it, and its write limits. Two targets never write one server or one file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::values::{
    ConfigError, Invalid, parse_duration, parse_http_url, parse_rtsp_url, resolve_secret,
};
use crate::echo::Echo;
use crate::secret::Secret;

/// A target's per-request timeout, unless its `timeout:` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum TargetKind {
    /// go2rtc over its HTTP API.
    #[serde(rename = "go2rtc")]
    Go2rtc,
    /// MediaMTX over its v3 control API.
    #[serde(rename = "mediamtx")]
    Mediamtx,
    /// go2rtc's YAML file (read at its next start).
    #[serde(rename = "go2rtc-file")]
    Go2rtcFile,
    /// MediaMTX's YAML file (reloaded on every change).
    #[serde(rename = "mediamtx-file")]
    MediamtxFile,
}

impl TargetKind {
    pub fn is_mediamtx(self) -> bool {
        matches!(self, TargetKind::Mediamtx | TargetKind::MediamtxFile)
    }

    pub fn is_file(self) -> bool {
        matches!(self, TargetKind::Go2rtcFile | TargetKind::MediamtxFile)
    }
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub name: String,
    pub kind: TargetKind,
    /// The server's HTTP API base URL: required for the API kinds; for the file kinds, the
    /// same server's API, used only to observe it.
    pub api: Option<url::Url>,
    /// The server's RTSP proxy, for probes.
    pub rtsp: Option<url::Url>,
    /// HTTP Basic credentials for the API (`username` with `password_env` or `password_file`).
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The file kinds: the server's YAML file.
    pub path: Option<PathBuf>,
    /// The file kinds: write camera passwords into the file (then kept mode 0600). MediaMTX
    /// cannot expand references, so a camera with a password needs this on `mediamtx-file`.
    pub inline_credentials: bool,
    /// `go2rtc-file`: where camsync keeps the values of the `${VAR}` references it writes
    /// (mode 0600), for the server's environment.
    pub env_file: Option<PathBuf>,
    /// Writes to the server in any minute; `None` (the default): no limit.
    pub max_writes_per_minute: Option<u32>,
    /// Work items at once (1; go2rtc: always 1).
    pub max_in_flight: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    name: Spanned<String>,
    kind: Spanned<TargetKind>,
    api: Option<Spanned<String>>,
    rtsp: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    #[serde(default)]
    inline_credentials: bool,
    env_file: Option<String>,
    username: Option<String>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    max_writes_per_minute: Option<Spanned<u32>>,
    max_in_flight: Option<Spanned<usize>>,
}

/// Every target of the config, checked one by one and against each other.
pub(super) fn parse(
    raw: Vec<RawTarget>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    invalid: &Invalid<'_>,
) -> Result<Vec<TargetConfig>, ConfigError> {
    let mut seen = BTreeSet::new();
    let mut targets = Vec::with_capacity(raw.len());
    for t in raw {
        let (line, name) = (t.name.referenced.line(), &t.name.value);
        if crate::stream_name::check_stream_name(name).is_err() || name.contains('/') {
            return Err(invalid(
                line,
                "targets.name",
                format!(
                    "{} is not a valid target name (letters, digits, `_`, `-`, `.`)",
                    Echo(name)
                ),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(invalid(
                line,
                "targets.name",
                format!("duplicate target name {name:?}; target names must be unique"),
            ));
        }
        targets.push(parse_one(t, base, env, invalid)?);
    }
    check_one_writer_per_server(&targets).map_err(|reason| invalid(1, "targets", reason))?;
    if targets.is_empty() {
        return Err(invalid(
            1,
            "targets",
            "at least one target is needed".into(),
        ));
    }
    Ok(targets)
}

/// One target's entry (its name already checked), checked on its own.
fn parse_one(
    t: RawTarget,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    invalid: &Invalid<'_>,
) -> Result<TargetConfig, ConfigError> {
    let (line, name) = (t.name.referenced.line(), t.name.value);
    let kind = t.kind.value;
    let api = t
        .api
        .as_ref()
        .map(|s| parse_http_url(s).map_err(|r| invalid(s.referenced.line(), "api", r)))
        .transpose()?;
    let path = t.path.as_ref().map(|p| base.join(&p.value));
    match (kind.is_file(), &api, &path) {
        (false, None, _) => {
            return Err(invalid(
                line,
                "api",
                format!("target {name:?}: `api` is required for kind {kind:?}"),
            ));
        }
        (false, _, Some(_)) => {
            return Err(invalid(
                line,
                "path",
                format!("target {name:?}: `path` is only for the file kinds"),
            ));
        }
        (true, _, None) => {
            return Err(invalid(
                line,
                "path",
                format!("target {name:?}: `path` (the server's YAML file) is required"),
            ));
        }
        _ => {}
    }
    if t.env_file.is_some() && kind != TargetKind::Go2rtcFile {
        return Err(invalid(
            line,
            "env_file",
            format!("target {name:?}: `env_file` is only for go2rtc-file"),
        ));
    }
    let rtsp = t
        .rtsp
        .as_ref()
        .map(|s| parse_rtsp_url(s).map_err(|r| invalid(s.referenced.line(), "rtsp", r)))
        .transpose()?;
    let password = resolve_secret(&t.password_env, &t.password_file, "password", base, env)
        .map_err(|(line, key, reason)| invalid(line, &key, format!("target {name:?}: {reason}")))?;
    if password.is_some() != t.username.is_some() {
        return Err(invalid(
            line,
            "username",
            format!(
                "target {name:?}: set `username` together with `password_env` or `password_file`, or none of them"
            ),
        ));
    }
    let timeout = match &t.timeout {
        None => DEFAULT_TIMEOUT,
        Some(s) => parse_duration(s).map_err(|r| invalid(s.referenced.line(), "timeout", r))?,
    };
    if let Some(n) = t.max_writes_per_minute.as_ref().filter(|n| n.value == 0) {
        return Err(invalid(
            n.referenced.line(),
            "max_writes_per_minute",
            format!("target {name:?}: must be at least 1 (leave it out for no limit)"),
        ));
    }
    let max_in_flight = match &t.max_in_flight {
        None => 1,
        Some(n) if n.value == 0 => {
            return Err(invalid(
                n.referenced.line(),
                "max_in_flight",
                format!("target {name:?}: must be at least 1"),
            ));
        }
        Some(n) if n.value > 1 && !kind.is_mediamtx() => {
            return Err(invalid(
                n.referenced.line(),
                "max_in_flight",
                format!(
                    "target {name:?}: go2rtc takes one call at a time (a list that overlaps a write crashes it); remove the setting"
                ),
            ));
        }
        Some(n) => n.value,
    };
    Ok(TargetConfig {
        name,
        kind,
        api,
        rtsp,
        username: t.username,
        password,
        timeout,
        path,
        inline_credentials: t.inline_credentials,
        env_file: t.env_file.map(|f| base.join(f)),
        max_writes_per_minute: t.max_writes_per_minute.map(|n| n.value),
        max_in_flight,
    })
}

/// Refuses two targets that would fight over one server: two that write its API, two that
/// write one file, or a file target beside an API target of the same server (a MediaMTX reload
/// discards API-made paths; go2rtc's API rewrites the file it was started with). A file target
/// may name the server's `api:` to observe it; no other target may write that API.
fn check_one_writer_per_server(targets: &[TargetConfig]) -> Result<(), String> {
    for (i, a) in targets.iter().enumerate() {
        for b in &targets[i + 1..] {
            let same_api = a.api.is_some() && a.api == b.api;
            let written = |t: &'_ TargetConfig| {
                t.path
                    .iter()
                    .chain(&t.env_file)
                    .map(|p| p.to_path_buf())
                    .collect::<Vec<_>>()
            };
            let shared = written(a)
                .into_iter()
                .find(|p| written(b).iter().any(|q| same_file(p, q)));
            if let Some(file) = shared {
                return Err(format!(
                    "targets {:?} and {:?} both write the same file {}; give each target its own file",
                    a.name,
                    b.name,
                    file.display()
                ));
            }
            if same_api {
                return Err(format!(
                    "targets {:?} and {:?} both write the same server API; keep one source of truth per server: \
                     either its API (kind go2rtc/mediamtx) or its file (kind go2rtc-file/mediamtx-file, \
                     with `api:` only to observe it)",
                    a.name, b.name
                ));
            }
        }
    }
    Ok(())
}

/// Whether two paths name one file however they are spelled (`g.yaml`, `./g.yaml`, `x/../g.yaml`,
/// a symlink, a hard link): the same device and inode when both exist, else the same place once
/// the directories are resolved.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return (ma.dev(), ma.ino()) == (mb.dev(), mb.ino());
    }
    resolved(a) == resolved(b)
}

/// `path` with its directory resolved (symlinks, `..`) where it exists, else lexically.
fn resolved(path: &Path) -> PathBuf {
    let lexical: PathBuf = path.components().fold(PathBuf::new(), |mut out, c| {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
        out
    });
    match (lexical.parent(), lexical.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .map(|d| d.join(name))
        .unwrap_or(lexical),
        _ => lexical,
    }
}

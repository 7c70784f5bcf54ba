//! The `health:` section: the health monitor's pace, its limits and the opt-in escalation.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::values::{ConfigError, Invalid, parse_duration};

pub const DEFAULT_RESTART_SERVER_WINDOW: Duration = Duration::from_secs(3600);

/// Config `health:` (when enabled); the monitor's settings are made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Time between rounds over one target.
    pub interval: Duration,
    /// How often an idle, seemingly healthy stream is probed through the proxy.
    pub idle_probe: Duration,
    /// One proxy probe's limit: longer than the server's own dial.
    pub probe_timeout: Duration,
    /// A new or re-registered stream is not judged for this long.
    pub grace: Duration,
    /// How often the cameras of `camera-offline` streams are checked between rounds.
    pub camera_watch: Duration,
    /// Opt-in: restart a whole go2rtc at most once per this window; `None`: never.
    pub restart_server: Option<Duration>,
}

/// A proxy probe must wait longer than the server's own dial: go2rtc holds a DESCRIBE up to
/// ~10 s while it dials the camera, MediaMTX an on-demand path up to its start timeout (10 s by
/// default) plus ~2 s after bad credentials.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(15);

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_secs(2),
            idle_probe: Duration::from_secs(300),
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
            grace: Duration::from_secs(10),
            camera_watch: Duration::from_millis(250),
            restart_server: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    #[serde(default = "default_true")]
    enabled: bool,
    interval: Option<Spanned<String>>,
    idle_probe: Option<Spanned<String>>,
    probe_timeout: Option<Spanned<String>>,
    grace: Option<Spanned<String>>,
    camera_watch: Option<Spanned<String>>,
    #[serde(default)]
    restart_server: bool,
    restart_server_window: Option<Spanned<String>>,
}

fn default_true() -> bool {
    true
}

/// The monitor's settings; `None` when `health.enabled` is false.
pub(super) fn parse(
    raw: Option<RawHealth>,
    invalid: &Invalid<'_>,
) -> Result<Option<HealthConfig>, ConfigError> {
    let Some(h) = raw else {
        return Ok(Some(HealthConfig::default()));
    };
    if !h.enabled {
        return Ok(None);
    }
    let mut settings = HealthConfig::default();
    let set = |field: &Option<Spanned<String>>, key: &str, into: &mut Duration| {
        if let Some(s) = field {
            *into = parse_duration(s).map_err(|r| invalid(s.referenced.line(), key, r))?;
        }
        Ok::<(), ConfigError>(())
    };
    set(&h.interval, "health.interval", &mut settings.interval)?;
    set(&h.idle_probe, "health.idle_probe", &mut settings.idle_probe)?;
    set(
        &h.probe_timeout,
        "health.probe_timeout",
        &mut settings.probe_timeout,
    )?;
    set(&h.grace, "health.grace", &mut settings.grace)?;
    set(
        &h.camera_watch,
        "health.camera_watch",
        &mut settings.camera_watch,
    )?;
    if h.restart_server {
        let mut window = DEFAULT_RESTART_SERVER_WINDOW;
        set(
            &h.restart_server_window,
            "health.restart_server_window",
            &mut window,
        )?;
        settings.restart_server = Some(window);
    }
    Ok(Some(settings))
}

//! Lifecycle profiles: how a stream lives on each server, by use case.
//!
//! Three are built in, each overridable field by field and extendable by name in `profiles:`:
//! - `recording`: always connected, never auto-closed; MediaMTX records it; go2rtc preloads it.
//! - `viewing`: on demand, closed 5 minutes after the last viewer.
//! - `snapshot`: on demand, quick to open and close.
//!
//! MediaMTX fields are checked against the schema of MediaMTX's own path defaults
//! (`mediamtx-pathdefaults.json`, captured from the real server): an unknown name or a value of
//! the wrong type is rejected here, naming the profile or camera, before MediaMTX would answer
//! 400. YAML's `yes`/`no` are accepted for booleans, as MediaMTX's own file allows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value, json};

pub type MediamtxFields = Map<String, Value>;

/// What a profile asks of each server.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// go2rtc keeps a permanent consumer on the stream (`PUT /api/preload`).
    pub preload: bool,
    /// MediaMTX path fields (never `source` or `name`: camsync sets those).
    pub mediamtx: MediamtxFields,
}

/// A profile as written under `profiles:` in camsync.yaml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Start from this profile (default: the built-in of the same name, else nothing).
    pub extends: Option<String>,
    pub go2rtc: Option<Go2rtcProfileSpec>,
    pub mediamtx: Option<MediamtxFields>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Go2rtcProfileSpec {
    pub preload: Option<bool>,
}

/// Every profile of a deployment, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Profiles(BTreeMap<String, Profile>);

/// MediaMTX's path defaults: the set of known fields and the JSON type of each.
static SCHEMA: LazyLock<MediamtxFields> = LazyLock::new(|| {
    serde_json::from_str(include_str!("mediamtx-pathdefaults.json")).unwrap_or_default()
});

/// Fields camsync sets itself.
const MANAGED_FIELDS: [&str; 2] = ["name", "source"];

/// Every MediaMTX path camsync writes uses TCP unless told otherwise: with `automatic`,
/// MediaMTX opens UDP sockets on every interface.
pub const DEFAULT_RTSP_TRANSPORT: &str = "tcp";

impl Profiles {
    pub fn builtin() -> Profiles {
        let profile = |preload, fields: Value| Profile {
            preload,
            mediamtx: fields.as_object().cloned().unwrap_or_default(),
        };
        Profiles(BTreeMap::from([
            (
                "recording".to_owned(),
                profile(
                    true,
                    json!({
                        "sourceOnDemand": false,
                        "record": true,
                        "recordPath": "./recordings/%path/%Y-%m-%d_%H-%M-%S-%f",
                        "recordFormat": "fmp4",
                        "recordSegmentDuration": "30m",
                        "recordDeleteAfter": "1d",
                    }),
                ),
            ),
            (
                "viewing".to_owned(),
                profile(
                    false,
                    json!({
                        "sourceOnDemand": true,
                        "sourceOnDemandStartTimeout": "10s",
                        "sourceOnDemandCloseAfter": "300s",
                    }),
                ),
            ),
            (
                "snapshot".to_owned(),
                profile(
                    false,
                    json!({
                        "sourceOnDemand": true,
                        "sourceOnDemandStartTimeout": "5s",
                        "sourceOnDemandCloseAfter": "60s",
                    }),
                ),
            ),
        ]))
    }

    /// The built-ins with `specs` layered on top. Errors name the profile.
    pub fn with_specs(specs: BTreeMap<String, ProfileSpec>) -> Result<Profiles, String> {
        let builtin = Profiles::builtin();
        let mut profiles = builtin.clone();
        for (name, spec) in specs {
            if crate::stream_name::check_stream_name(&name).is_err() || name.contains('/') {
                return Err(format!(
                    "profile {}: use letters, digits, `_`, `-` or `.`",
                    crate::echo::Echo(&name)
                ));
            }
            let base_name = spec.extends.as_deref().unwrap_or(&name);
            let mut profile = match builtin.0.get(base_name) {
                Some(base) => base.clone(),
                None if spec.extends.is_some() => {
                    return Err(format!(
                        "profile {name:?}: `extends: {base_name}` names no built-in profile ({})",
                        builtin.names().into_iter().collect::<Vec<_>>().join(", ")
                    ));
                }
                None => Profile {
                    preload: false,
                    mediamtx: Map::new(),
                },
            };
            if let Some(preload) = spec.go2rtc.and_then(|g| g.preload) {
                profile.preload = preload;
            }
            if let Some(fields) = spec.mediamtx {
                let fields =
                    check_mediamtx_fields(fields).map_err(|e| format!("profile {name:?}: {e}"))?;
                profile.mediamtx.extend(fields);
            }
            profiles.0.insert(name, profile);
        }
        Ok(profiles)
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.0.keys().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.0.get(name)
    }
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles::builtin()
    }
}

/// Checks raw MediaMTX path fields against MediaMTX's schema and normalizes YAML booleans.
pub fn check_mediamtx_fields(fields: MediamtxFields) -> Result<MediamtxFields, String> {
    let mut checked = Map::new();
    for (key, value) in fields {
        if MANAGED_FIELDS.contains(&key.as_str()) {
            return Err(format!(
                "mediamtx field `{key}` is set by camsync; remove it"
            ));
        }
        let Some(default) = SCHEMA.get(&key) else {
            return Err(format!(
                "unknown MediaMTX path field `{key}` (MediaMTX would answer `json: unknown field`); \
                 see MediaMTX's path settings for the valid names"
            ));
        };
        let value = match (default, value) {
            (Value::Bool(_), Value::String(s)) if matches!(s.as_str(), "yes" | "true") => {
                Value::Bool(true)
            }
            (Value::Bool(_), Value::String(s)) if matches!(s.as_str(), "no" | "false") => {
                Value::Bool(false)
            }
            (default, value) if same_type(default, &value) => value,
            (default, _) => {
                return Err(format!(
                    "mediamtx field `{key}` must be {}",
                    type_name(default)
                ));
            }
        };
        checked.insert(key, value);
    }
    Ok(checked)
}

fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
        Value::Null => "null",
    }
}

/// Whether MediaMTX's schema defines `field` as a duration (it answers them as Go durations,
/// `30m` → `30m0s`, so they must be compared as durations, not as text).
pub fn is_duration_field(field: &str) -> bool {
    SCHEMA.get(field).and_then(Value::as_str).is_some_and(|d| {
        humantime::parse_duration(d).is_ok() && d.ends_with(|c: char| c.is_ascii_alphabetic())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_loaded() {
        assert!(SCHEMA.len() > 50, "mediamtx-pathdefaults.json must parse");
        assert!(is_duration_field("recordSegmentDuration"));
        assert!(is_duration_field("sourceOnDemandCloseAfter"));
        assert!(!is_duration_field("recordPath"));
        assert!(!is_duration_field("rtspTransport"));
    }

    #[test]
    fn builtins_have_the_documented_lifecycle() {
        let p = Profiles::builtin();
        let rec = p.get("recording").unwrap();
        assert!(rec.preload);
        assert_eq!(rec.mediamtx["sourceOnDemand"], false);
        assert_eq!(rec.mediamtx["record"], true);
        assert_eq!(rec.mediamtx["recordSegmentDuration"], "30m");
        let view = p.get("viewing").unwrap();
        assert!(!view.preload);
        assert_eq!(view.mediamtx["sourceOnDemandCloseAfter"], "300s");
        assert_eq!(
            p.get("snapshot").unwrap().mediamtx["sourceOnDemandStartTimeout"],
            "5s"
        );
        for profile in p.0.values() {
            check_mediamtx_fields(profile.mediamtx.clone()).unwrap();
        }
    }

    #[test]
    fn specs_override_and_extend_by_name() {
        let specs: BTreeMap<String, ProfileSpec> = camsync_formats::yaml::from_str(
            "recording:\n  mediamtx:\n    recordDeleteAfter: 7d\n    record: yes\nlobby:\n  extends: viewing\n  go2rtc:\n    preload: true\n",
        )
        .unwrap();
        let p = Profiles::with_specs(specs).unwrap();
        assert_eq!(
            p.get("recording").unwrap().mediamtx["recordDeleteAfter"],
            "7d"
        );
        assert_eq!(p.get("recording").unwrap().mediamtx["record"], true);
        let lobby = p.get("lobby").unwrap();
        assert!(lobby.preload);
        assert_eq!(lobby.mediamtx["sourceOnDemand"], true);
    }

    #[test]
    fn bad_fields_are_rejected_by_name() {
        let bad = |fields: Value| {
            check_mediamtx_fields(fields.as_object().cloned().unwrap()).unwrap_err()
        };
        assert!(bad(json!({"recordPaht": "x"})).contains("`recordPaht`"));
        assert!(bad(json!({"source": "rtsp://x"})).contains("set by camsync"));
        assert!(bad(json!({"record": "maybe"})).contains("boolean"));
        assert!(bad(json!({"maxReaders": "ten"})).contains("number"));
        let unknown_base = ProfileSpec {
            extends: Some("nope".into()),
            ..ProfileSpec::default()
        };
        let e = Profiles::with_specs([("x".to_string(), unknown_base)].into()).unwrap_err();
        assert!(e.contains("\"x\"") && e.contains("nope"), "{e}");
    }
}

//! Lifecycle profiles: how a stream lives on each server, by use case.
//!
//! Three are built in, each overridable field by field and extendable by name in `profiles:`:
//! - `recording`: always connected, never auto-closed; MediaMTX records it; go2rtc preloads it.
//! - `viewing`: on demand, closed 5 minutes after the last viewer.
//! - `snapshot`: on demand, quick to open and close.
//!
//! The per-server fields are checked by each server's rules (MediaMTX's path fields by
//! [`crate::target::mediamtx::rules`]), naming the profile.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::target::mediamtx::rules::{self as mediamtx, MediamtxFields};

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
                    mediamtx::check_fields(fields).map_err(|e| format!("profile {name:?}: {e}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
            mediamtx::check_fields(profile.mediamtx.clone()).unwrap();
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
    fn an_unknown_base_profile_is_rejected_by_name() {
        let unknown_base = ProfileSpec {
            extends: Some("nope".into()),
            ..ProfileSpec::default()
        };
        let e = Profiles::with_specs([("x".to_string(), unknown_base)].into()).unwrap_err();
        assert!(e.contains("\"x\"") && e.contains("nope"), "{e}");
    }
}

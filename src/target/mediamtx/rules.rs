//! What MediaMTX accepts of a camera, checked when the camera (or a profile) is validated,
//! before anything is written: the source schemes it can pull, and its path fields, checked
//! against the schema of its own path defaults (`pathdefaults.json`, captured from the real
//! server): an unknown name or a value of the wrong type is rejected, naming the field, before
//! MediaMTX would answer 400. YAML's `yes`/`no` are accepted for booleans, as MediaMTX's own
//! file allows. A leaf: the camera model and the profiles read it; it reads nothing of camsync.

use std::sync::LazyLock;

use serde_json::{Map, Value};

/// Raw MediaMTX path fields, as a profile or a camera gives them.
pub type MediamtxFields = Map<String, Value>;

/// Source schemes MediaMTX can pull from.
const SCHEMES: [&str; 10] = [
    "rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "srt", "whep", "wheps",
];

/// Whether MediaMTX can pull a source of this scheme.
pub fn can_pull(scheme: &str) -> bool {
    SCHEMES.contains(&scheme)
}

/// MediaMTX's path defaults: the set of known fields and the JSON type of each.
static SCHEMA: LazyLock<MediamtxFields> =
    LazyLock::new(|| serde_json::from_str(include_str!("pathdefaults.json")).unwrap_or_default());

/// Fields camsync sets itself.
const MANAGED_FIELDS: [&str; 2] = ["name", "source"];

/// Every MediaMTX path camsync writes uses TCP unless told otherwise: with `automatic`,
/// MediaMTX opens UDP sockets on every interface.
pub const DEFAULT_RTSP_TRANSPORT: &str = "tcp";

/// A camera's path fields: `rtspTransport: tcp`, then its profile's, then its own (checked).
pub fn path_fields(
    profile: &MediamtxFields,
    own: Option<MediamtxFields>,
) -> Result<MediamtxFields, String> {
    let mut fields = MediamtxFields::new();
    fields.insert("rtspTransport".into(), DEFAULT_RTSP_TRANSPORT.into());
    fields.extend(profile.clone());
    if let Some(own) = own {
        fields.extend(check_fields(own)?);
    }
    Ok(fields)
}

/// Checks raw MediaMTX path fields against MediaMTX's schema and normalizes YAML booleans.
pub fn check_fields(fields: MediamtxFields) -> Result<MediamtxFields, String> {
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
    use serde_json::json;

    use super::*;

    #[test]
    fn the_schema_is_loaded() {
        assert!(SCHEMA.len() > 50, "pathdefaults.json must parse");
        assert!(is_duration_field("recordSegmentDuration"));
        assert!(is_duration_field("sourceOnDemandCloseAfter"));
        assert!(!is_duration_field("recordPath"));
        assert!(!is_duration_field("rtspTransport"));
    }

    #[test]
    fn bad_fields_are_rejected_by_name() {
        let bad = |fields: Value| check_fields(fields.as_object().cloned().unwrap()).unwrap_err();
        assert!(bad(json!({"recordPaht": "x"})).contains("`recordPaht`"));
        assert!(bad(json!({"source": "rtsp://x"})).contains("set by camsync"));
        assert!(bad(json!({"record": "maybe"})).contains("boolean"));
        assert!(bad(json!({"maxReaders": "ten"})).contains("number"));
        assert_eq!(
            check_fields(json!({"record": "yes"}).as_object().cloned().unwrap()).unwrap()["record"],
            true
        );
    }
}

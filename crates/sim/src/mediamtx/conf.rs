//! MediaMTX's path configuration as its control API handles it (v1.16–v1.20): the fields and
//! defaults of `GET /v3/config/pathdefaults/get`, request bodies decoded with Go's rules and
//! error texts (`conf.OptionalPath` through `jsonwrapper.Decode`), the checks of
//! `conf.Path.validate` that concern the sources camsync configures, and the Go formats of
//! durations and sizes.
//!
//! Invariant: a [`PathConf`] is always complete and valid — every field of the schema, each
//! normalised the way MediaMTX answers it (durations as Go prints them, `50MB` as `50M`), and
//! `name` equal to the path it configures. Pure: no I/O, no clock.
//!
//! Not modelled: deprecated fields (`sourceProtocol`, `fallback`, `publishUser`, …) are unknown
//! fields here; `~regexp` names are accepted without compiling the expression; `alwaysAvailableFile`
//! is not opened; checks that need the global configuration (`playback`, rpiCamera IDs) are skipped.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value, json};

use super::goformat::{NANOS_PER_DAY, format_duration, format_size, parse_duration, parse_size};

/// Every path field with its default, in MediaMTX's order (v1.16.2's path defaults).
const DEFAULTS_JSON: &str = r#"{
    "name": "",
    "source": "publisher",
    "sourceFingerprint": "",
    "sourceOnDemand": false,
    "sourceOnDemandStartTimeout": "10s",
    "sourceOnDemandCloseAfter": "10s",
    "maxReaders": 0,
    "srtReadPassphrase": "",
    "useAbsoluteTimestamp": false,
    "alwaysAvailable": false,
    "alwaysAvailableFile": "",
    "alwaysAvailableTracks": [{"codec": "H264", "sampleRate": 0, "channelCount": 0, "muLaw": false}],
    "record": false,
    "recordPath": "./recordings/%path/%Y-%m-%d_%H-%M-%S-%f",
    "recordFormat": "fmp4",
    "recordPartDuration": "1s",
    "recordMaxPartSize": "50M",
    "recordSegmentDuration": "1h0m0s",
    "recordDeleteAfter": "1d",
    "overridePublisher": true,
    "srtPublishPassphrase": "",
    "rtspTransport": "automatic",
    "rtspAnyPort": false,
    "rtspRangeType": "",
    "rtspRangeStart": "",
    "rtspUDPSourcePortRange": [10000, 65535],
    "rtpSDP": "",
    "whepBearerToken": "",
    "whepSTUNGatherTimeout": "5s",
    "whepHandshakeTimeout": "10s",
    "whepTrackGatherTimeout": "2s",
    "sourceRedirect": "",
    "rpiCameraCamID": 0,
    "rpiCameraSecondary": false,
    "rpiCameraWidth": 1920,
    "rpiCameraHeight": 1080,
    "rpiCameraHFlip": false,
    "rpiCameraVFlip": false,
    "rpiCameraBrightness": 0,
    "rpiCameraContrast": 1,
    "rpiCameraSaturation": 1,
    "rpiCameraSharpness": 1,
    "rpiCameraExposure": "normal",
    "rpiCameraAWB": "auto",
    "rpiCameraAWBGains": [0, 0],
    "rpiCameraDenoise": "off",
    "rpiCameraShutter": 0,
    "rpiCameraMetering": "centre",
    "rpiCameraGain": 0,
    "rpiCameraEV": 0,
    "rpiCameraROI": "",
    "rpiCameraHDR": false,
    "rpiCameraTuningFile": "",
    "rpiCameraMode": "",
    "rpiCameraFPS": 30,
    "rpiCameraAfMode": "continuous",
    "rpiCameraAfRange": "normal",
    "rpiCameraAfSpeed": "normal",
    "rpiCameraLensPosition": 0,
    "rpiCameraAfWindow": "",
    "rpiCameraFlickerPeriod": 0,
    "rpiCameraTextOverlayEnable": false,
    "rpiCameraTextOverlay": "%Y-%m-%d %H:%M:%S - MediaMTX",
    "rpiCameraCodec": "auto",
    "rpiCameraIDRPeriod": 60,
    "rpiCameraBitrate": 5000000,
    "rpiCameraHardwareH264Profile": "main",
    "rpiCameraHardwareH264Level": "4.1",
    "rpiCameraSoftwareH264Profile": "baseline",
    "rpiCameraSoftwareH264Level": "4.1",
    "rpiCameraMJPEGQuality": 60,
    "runOnInit": "",
    "runOnInitRestart": false,
    "runOnDemand": "",
    "runOnDemandRestart": false,
    "runOnDemandStartTimeout": "10s",
    "runOnDemandCloseAfter": "10s",
    "runOnUnDemand": "",
    "runOnReady": "",
    "runOnReadyRestart": false,
    "runOnNotReady": "",
    "runOnRead": "",
    "runOnReadRestart": false,
    "runOnUnread": "",
    "runOnRecordSegmentCreate": "",
    "runOnRecordSegmentComplete": ""
}"#;

/// Fields holding a duration string.
const DURATIONS: &[&str] = &[
    "sourceOnDemandStartTimeout",
    "sourceOnDemandCloseAfter",
    "recordPartDuration",
    "recordSegmentDuration",
    "recordDeleteAfter",
    "whepSTUNGatherTimeout",
    "whepHandshakeTimeout",
    "whepTrackGatherTimeout",
    "runOnDemandStartTimeout",
    "runOnDemandCloseAfter",
];

/// Numeric fields that are Go `float64`s (the other numbers are `uint`s, but `maxReaders`).
const FLOATS: &[&str] = &[
    "rpiCameraBrightness",
    "rpiCameraContrast",
    "rpiCameraSaturation",
    "rpiCameraSharpness",
    "rpiCameraGain",
    "rpiCameraEV",
    "rpiCameraFPS",
    "rpiCameraLensPosition",
];

/// Fields a running path takes without being closed and recreated (v1.20's
/// `pathConfCanBeUpdated`): changing only these keeps the path's readers.
const HOT_RELOADABLE: &[&str] = &[
    "record",
    "recordPath",
    "recordFormat",
    "recordPartDuration",
    "recordMaxPartSize",
    "recordSegmentDuration",
    "recordDeleteAfter",
    "rpiCameraBrightness",
    "rpiCameraContrast",
    "rpiCameraSaturation",
    "rpiCameraSharpness",
    "rpiCameraExposure",
    "rpiCameraFlickerPeriod",
    "rpiCameraAWB",
    "rpiCameraAWBGains",
    "rpiCameraDenoise",
    "rpiCameraShutter",
    "rpiCameraMetering",
    "rpiCameraGain",
    "rpiCameraEV",
    "rpiCameraFPS",
    "rpiCameraIDRPeriod",
    "rpiCameraBitrate",
];

/// The Go type behind a field, which decides what its JSON may be.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Str,
    Bool,
    Int,
    Uint,
    Float,
    Duration,
    Size,
    Transport,
    RecordFormat,
    RangeType,
    Tracks,
    UintList,
    FloatList,
}

struct Field {
    name: String,
    kind: Kind,
    default: Value,
}

static FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
    let OrderedObject(entries) =
        serde_json::from_str(DEFAULTS_JSON).expect("the built-in path defaults are a JSON object");
    entries
        .into_iter()
        .map(|(name, default)| Field {
            kind: kind_of(&name, &default),
            name,
            default,
        })
        .collect()
});

fn kind_of(name: &str, default: &Value) -> Kind {
    match name {
        "rtspTransport" => Kind::Transport,
        "recordFormat" => Kind::RecordFormat,
        "rtspRangeType" => Kind::RangeType,
        "recordMaxPartSize" => Kind::Size,
        "maxReaders" => Kind::Int,
        "alwaysAvailableTracks" => Kind::Tracks,
        "rtspUDPSourcePortRange" => Kind::UintList,
        "rpiCameraAWBGains" => Kind::FloatList,
        _ if DURATIONS.contains(&name) => Kind::Duration,
        _ if FLOATS.contains(&name) => Kind::Float,
        _ => match default {
            Value::Bool(_) => Kind::Bool,
            Value::Number(_) => Kind::Uint,
            _ => Kind::Str,
        },
    }
}

/// The schema position of a JSON key; like Go, an exact match first, then any letter case.
fn field_index(key: &str) -> Option<usize> {
    FIELDS
        .iter()
        .position(|f| f.name == key)
        .or_else(|| FIELDS.iter().position(|f| f.name.eq_ignore_ascii_case(key)))
}

/// A JSON object with its entries in document order, duplicates included.
pub(super) struct OrderedObject(pub Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = OrderedObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(OrderedObject(entries))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// How Go's decoder treats a bad field: a type mismatch or unknown field is remembered and
/// decoding goes on (the first one is reported); an error from a field type's own
/// `UnmarshalJSON` (durations, enums, sizes) stops decoding at once and wins.
enum FieldError {
    Saved(String),
    Fatal(String),
}

/// What Go calls a JSON value in `cannot unmarshal X into …`; numbers aimed at integer fields
/// carry their literal.
fn go_value(value: &Value, integer_target: bool) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) if integer_target => format!("number {n}"),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

fn mismatch(field: &str, value: &Value, go_type: &str) -> FieldError {
    let integer = matches!(go_type, "int" | "uint");
    FieldError::Saved(format!(
        "json: cannot unmarshal {} into Go struct field .{field} of type {go_type}",
        go_value(value, integer)
    ))
}

/// Go prints a whole float64 without a fraction.
fn float_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        Value::from(f)
    }
}

impl Kind {
    /// The normalised value of `field` set to `value` (never `null`: a `null` leaves a field
    /// alone, as Go leaves its pointer nil).
    fn decode(self, field: &str, value: &Value) -> Result<Value, FieldError> {
        // Types with their own UnmarshalJSON first decode into a plain Go string.
        let text = |go_type: &str| {
            value.as_str().ok_or_else(|| {
                FieldError::Fatal(format!(
                    "json: cannot unmarshal {} into Go value of type {go_type}",
                    go_value(value, false)
                ))
            })
        };
        let one_of = |go_type: &str, allowed: &[&str], error: &dyn Fn(&str) -> String| {
            let s = text(go_type)?;
            if allowed.contains(&s) {
                Ok(Value::from(s))
            } else {
                Err(FieldError::Fatal(error(s)))
            }
        };
        match self {
            Kind::Str => value
                .is_string()
                .then(|| value.clone())
                .ok_or_else(|| mismatch(field, value, "string")),
            Kind::Bool => value
                .is_boolean()
                .then(|| value.clone())
                .ok_or_else(|| mismatch(field, value, "bool")),
            Kind::Int => value
                .as_i64()
                .map(Value::from)
                .ok_or_else(|| mismatch(field, value, "int")),
            Kind::Uint => value
                .as_u64()
                .map(Value::from)
                .ok_or_else(|| mismatch(field, value, "uint")),
            Kind::Float => value
                .as_f64()
                .map(float_value)
                .ok_or_else(|| mismatch(field, value, "float64")),
            Kind::Duration => parse_duration(text("string")?)
                .map(|nanos| Value::from(format_duration(nanos)))
                .map_err(FieldError::Fatal),
            Kind::Size => parse_size(text("string")?)
                .map(|bytes| Value::from(format_size(bytes)))
                .map_err(FieldError::Fatal),
            Kind::Transport => one_of("string", &["automatic", "udp", "multicast", "tcp"], &|s| {
                format!("invalid protocol '{s}'")
            }),
            Kind::RecordFormat => one_of("conf.alias", &["fmp4", "mpegts"], &|s| {
                format!("invalid record format '{s}'")
            }),
            Kind::RangeType => one_of("string", &["", "clock", "npt", "smpte"], &|s| {
                format!("invalid rtsp range type: '{s}'")
            }),
            Kind::Tracks => decode_tracks(field, value),
            Kind::UintList => decode_list(field, value, Kind::Uint, "[]uint"),
            Kind::FloatList => decode_list(field, value, Kind::Float, "[]float64"),
        }
    }
}

fn decode_list(field: &str, value: &Value, item: Kind, go_type: &str) -> Result<Value, FieldError> {
    let Value::Array(items) = value else {
        return Err(mismatch(field, value, go_type));
    };
    items
        .iter()
        .map(|v| item.decode(field, v))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// `alwaysAvailableTracks`: objects of `conf.AlwaysAvailableTrack`, unset keys zero.
fn decode_tracks(field: &str, value: &Value) -> Result<Value, FieldError> {
    let Value::Array(items) = value else {
        return Err(mismatch(field, value, "[]conf.AlwaysAvailableTrack"));
    };
    let track = |item: &Value| {
        let Value::Object(keys) = item else {
            return Err(mismatch(field, item, "conf.AlwaysAvailableTrack"));
        };
        let mut track = json!({"codec": "", "sampleRate": 0, "channelCount": 0, "muLaw": false});
        for (key, v) in keys {
            let kind = match key.as_str() {
                "codec" => Kind::Str,
                "sampleRate" | "channelCount" => Kind::Int,
                "muLaw" => Kind::Bool,
                _ => return Err(FieldError::Saved(format!("json: unknown field \"{key}\""))),
            };
            if !v.is_null() {
                track[key.as_str()] = kind.decode(&format!("{field}.{key}"), v)?;
            }
        }
        Ok(track)
    };
    items
        .iter()
        .map(track)
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// The fields a request body (or a YAML path entry) sets, in document order; `null` fields are
/// left out.
#[derive(Clone, Debug, Default)]
pub(super) struct Patch(Vec<(usize, Value)>);

impl Patch {
    /// Decodes a request body as MediaMTX does; the error is MediaMTX's 400 text.
    pub fn from_body(body: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            if e.is_eof() {
                "unexpected end of JSON input".to_owned()
            } else {
                e.to_string()
            }
        })?;
        match value {
            Value::Null => Ok(Patch::default()),
            Value::Object(_) => {
                let OrderedObject(entries) =
                    serde_json::from_slice(body).map_err(|e| e.to_string())?;
                Self::from_entries(entries)
            }
            other => Err(format!(
                "json: cannot unmarshal {} into Go value of type conf.OptionalPath",
                go_value(&other, false)
            )),
        }
    }

    /// Decodes one path entry of the YAML file, given as a JSON object (`null` = no fields).
    pub fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(Patch::default()),
            Value::Object(map) => Self::from_entries(map.clone()),
            other => Err(format!(
                "json: cannot unmarshal {} into Go value of type conf.OptionalPath",
                go_value(other, false)
            )),
        }
    }

    fn from_entries(entries: impl IntoIterator<Item = (String, Value)>) -> Result<Self, String> {
        let mut saved = None;
        let mut fields = Vec::new();
        for (key, value) in entries {
            let Some(index) = field_index(&key) else {
                saved.get_or_insert_with(|| format!("json: unknown field \"{key}\""));
                continue;
            };
            if value.is_null() {
                continue;
            }
            match FIELDS[index].kind.decode(&FIELDS[index].name, &value) {
                Ok(v) => fields.push((index, v)),
                Err(FieldError::Saved(e)) => {
                    saved.get_or_insert(e);
                }
                Err(FieldError::Fatal(e)) => return Err(e),
            }
        }
        saved.map_or(Ok(Patch(fields)), Err)
    }
}

/// A complete, valid path configuration; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct PathConf(Vec<Value>);

impl PathConf {
    /// The path defaults with `patch` on top (what `add` and `replace` store), checked as path
    /// `name`; the error is MediaMTX's 400 text.
    pub fn new(name: &str, patch: &Patch) -> Result<Self, String> {
        PathConf(FIELDS.iter().map(|f| f.default.clone()).collect()).patched(name, patch)
    }

    /// This configuration with `patch` on top (what `patch` stores), checked as path `name`.
    pub fn patched(&self, name: &str, patch: &Patch) -> Result<Self, String> {
        let mut values = self.0.clone();
        for (index, value) in &patch.0 {
            values[*index] = value.clone();
        }
        // The body's `name` is accepted but never kept: MediaMTX sets it from the path.
        if let Some(index) = field_index("name") {
            values[index] = Value::from(name);
        }
        let conf = PathConf(values);
        conf.validate(name)?;
        Ok(conf)
    }

    fn get(&self, field: &str) -> &Value {
        field_index(field)
            .and_then(|i| self.0.get(i))
            .unwrap_or(&Value::Null)
    }

    fn text(&self, field: &str) -> &str {
        self.get(field).as_str().unwrap_or_default()
    }

    fn flag(&self, field: &str) -> bool {
        self.get(field).as_bool().unwrap_or_default()
    }

    /// A duration field in nanoseconds; stored values are normalised, so they always parse.
    fn nanos(&self, field: &str) -> i64 {
        parse_duration(self.text(field)).unwrap_or_default()
    }

    pub fn source(&self) -> &str {
        self.text("source")
    }

    pub fn source_on_demand(&self) -> bool {
        self.flag("sourceOnDemand")
    }

    pub fn always_available(&self) -> bool {
        self.flag("alwaysAvailable")
    }

    /// `sourceOnDemandStartTimeout`.
    pub fn start_timeout(&self) -> Duration {
        Duration::from_nanos(
            self.nanos("sourceOnDemandStartTimeout")
                .max(0)
                .unsigned_abs(),
        )
    }

    /// `maxReaders`; `None` = unlimited.
    pub fn max_readers(&self) -> Option<usize> {
        let max = self.get("maxReaders").as_i64().unwrap_or_default();
        (max != 0).then(|| usize::try_from(max).unwrap_or_default())
    }

    /// A source MediaMTX pulls itself (not `publisher` nor `redirect`).
    pub fn has_static_source(&self) -> bool {
        !matches!(self.source(), "publisher" | "redirect")
    }

    /// Whether a path running `self` can take `other` in place, keeping its readers: they
    /// differ at most in [`HOT_RELOADABLE`] fields.
    pub fn reloads_in_place(&self, other: &PathConf) -> bool {
        FIELDS
            .iter()
            .zip(self.0.iter().zip(&other.0))
            .all(|(field, (a, b))| a == b || HOT_RELOADABLE.contains(&field.name.as_str()))
    }

    /// The JSON MediaMTX answers, fields in its order.
    pub fn to_json(&self) -> String {
        let fields = FIELDS
            .iter()
            .zip(&self.0)
            .map(|(field, value)| format!("{}:{value}", Value::from(field.name.as_str())));
        format!("{{{}}}", fields.collect::<Vec<_>>().join(","))
    }

    pub fn to_value(&self) -> Value {
        let fields = FIELDS.iter().zip(&self.0);
        Value::Object(
            fields
                .map(|(field, value)| (field.name.clone(), value.clone()))
                .collect::<Map<_, _>>(),
        )
    }

    /// `conf.Path.validate`, in its order, for what the simulator can check.
    fn validate(&self, name: &str) -> Result<(), String> {
        let pattern = is_pattern(name);
        if !pattern {
            check_path_name(name).map_err(|e| format!("invalid path name '{name}': {e}"))?;
        }
        let source = self.source();
        if !self.text("srtPublishPassphrase").is_empty() && source != "publisher" {
            // sic: MediaMTX's own spelling
            return Err("'srtPublishPassphase' can only be used when source is 'publisher'".into());
        }
        if source != "redirect" && !self.text("sourceRedirect").is_empty() {
            return Err("'sourceRedirect' is useless when source is not 'redirect'".into());
        }
        self.check_source()?;
        if self.source_on_demand() && source == "publisher" {
            return Err("'sourceOnDemand' is useless when source is 'publisher'".into());
        }
        if !self.source_on_demand() && self.has_static_source() && pattern {
            return Err(
                "a path with a regular expression (or path 'all') and a static source \
                        must have 'sourceOnDemand' set to true"
                    .into(),
            );
        }
        self.check_always_available(pattern)?;
        self.check_record()?;
        if !self.text("runOnInit").is_empty() && pattern {
            return Err(
                "a path with a regular expression (or path 'all') does not support \
                        option 'runOnInit'; use another path"
                    .into(),
            );
        }
        let on_demand_command =
            !self.text("runOnDemand").is_empty() || !self.text("runOnUnDemand").is_empty();
        if on_demand_command && source != "publisher" {
            return Err(
                "'runOnDemand' and 'runOnUnDemand' can be used only when source is \
                        'publisher'"
                    .into(),
            );
        }
        Ok(())
    }

    fn check_source(&self) -> Result<(), String> {
        const URL_SCHEMES: &[&str] = &[
            "rtsp://",
            "rtsps://",
            "rtsp+http://",
            "rtsps+http://",
            "rtsp+ws://",
            "rtsps+ws://",
            "rtmp://",
            "rtmps://",
            "http://",
            "https://",
            "srt://",
            "whep://",
            "wheps://",
        ];
        const HOST_PORT: &[(&str, &str)] = &[
            ("udp://", "UDP+MPEGTS"),
            ("udp+mpegts://", "UDP+MPEGTS"),
            ("udp+rtp://", "UDP+RTP"),
        ];
        let source = self.source();
        let needs_sdp = source.starts_with("udp+rtp://") || source.starts_with("unix+rtp://");
        if needs_sdp && self.text("rtpSDP").is_empty() {
            return Err("`rtpSDP` was not provided".into());
        }
        if let Some((prefix, what)) = HOST_PORT.iter().find(|(p, _)| source.starts_with(p)) {
            let host_port = &source[prefix.len()..];
            return match host_port.rsplit_once(':') {
                Some((_, port)) if !port.is_empty() => Ok(()),
                _ => Err(format!("'{source}' is not a valid {what} URL")),
            };
        }
        match source {
            "publisher" | "rpiCamera" => Ok(()),
            "redirect" => match self.text("sourceRedirect") {
                "" => Err("source redirect must be filled".into()),
                target => check_redirect(target),
            },
            s if s.starts_with("unix+mpegts://") || s.starts_with("unix+rtp://") => Ok(()),
            s if URL_SCHEMES.iter().any(|p| s.starts_with(p)) => check_url(s),
            s => Err(format!("invalid source: '{s}'")),
        }
    }

    fn check_always_available(&self, pattern: bool) -> Result<(), String> {
        if !self.always_available() {
            return Ok(());
        }
        if pattern {
            return Err(
                "'alwaysAvailable' cannot be used in a path with a regular expression \
                        (or path 'all')"
                    .into(),
            );
        }
        if self.source_on_demand() {
            return Err("'sourceOnDemand' is not compatible with 'alwaysAvailable'".into());
        }
        if !self.text("runOnDemand").is_empty() || !self.text("runOnUnDemand").is_empty() {
            return Err(
                "'runOnDemand' and 'runOnUnDemand' cannot be used with 'alwaysAvailable'".into(),
            );
        }
        let tracks = self
            .get("alwaysAvailableTracks")
            .as_array()
            .map_or(0, Vec::len);
        if !self.text("alwaysAvailableFile").is_empty() && tracks != 0 {
            return Err(
                "'alwaysAvailableFile' and 'alwaysAvailableTracks' cannot be used together".into(),
            );
        }
        if self.text("alwaysAvailableFile").is_empty() && tracks == 0 {
            return Err("'alwaysAvailableTracks' must contain at least one track".into());
        }
        if self.flag("useAbsoluteTimestamp") {
            return Err("'useAbsoluteTimestamp' cannot be used with 'alwaysAvailable'".into());
        }
        Ok(())
    }

    fn check_record(&self) -> Result<(), String> {
        let path = self.text("recordPath");
        if !path.contains("%path") {
            return Err("'recordPath' must contain %path".into());
        }
        let dated = ["%Y", "%m", "%d", "%H", "%M", "%S"]
            .iter()
            .all(|v| path.contains(v));
        if !path.contains("%s") && !dated {
            return Err("'recordPath' must contain either %s or %Y %m %d %H %M %S".into());
        }
        let segment = self.nanos("recordSegmentDuration");
        if segment > i64::try_from(NANOS_PER_DAY).unwrap_or(i64::MAX) {
            return Err("maximum segment duration is 1 day".into());
        }
        let delete_after = self.nanos("recordDeleteAfter");
        if delete_after != 0 && delete_after < segment {
            return Err("'recordDeleteAfter' cannot be lower than 'recordSegmentDuration'".into());
        }
        Ok(())
    }
}

fn check_url(source: &str) -> Result<(), String> {
    let url = url::Url::parse(source).map_err(|_| format!("'{source}' is not a valid URL"))?;
    let rtsp = url.scheme().starts_with("rtsp");
    if !rtsp && url.username().is_empty() != url.password().unwrap_or_default().is_empty() {
        return Err("username and password must be both provided".into());
    }
    Ok(())
}

/// A redirect target: `/other-path` or an RTSP URL.
fn check_redirect(target: &str) -> Result<(), String> {
    match target.strip_prefix('/') {
        Some(path) => check_path_name(path).map_err(|e| format!("'{target}': {e}")),
        None if url::Url::parse(target).is_ok_and(|u| u.scheme().starts_with("rtsp")) => Ok(()),
        None => Err(format!("'{target}' is not a valid RTSP URL")),
    }
}

/// Names configured as patterns: `all`, `all_others` and `~regexp`. MediaMTX creates their
/// paths only when a client asks for a matching name.
pub(super) fn is_pattern(name: &str) -> bool {
    matches!(name, "all" | "all_others") || name.starts_with('~')
}

/// A concrete path name (SERVERS.md: `^[0-9a-zA-Z_\-/.]+$`, no leading or trailing `/`, no
/// `.` or `..` segment); the error completes `invalid path name …`.
pub(super) fn check_path_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("cannot be empty");
    }
    if name.starts_with('/') {
        return Err("can't begin with a slash");
    }
    if name.ends_with('/') {
        return Err("can't end with a slash");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-/.".contains(c);
    if !name.chars().all(allowed) {
        return Err("can contain only alphanumeric characters, underscore, dot, minus or slash");
    }
    if name
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("can't contain '.' or '..' segments");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(body: &str) -> Result<Patch, String> {
        Patch::from_body(body.as_bytes())
    }

    #[test]
    fn schema_holds_every_default_field_with_its_kind() {
        assert_eq!(FIELDS.len(), 86);
        assert_eq!(FIELDS[0].name, "name");
        let kind = |name: &str| FIELDS[field_index(name).unwrap()].kind;
        assert_eq!(kind("sourceOnDemandStartTimeout"), Kind::Duration);
        assert_eq!(kind("maxReaders"), Kind::Int);
        assert_eq!(kind("rpiCameraWidth"), Kind::Uint);
        assert_eq!(kind("rpiCameraFPS"), Kind::Float);
        assert_eq!(kind("record"), Kind::Bool);
        assert_eq!(kind("source"), Kind::Str);
        let defaults = PathConf::new("cam", &Patch::default()).unwrap();
        assert_eq!(defaults.to_value()["recordSegmentDuration"], "1h0m0s");
    }

    #[test]
    fn decoding_reports_go_errors() {
        assert_eq!(
            patch(r#"{"x": 1}"#).unwrap_err(),
            "json: unknown field \"x\""
        );
        assert_eq!(
            patch(r#"{"sourceOnDemand": "yes"}"#).unwrap_err(),
            "json: cannot unmarshal string into Go struct field .sourceOnDemand of type bool"
        );
        assert_eq!(
            patch(r#"{"maxReaders": 1.5}"#).unwrap_err(),
            "json: cannot unmarshal number 1.5 into Go struct field .maxReaders of type int"
        );
        // An UnmarshalJSON error wins over an earlier unknown field.
        assert_eq!(
            patch(r#"{"x": 1, "recordFormat": "avi"}"#).unwrap_err(),
            "invalid record format 'avi'"
        );
        assert_eq!(
            patch(r#"{"rtspTransport": "quic"}"#).unwrap_err(),
            "invalid protocol 'quic'"
        );
        assert_eq!(patch("").unwrap_err(), "unexpected end of JSON input");
        assert!(patch("null").is_ok());
        // Go matches keys in any letter case.
        assert!(patch(r#"{"SOURCE": "rtsp://127.0.0.1/x"}"#).is_ok());
    }

    #[test]
    fn validation_follows_mediamtx() {
        let conf = |name: &str, body: &str| PathConf::new(name, &patch(body).unwrap());
        assert!(conf("site/cam1", r#"{"source": "rtsp://127.0.0.1:9/x"}"#).is_ok());
        assert_eq!(
            conf("cam", r#"{"sourceOnDemand": true}"#).unwrap_err(),
            "'sourceOnDemand' is useless when source is 'publisher'"
        );
        assert_eq!(
            conf("cam", r#"{"recordPath": "/rec/%Y"}"#).unwrap_err(),
            "'recordPath' must contain %path"
        );
        assert_eq!(
            conf("cam", r#"{"recordPath": "/rec/%path/%Y"}"#).unwrap_err(),
            "'recordPath' must contain either %s or %Y %m %d %H %M %S"
        );
        assert!(conf("cam", r#"{"recordPath": "/rec/%path/%s"}"#).is_ok());
        assert_eq!(
            conf("cam/", "{}").unwrap_err(),
            "invalid path name 'cam/': can't end with a slash"
        );
        assert!(conf("a/../b", "{}").is_err());
        assert!(conf("cam 1", "{}").is_err());
        assert!(conf("all_others", "{}").is_ok());
        assert!(
            conf("all_others", r#"{"source": "rtsp://127.0.0.1/x"}"#)
                .unwrap_err()
                .contains("must have 'sourceOnDemand' set to true")
        );
        assert_eq!(
            conf("cam", r#"{"source": "ftp://x"}"#).unwrap_err(),
            "invalid source: 'ftp://x'"
        );
    }

    #[test]
    fn only_record_fields_reload_in_place() {
        let base = PathConf::new(
            "cam",
            &patch(r#"{"source": "rtsp://127.0.0.1/a"}"#).unwrap(),
        )
        .unwrap();
        let recorded = base
            .patched(
                "cam",
                &patch(r#"{"record": true, "recordDeleteAfter": "7d"}"#).unwrap(),
            )
            .unwrap();
        let moved = base
            .patched(
                "cam",
                &patch(r#"{"source": "rtsp://127.0.0.1/b"}"#).unwrap(),
            )
            .unwrap();
        assert!(base.reloads_in_place(&recorded));
        assert!(!base.reloads_in_place(&moved));
    }
}

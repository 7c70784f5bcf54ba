//! go2rtc's YAML file as a `go2rtc-file` target writes it: each stream under `streams:` (one
//! source, or a list), preloaded streams also under `preload:`, and passwords as
//! `${CAMSYNC_<CAMERA>_PASSWORD}` references, which go2rtc expands when it loads the file,
//! with their values in an env file (mode 0600) for the server's environment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use camsync_formats::yaml_edit::{Change as EditChange, Document, EditError};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::atomic_file;
use crate::bounded_read;
use crate::camera::Camera;

/// What go2rtc's `preload:` section holds for a preloaded stream (a consumer of video and
/// audio, as `PUT /api/preload` without a query stores it).
const PRELOAD_QUERY: &str = "video&audio";

/// The `streams:` entry for `camera`, and the value of its password reference (the password,
/// percent-encoded: go2rtc substitutes the text as is, so it must already be URL-safe), unless
/// passwords are written inline.
pub(in crate::target) fn entry(
    camera: &Camera,
    inline_credentials: bool,
) -> (Value, Option<String>) {
    let mut reference = None;
    let sources: Vec<String> = camera
        .sources
        .iter()
        .map(|source| match source.password() {
            Some(password) if !inline_credentials => {
                let var = env_var_name(&camera.name);
                reference =
                    Some(utf8_percent_encode(password.expose(), NON_ALPHANUMERIC).to_string());
                source.with_password_placeholder(&format!("${{{var}}}"))
            }
            _ => source.expose(),
        })
        .collect();
    let value = match <[String; 1]>::try_from(sources) {
        Ok([one]) => Value::String(one),
        Err(many) => Value::from(many),
    };
    (value, reference)
}

/// Lists (`true`) or unlists (`false`) streams under `preload:`; a stream that is not listed
/// is not unlisted, so a file without preloads gets no `preload:` section.
pub(in crate::target) fn edit_preloads(
    doc: &mut Document,
    preloads: &[(&str, bool)],
) -> Result<(), EditError> {
    let preload_value = Value::from(PRELOAD_QUERY);
    let listed: BTreeSet<String> = doc.keys("preload").into_iter().collect();
    let edits: Vec<EditChange<'_>> = preloads
        .iter()
        .filter_map(|(name, wanted)| match wanted {
            true => Some(EditChange::Upsert(name, &preload_value)),
            false if listed.contains(*name) => Some(EditChange::Remove(name)),
            false => None,
        })
        .collect();
    if edits.is_empty() {
        return Ok(());
    }
    doc.apply("preload", &edits)
}

/// The env file a go2rtc started on a `go2rtc-file` needs for `cameras`: one
/// `CAMSYNC_<NAME>_PASSWORD=<percent-encoded password>` line per camera with a password.
pub fn env_file_text<'a>(cameras: impl IntoIterator<Item = &'a Camera>) -> String {
    cameras
        .into_iter()
        .filter_map(|c| {
            let password = c.sources.iter().find_map(|s| s.password())?;
            let value = utf8_percent_encode(password.expose(), NON_ALPHANUMERIC);
            Some(format!("{}={value}\n", env_var_name(&c.name)))
        })
        .collect()
}

/// `CAMSYNC_<NAME>_PASSWORD`, the name upper-cased with every other character as `_`.
pub fn env_var_name(camera: &str) -> String {
    let name: String = camera
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CAMSYNC_{name}_PASSWORD")
}

/// Sets or removes `KEY=value` lines in an env file (Docker's `--env-file` format), keeping
/// the other lines; written atomically, mode 0600.
pub(in crate::target) fn update_env_file(
    path: &Path,
    updates: &BTreeMap<String, Option<String>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if updates.is_empty() {
        return Ok(());
    }
    let old = bounded_read::read_target_file(path)?;
    let mut lines: Vec<String> = Vec::new();
    let mut pending = updates.clone();
    for line in old.lines() {
        let key = line.split_once('=').map(|(k, _)| k.trim());
        match key.and_then(|k| pending.remove(k).map(|v| (k.to_owned(), v))) {
            Some((key, Some(value))) => lines.push(format!("{key}={value}")),
            Some((_, None)) => {}
            None => lines.push(line.to_owned()),
        }
    }
    lines.extend(
        pending
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}"))),
    );
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    atomic_file::write_private(path, text.as_bytes())?;
    Ok(())
}

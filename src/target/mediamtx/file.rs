//! MediaMTX's YAML file as a `mediamtx-file` target writes it: each camera a path under
//! `paths:` (its fields and `source`; MediaMTX cannot expand references, so a password is only
//! written inline when the target allows it).
//!
//! MediaMTX's file watcher, as such a target must drive it: it reloads its file
//! about 25 ms after a change, and ignores — for good, not until later — any change within
//! 1 s after the change it last reloaded (measured on v1.16.2: a write 1.00 s after the
//! previous one was never loaded, 1.02 s later always was; CONFORMANCE-NOTES.md).
//!
//! So writes are spaced by `QUIET` (1.5 s) after the file's last change (camsync's own, or anyone's,
//! by its mtime: a second `camsync sync` half a second after the first waits too), and with
//! `api:` the target checks through the API that the server loaded what was written, and
//! replaces the file (same content, new inode) after another quiet window if it did not.
//! Nothing here blocks but the sleeps and the API calls.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::time::Instant;

use super::Mediamtx;
use crate::atomic_file;
use crate::camera::Camera;
use crate::target::TargetError;

/// Times MediaMTX may ignore a written file before the write fails.
const REWRITES: u32 = 2;

/// Writes to a MediaMTX file are at least this far apart: its 1 s window plus a margin for a
/// busy watcher (it starts the window when it handles the event, not at the write).
pub(in crate::target) const QUIET: Duration = Duration::from_millis(1500);
/// How long a written file may take to show through the API before it counts as ignored.
const LOADED_WITHIN: Duration = Duration::from_secs(1);
/// How often the API is asked meanwhile.
const POLL: Duration = Duration::from_millis(50);

/// Waits until a change of `path` would be loaded: [`QUIET`] after our last write (`ours`)
/// and after the file's modification time, whichever is later.
pub(in crate::target) async fn quiet(path: &Path, ours: Option<Instant>) {
    if let Some(at) = ours {
        tokio::time::sleep_until(at + QUIET).await;
    }
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(|modified| {
            SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default()
        });
    if let Ok(age) = age {
        tokio::time::sleep(QUIET.saturating_sub(age)).await;
    }
}

/// Whether the server holds every `expected` entry (a path config, or `None` for a path that
/// must be gone) within [`LOADED_WITHIN`]; an API error is returned as is.
async fn loaded(
    api: &Mediamtx,
    expected: &BTreeMap<String, Option<Value>>,
) -> Result<bool, TargetError> {
    // An entry that is not a mapping only has to exist.
    let wanted = expected
        .iter()
        .map(|(name, want)| {
            let want = want
                .as_ref()
                .map(|v| v.as_object().cloned().unwrap_or_default());
            (name.clone(), want)
        })
        .collect();
    let deadline = Instant::now() + LOADED_WITHIN;
    loop {
        if api.holds_all(&wanted).await? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The `paths:` entry for `camera` on target `target`, or why the file cannot hold it.
pub(in crate::target) fn entry(
    camera: &Camera,
    inline_credentials: bool,
    target: &str,
) -> Result<Value, String> {
    let source = &camera.sources[0];
    if source.password().is_some() && !inline_credentials {
        return Err(format!(
            "camera {:?} has a password, and MediaMTX cannot expand references in its file; \
             set `inline_credentials: true` on target {target:?} (the file is then kept at mode 0600) \
             or use a `mediamtx` API target",
            camera.name
        ));
    }
    let mut fields = camera.mediamtx.clone();
    fields.insert("source".into(), Value::String(source.expose()));
    Ok(Value::Object(fields))
}

/// A file as a target just wrote it.
pub(in crate::target) struct Written<'a> {
    pub target: &'a str,
    pub path: &'a Path,
    pub text: &'a str,
    /// Kept at mode 0600 (it holds passwords).
    pub private: bool,
    /// Each touched path: its config, or `None` for a removed one.
    pub expected: &'a BTreeMap<String, Option<Value>>,
}

/// Checks through MediaMTX's API that it loaded the file as `written`; if not (a change in
/// its quiet window is never loaded), replaces the file with the same text after the window,
/// up to [`REWRITES`] times. An API that does not answer cannot tell: the file is right and a
/// server that starts loads it, so that is no error.
pub(in crate::target) async fn confirm_loaded(
    api: &Mediamtx,
    written: &Written<'_>,
    last_write: &mut Option<Instant>,
) -> Result<(), String> {
    for rewrites in 0..=REWRITES {
        match loaded(api, written.expected).await {
            Ok(true) => return Ok(()),
            Ok(false) if rewrites < REWRITES => {
                tracing::warn!(target = %written.target, path = %written.path.display(),
                    "MediaMTX did not load the file written; writing it again");
                quiet(written.path, *last_write).await;
                atomic_file::replace(written.path, written.text.as_bytes(), written.private)
                    .map_err(|e| e.to_string())?;
                *last_write = Some(Instant::now());
            }
            Ok(false) => break,
            Err(e) => {
                tracing::warn!(target = %written.target, error = %e,
                    "cannot check through the API that MediaMTX loaded its file");
                return Ok(());
            }
        }
    }
    Err(format!(
        "MediaMTX did not load {} after {REWRITES} rewrites",
        written.path.display()
    ))
}

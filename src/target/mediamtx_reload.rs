//! MediaMTX's file watcher, as a `mediamtx-file` target must drive it: it reloads its file
//! about 25 ms after a change, and ignores — for good, not until later — any change within
//! 1 s after the change it last reloaded (measured on v1.16.2: a write 1.00 s after the
//! previous one was never loaded, 1.02 s later always was; CONFORMANCE-NOTES.md).
//!
//! So writes are spaced by [`QUIET`] after the file's last change (camsync's own, or anyone's,
//! by its mtime: a second `camsync sync` half a second after the first waits too), and with
//! `api:` the target checks through the API that the server loaded what was written, and
//! replaces the file (same content, new inode) after another quiet window if it did not.
//! Nothing here blocks but the sleeps and the API calls.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::time::Instant;

use super::TargetError;
use super::mediamtx::Mediamtx;

/// Writes to a MediaMTX file are at least this far apart: its 1 s window plus a margin for a
/// busy watcher (it starts the window when it handles the event, not at the write).
pub(super) const QUIET: Duration = Duration::from_millis(1500);
/// How long a written file may take to show through the API before it counts as ignored.
const LOADED_WITHIN: Duration = Duration::from_secs(1);
/// How often the API is asked meanwhile.
const POLL: Duration = Duration::from_millis(50);

/// Waits until a change of `path` would be loaded: [`QUIET`] after our last write (`ours`)
/// and after the file's modification time, whichever is later.
pub(super) async fn quiet(path: &Path, ours: Option<Instant>) {
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
pub(super) async fn loaded(
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

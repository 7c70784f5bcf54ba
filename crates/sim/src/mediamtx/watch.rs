//! MediaMTX's YAML file on disk: reading its `paths:` and watching it as MediaMTX's
//! `confwatcher` does, per SERVERS.md — a change of content is reloaded (MediaMTX: within
//! ~0.7 s), `touch` alone does nothing, and a change within [`QUIET`] after a reload is
//! ignored: it stays ignored, and is picked up only with the next change after that.
//!
//! The watcher polls the file's bytes every [`POLL`] (content, not mtime: a rewrite with the
//! same text is no change). It belongs to one incarnation of the simulator: it ends when that
//! incarnation's kill token is cancelled (restart, shutdown, a failed reload, the simulator
//! dropped) and holds only a weak reference, so it never keeps the simulator alive. It may
//! block only on its timer and on reading the file.
//!
//! Only `paths:` is read; other top-level keys are neither checked nor applied.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::conf::PathConf;
use super::{Inner, MediamtxSim};

/// How often the watcher reads the file.
pub(super) const POLL: Duration = Duration::from_millis(100);
/// After a reload, MediaMTX ignores changes for this long.
pub(super) const QUIET: Duration = Duration::from_secs(1);

/// The file's bytes and the paths they configure, as a start or restart loads them. A file
/// MediaMTX would refuse is an `InvalidInput` error naming it.
pub(super) fn read(path: &Path) -> io::Result<(Vec<u8>, BTreeMap<String, PathConf>)> {
    let named =
        |kind, e: &dyn std::fmt::Display| io::Error::new(kind, format!("{}: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| named(e.kind(), &e))?;
    let paths = parse(&bytes).map_err(|e| named(io::ErrorKind::InvalidInput, &e))?;
    Ok((bytes, paths))
}

/// The validated `paths:` of a MediaMTX file (none if absent or empty); the error is why
/// MediaMTX would refuse the file.
pub(super) fn parse(bytes: &[u8]) -> Result<BTreeMap<String, PathConf>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let doc: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        camsync_formats::yaml::from_str(text)?
    };
    let paths = match &doc {
        Value::Null => None,
        Value::Object(top) => top.get("paths"),
        _ => return Err("the top level is not a mapping".into()),
    };
    let paths: BTreeMap<String, Value> = match paths {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(paths)) => paths.clone().into_iter().collect(),
        Some(_) => return Err("'paths' is not a mapping".into()),
    };
    super::load_file(&paths)
}

/// Watches `path`, whose content was `seen` when this incarnation loaded it, until `stop`.
pub(super) async fn run(
    sim: Weak<Inner>,
    path: PathBuf,
    mut seen: Vec<u8>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL) => {}
        }
        // A missing file (being replaced, or removed) is waited for, as MediaMTX does.
        let Ok(bytes) = tokio::fs::read(&path).await else {
            continue;
        };
        if bytes == seen || stop.is_cancelled() {
            continue;
        }
        seen = bytes;
        let Some(inner) = sim.upgrade() else {
            return;
        };
        MediamtxSim { inner }.file_changed(&seen);
    }
}

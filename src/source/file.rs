//! The YAML (or JSON) inventory file, and watching it for changes.
//!
//! The watch is on the file's directory, not the file: editors and atomic writers save by
//! renaming a new file over the old one, which a watch on the old inode would miss.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::file_entries::{Entry, EntryCache, RawInventory};
use super::reader::{Reader, Record, SourceError};

/// How long the file must be quiet before a change is reported: editors write in bursts.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// The inventory file, and what it remembers of its last read.
pub struct InventoryFile {
    path: PathBuf,
    entries: std::sync::Mutex<EntryCache>,
}

impl InventoryFile {
    pub fn new(path: PathBuf) -> InventoryFile {
        InventoryFile {
            path,
            entries: Default::default(),
        }
    }
}

impl Reader for InventoryFile {
    fn label(&self) -> String {
        self.path.display().to_string()
    }

    fn read(&self) -> BoxFuture<'_, Result<Vec<Record>, SourceError>> {
        Box::pin(async {
            crate::blocking::run(|| {
                let mut entries = crate::lock::lock(&self.entries);
                load(&self.path, &mut entries)
            })
        })
    }

    fn watch(&self, cancel: CancellationToken) -> Result<Option<mpsc::Receiver<()>>, SourceError> {
        watch(&self.path, cancel).map(Some)
    }
}

/// Reads the inventory file's records, parsing only the entries `cache` has not seen.
pub fn load(path: &Path, cache: &mut EntryCache) -> Result<Vec<Record>, SourceError> {
    let text = crate::bounded_read::read_to_string(path, crate::bounded_read::INVENTORY_LIMIT)
        .map_err(|source| SourceError::Read {
            path: path.to_owned(),
            source,
        })?;
    parse(&text, path, cache)
}

/// The records of inventory text, as if read from `path`.
pub fn parse(text: &str, path: &Path, cache: &mut EntryCache) -> Result<Vec<Record>, SourceError> {
    let parse_error = |message: String| SourceError::Parse {
        path: path.to_owned(),
        message,
    };
    if text.trim().is_empty() {
        // A half-written or truncated file must not read as "no cameras".
        return Err(parse_error(
            "the file is empty (write `cameras: []` to mean no cameras)".into(),
        ));
    }
    let entries = match cache.entries(text) {
        Some(entries) => entries,
        None => {
            let raw: RawInventory = camsync_formats::yaml::from_str(text).map_err(parse_error)?;
            raw.cameras
                .into_iter()
                .map(|entry| Entry::new(entry.referenced.line(), entry.value))
                .collect()
        }
    };
    Ok(entries
        .into_iter()
        .map(|entry| Record {
            location: format!("{}:{}", path.display(), entry.line),
            name: entry
                .value
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_owned),
            spec: entry.spec,
        })
        .collect())
}

/// Watches `path` until `cancel` and sends one `()` per burst of changes to it (create, write,
/// rename, delete).
fn watch(path: &Path, cancel: CancellationToken) -> Result<mpsc::Receiver<()>, SourceError> {
    let watch_error = |e: notify::Error| SourceError::Watch {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().map(ToOwned::to_owned);
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let touches_file = match &event {
            Ok(ev) => {
                changes_content(&ev.kind)
                    && ev
                        .paths
                        .iter()
                        .any(|p| p.file_name() == file_name.as_deref())
            }
            Err(_) => true,
        };
        if touches_file {
            let _ = raw_tx.send(());
        }
    })
    .map_err(watch_error)?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(watch_error)?;

    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        // The watch lasts as long as this task: until `cancel`, or the receiver is dropped.
        let _watcher = watcher;
        while let Some(Some(())) = cancel.run_until_cancelled(raw_rx.recv()).await {
            // Wait for a quiet spell, then report once.
            loop {
                match tokio::time::timeout(DEBOUNCE, raw_rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            if tx.send(()).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// Whether an event may have changed the file. Opening or reading it does not: camsync reads
/// the file itself after every change, which must not count as one.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(access) => *access == AccessKind::Close(AccessMode::Write),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::camera::ValidationContext;
    use crate::config::TargetKind;
    use crate::profile::Profiles;
    use crate::source::{Inventory, validate_records};

    fn check(text: &str) -> Result<Inventory, SourceError> {
        let targets: BTreeMap<String, TargetKind> =
            [("go2rtc".to_string(), TargetKind::Go2rtc)].into();
        let profiles = Profiles::builtin();
        let env = |v: &str| (v == "PW").then(|| "pw".to_string());
        let ctx = ValidationContext::new(Path::new("."), &targets, &profiles, &env);
        let records = parse(text, Path::new("cams.yaml"), &mut EntryCache::default())?;
        Ok(validate_records(records, &ctx))
    }

    #[test]
    fn invalid_cameras_are_rejected_one_by_one_with_their_line() {
        let inv = check(
            "cameras:\n\
             \x20 - name: ok\n    url: rtsp://192.0.2.1/a\n\
             \x20 - name: bad name\n    url: rtsp://192.0.2.1/b\n\
             \x20 - name: nourl\n\
             \x20 - name: ok\n    url: rtsp://192.0.2.1/c\n\
             \x20 - name: typo\n    ur1: rtsp://192.0.2.1/d\n\
             \x20 - name: secret\n    url: rtsp://192.0.2.1/e\n    username: u\n    password_env: MISSING\n\
             \x20 - url: rtsp://192.0.2.1/f\n",
        )
        .unwrap();
        assert_eq!(inv.cameras.keys().collect::<Vec<_>>(), ["ok"]);
        let got: Vec<(&str, &str)> = inv
            .rejected
            .iter()
            .map(|r| (r.camera.as_str(), r.location.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("bad name", "cams.yaml:4"),
                ("nourl", "cams.yaml:6"),
                ("ok", "cams.yaml:7"),
                ("typo", "cams.yaml:9"),
                ("secret", "cams.yaml:11"),
                ("#7", "cams.yaml:15"),
            ]
        );
        assert!(
            inv.rejected[2].reason.contains("duplicate"),
            "{:?}",
            inv.rejected[2]
        );
        assert!(
            inv.rejected[3].reason.contains("ur1"),
            "{:?}",
            inv.rejected[3]
        );
        assert!(
            inv.rejected[4].reason.contains("MISSING"),
            "{:?}",
            inv.rejected[4]
        );
    }

    #[test]
    fn unparseable_or_empty_files_are_errors_not_empty_inventories() {
        for text in [
            "",
            "  \n",
            "cameras: [",
            "cameras:\n  - name: a\n   bad indent: x\n",
        ] {
            assert!(check(text).is_err(), "{text:?}");
        }
        assert!(check("cameras: []\n").unwrap().cameras.is_empty());
    }

    #[test]
    fn errors_never_quote_a_password() {
        let err = check("cameras:\n  - name: a\n    password: hunter2\n  bad: [\n").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let inv =
            check("cameras:\n  - name: a\n    url: rtsp://192.0.2.1/x\n    password: [hunter2]\n")
                .unwrap();
        assert!(
            !inv.rejected[0].reason.contains("hunter2"),
            "{:?}",
            inv.rejected
        );
    }

    #[test]
    fn json_inventories_work_too() {
        let inv = check(r#"{"cameras": [{"name": "j", "url": "rtsp://192.0.2.1/x", "username": "u", "password": 1234}]}"#).unwrap();
        assert_eq!(
            inv.cameras["j"].sources[0].expose(),
            "rtsp://u:1234@192.0.2.1/x"
        );
    }

    #[tokio::test]
    async fn reading_the_file_is_no_change_writing_it_is_and_a_cancel_ends_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cameras.yaml");
        std::fs::write(&path, "cameras: []\n").unwrap();
        let cancel = CancellationToken::new();
        let mut changes = watch(&path, cancel.clone()).unwrap();
        std::fs::read_to_string(&path).unwrap();
        let quiet = tokio::time::timeout(DEBOUNCE * 3, changes.recv()).await;
        assert!(quiet.is_err(), "a read was reported as a change");
        std::fs::write(&path, "cameras: []\n# edited\n").unwrap();
        let changed = tokio::time::timeout(DEBOUNCE * 10, changes.recv()).await;
        assert_eq!(changed, Ok(Some(())));
        cancel.cancel();
        let ended = tokio::time::timeout(DEBOUNCE * 10, changes.recv()).await;
        assert_eq!(ended, Ok(None), "the watch outlived its cancel");
    }
}

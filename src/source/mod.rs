//! Camera sources: where the desired inventory comes from.
//!
//! A source yields records; [`validate_records`] turns them into an [`Inventory`] in which each
//! bad record is rejected on its own (with its name or position and the reason) while the valid
//! rest stands. A source that cannot be read at all is a [`SourceError`]: callers keep the last
//! good inventory and delete nothing.
//!
//! Each kind implements [`Reader`] (`reader.rs`): `file`, `sqlite`, `postgres` (with
//! `columns`, the columns both databases share); `inventory.rs` holds what a read gives, and
//! [`shard`] keeps this instance's share.
//!
//! [`Source`] is the one place the rest of camsync reads an inventory from and learns of its
//! changes, whatever kind the config names: a file, an SQLite database or Postgres. A camera
//! that was valid and is now rejected keeps its last good version (see [`Rejection::kept`]),
//! so a typo or a half-saved edit never takes a working stream away.

mod columns;
pub mod file;
mod file_entries;
mod inventory;
mod postgres;
mod reader;
pub mod shard;
mod sqlite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::camera::{CameraError, CameraSpec, Validated, ValidationContext};
use crate::config::{Config, SourceConfig, TargetKind};
use crate::profile::Profiles;
pub use inventory::{Inventory, Rejection};
pub use reader::{Reader, Record, SourceError};

/// The configured inventory, with what its cameras are validated against.
pub struct Source {
    reader: Box<dyn Reader>,
    /// Where relative `password_file` paths start: the inventory file's directory, or the
    /// config's for a database.
    base_dir: PathBuf,
    targets: BTreeMap<String, TargetKind>,
    profiles: Profiles,
    nest_accounts: Vec<crate::config::NestAccountConfig>,
    resolvers: Vec<crate::config::ResolverConfig>,
    shard: Option<crate::config::Shard>,
    /// The valid cameras of the last successful read.
    last_good: std::sync::Mutex<Option<Arc<Inventory>>>,
    /// The cameras the last read validated, for the next to reuse.
    validated: std::sync::Mutex<Validated>,
    /// Config `max_cameras`, and the config file that sets it.
    max_cameras: usize,
    config_path: PathBuf,
}

impl Source {
    pub fn new(config: &Config) -> Source {
        let dir_of = |path: &Path| path.parent().unwrap_or(Path::new(".")).to_owned();
        let (reader, base_dir): (Box<dyn Reader>, _) = match &config.source {
            SourceConfig::File(path) => (
                Box::new(file::InventoryFile::new(path.clone())),
                dir_of(path),
            ),
            SourceConfig::Sqlite(c) => (
                Box::new(sqlite::Sqlite::new(c.path.clone(), c.query.clone(), c.poll)),
                dir_of(&config.path),
            ),
            SourceConfig::Postgres(c) => {
                (Box::new(postgres::Postgres::new(c)), dir_of(&config.path))
            }
        };
        Source {
            reader,
            base_dir,
            targets: config.target_kinds(),
            profiles: config.profiles.clone(),
            nest_accounts: config.nest_accounts.clone(),
            resolvers: config.resolvers.clone(),
            shard: config.shard.clone(),
            last_good: Default::default(),
            validated: Default::default(),
            max_cameras: config.max_cameras,
            config_path: config.path.clone(),
        }
    }

    /// Reads and validates the inventory. An error means "keep the last good one".
    /// Only this instance's shard is kept (everything when not sharded). A camera rejected now
    /// that was valid at the last read keeps that version.
    pub async fn load(&self) -> Result<Arc<Inventory>, SourceError> {
        let records = self.reader.read().await?;
        let inventory = crate::blocking::run(|| self.validate(records));
        let mut inventory = shard::select(inventory, self.shard.as_ref());
        let count = inventory.cameras.len() + inventory.rejected.len();
        if count > self.max_cameras {
            return Err(SourceError::TooMany {
                inventory: self.reader.label(),
                count,
                max: self.max_cameras,
                config: self.config_path.display().to_string(),
            });
        }
        let mut last_good = crate::lock::lock(&self.last_good);
        if let Some(last_good) = last_good.as_ref() {
            inventory.keep_last_good(&last_good.cameras);
            if inventory == **last_good {
                // Unchanged: the syncs a burst of webhooks starts share one copy.
                return Ok(last_good.clone());
            }
        }
        let inventory = Arc::new(inventory);
        *last_good = Some(inventory.clone());
        Ok(inventory)
    }

    /// Validates `records`, reusing the cameras of the last read.
    fn validate(&self, records: Vec<Record>) -> Inventory {
        let mut validated = crate::lock::lock(&self.validated);
        let ctx = ValidationContext::new(
            &self.base_dir,
            &self.targets,
            &self.profiles,
            &crate::config::process_env,
        )
        .with_resolvers(&self.nest_accounts, &self.resolvers)
        .remembering(std::mem::take(&mut validated));
        let inventory = validate_records(records, &ctx);
        *validated = ctx.into_validated();
        inventory
    }

    /// Starts watching for changes: the file's directory, or the database's change signal.
    pub fn changes(&self) -> Result<Changes, SourceError> {
        let cancel = CancellationToken::new();
        let rx = self.reader.watch(cancel.clone())?;
        Ok(Changes {
            rx,
            _stop: cancel.drop_guard(),
        })
    }
}

/// Changes of a source, one `()` per change (bursts may coalesce). Dropping it stops watching.
pub struct Changes {
    /// `None` for a source that signals nothing (Postgres without `listen`).
    rx: Option<mpsc::Receiver<()>>,
    /// Stops the watching task when dropped.
    _stop: DropGuard,
}

impl Changes {
    /// The next change; `None` once watching has stopped for good.
    pub async fn next(&mut self) -> Option<()> {
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }
}

/// Validates records one by one. Of two records with one name the first stands and the later is
/// rejected, so a pasted duplicate never takes a working stream away.
pub fn validate_records(records: Vec<Record>, ctx: &ValidationContext<'_>) -> Inventory {
    let mut inventory = Inventory::default();
    let mut first_seen: BTreeMap<String, String> = BTreeMap::new();
    for (index, record) in records.into_iter().enumerate() {
        let label = record
            .name
            .clone()
            .unwrap_or_else(|| format!("#{}", index + 1));
        let reject = |reason: String| Rejection {
            camera: label.clone(),
            location: record.location.clone(),
            reason,
            kept: false,
        };
        let result = record
            .spec
            .map_err(|e| {
                use crate::echo::{Echo, Message};
                format!("camera {}: {}", Echo(&label), Message(&e))
            })
            .and_then(|spec| CameraSpec::validate_shared(spec, ctx).map_err(|e| e.to_string()));
        match result {
            Err(reason) => inventory.rejected.push(reject(reason)),
            Ok(camera) => {
                if let Some(first) = first_seen.get(&camera.name) {
                    let err = CameraError::Duplicate {
                        name: camera.name.clone(),
                        first: first.clone(),
                    };
                    inventory.rejected.push(reject(err.to_string()));
                    continue;
                }
                first_seen.insert(camera.name.clone(), record.location.clone());
                inventory.cameras.insert(camera.name.clone(), camera);
            }
        }
    }
    inventory
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[tokio::test]
    async fn an_unchanged_inventory_is_one_shared_copy_and_a_change_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let cameras = dir.path().join("cameras.yaml");
        let one = "cameras:\n  - name: a\n    url: rtsp://127.0.0.1/a\n";
        write(&cameras, one);
        write(
            &dir.path().join("camsync.yaml"),
            "source:\n  file: cameras.yaml\ntargets:\n  - name: g\n    kind: go2rtc\n    api: http://127.0.0.1:1984\n",
        );
        let config = crate::config::load(&dir.path().join("camsync.yaml"), &|_| None).unwrap();
        let source = Source::new(&config);

        let first = source.load().await.unwrap();
        let again = source.load().await.unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "an unchanged re-read is shared"
        );

        write(
            &cameras,
            &format!("{one}  - name: b\n    url: rtsp://127.0.0.1/b\n"),
        );
        let changed = source.load().await.unwrap();
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_eq!(
            changed.cameras.keys().collect::<Vec<_>>(),
            ["a", "b"],
            "the added entry is read"
        );
        write(&cameras, one);
        assert_eq!(source.load().await.unwrap().cameras.len(), 1);
    }

    #[tokio::test]
    async fn a_camera_is_validated_again_only_when_its_record_or_password_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cameras = dir.path().join("cameras.yaml");
        let entry = |url: &str| {
            format!("  - name: a\n    url: {url}\n    username: u\n    password_file: pw\n")
        };
        let b = "  - name: b\n    url: rtsp://127.0.0.1/b\n";
        write(&dir.path().join("pw"), "first");
        write(
            &cameras,
            &format!("cameras:\n{}{b}", entry("rtsp://127.0.0.1/a")),
        );
        write(
            &dir.path().join("camsync.yaml"),
            "source:\n  file: cameras.yaml\ntargets:\n  - name: g\n    kind: go2rtc\n    api: http://127.0.0.1:1984\n",
        );
        let config = crate::config::load(&dir.path().join("camsync.yaml"), &|_| None).unwrap();
        let source = Source::new(&config);
        let exposed = |inventory: &Inventory| inventory.cameras["a"].sources[0].expose();

        let first = source.load().await.unwrap();
        assert_eq!(exposed(&first), "rtsp://u:first@127.0.0.1/a");

        // Another camera changes: `a` is the very same camera, not validated again.
        write(
            &cameras,
            &format!(
                "cameras:\n{}{}",
                entry("rtsp://127.0.0.1/a"),
                b.replace("/b", "/b2")
            ),
        );
        let second = source.load().await.unwrap();
        assert!(Arc::ptr_eq(&first.cameras["a"], &second.cameras["a"]));
        assert_ne!(first.cameras["b"], second.cameras["b"]);

        // Its password file changes, its record does not: the new password is used.
        write(&dir.path().join("pw"), "second");
        write(
            &cameras,
            &format!("cameras:\n{}{b}", entry("rtsp://127.0.0.1/a")),
        );
        let third = source.load().await.unwrap();
        assert_eq!(exposed(&third), "rtsp://u:second@127.0.0.1/a");

        // Its record changes back to an earlier URL: validated again, not an older copy.
        write(
            &cameras,
            &format!("cameras:\n{}{b}", entry("rtsp://127.0.0.1/a2")),
        );
        let fourth = source.load().await.unwrap();
        assert_eq!(exposed(&fourth), "rtsp://u:second@127.0.0.1/a2");

        // A read that fails keeps what the last good read validated.
        write(&cameras, "cameras: [");
        assert!(source.load().await.is_err());
        write(
            &cameras,
            &format!("cameras:\n{}{b}", entry("rtsp://127.0.0.1/a2")),
        );
        let fifth = source.load().await.unwrap();
        assert!(Arc::ptr_eq(&fourth.cameras["a"], &fifth.cameras["a"]));
    }
}

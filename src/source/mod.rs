//! Camera sources: where the desired inventory comes from.
//!
//! A source yields records; [`validate_records`] turns them into an [`Inventory`] in which each
//! bad record is rejected on its own (with its name or position and the reason) while the valid
//! rest stands. A source that cannot be read at all is a [`SourceError`]: callers keep the last
//! good inventory and delete nothing.

pub mod file;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::camera::{Camera, CameraError, CameraSpec, ValidationContext};

/// The desired state: valid cameras by name, and the records that were rejected.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub cameras: BTreeMap<String, Camera>,
    pub rejected: Vec<Rejection>,
}

/// One record that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    /// The camera's name, or `#N` (1-based position) when it has none.
    pub camera: String,
    /// Where the record is, e.g. `cameras.yaml:12`.
    pub location: String,
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read camera inventory {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("camera inventory {path}: {message}; the last good inventory stays in force")]
    Parse { path: PathBuf, message: String },
    #[error("cannot watch camera inventory {path}: {message}")]
    Watch { path: PathBuf, message: String },
}

/// A record as read: where it is, the name if one could be read, and the spec or why not.
pub struct Record {
    pub location: String,
    pub name: Option<String>,
    pub spec: Result<CameraSpec, String>,
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
        };
        let result = record
            .spec
            .map_err(|e| format!("camera {label:?}: {e}"))
            .and_then(|spec| spec.validate(ctx).map_err(|e| e.to_string()));
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

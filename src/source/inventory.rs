//! The desired state as read: the valid cameras by name, and the records that were rejected.

use std::collections::BTreeSet;

use crate::camera::Cameras;

/// The desired state: valid cameras by name, and the records that were rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub cameras: Cameras,
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
    /// The camera was valid at the last read: its last good version stays in force (on the
    /// servers, and in the inventory's cameras) until the record is fixed.
    pub kept: bool,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)?;
        if self.kept {
            f.write_str(" (its last good version stays in force)")?;
        }
        Ok(())
    }
}

impl Inventory {
    /// The cameras assigned to `target` whose URL is not resolved yet.
    pub fn awaiting_source(&self, target: &str) -> BTreeSet<String> {
        self.cameras
            .values()
            .filter(|c| c.awaits_source(target))
            .map(|c| c.name.clone())
            .collect()
    }

    /// Puts back the version in `last_good` of each camera that is rejected now and has no
    /// valid record: a camera that was valid and becomes invalid is kept, not deleted.
    pub(super) fn keep_last_good(&mut self, last_good: &Cameras) {
        for rejection in &mut self.rejected {
            if self.cameras.contains_key(&rejection.camera) {
                continue; // a duplicate: the first record stands
            }
            if let Some(camera) = last_good.get(&rejection.camera) {
                self.cameras
                    .insert(rejection.camera.clone(), camera.clone());
                rejection.kept = true;
            }
        }
    }
}

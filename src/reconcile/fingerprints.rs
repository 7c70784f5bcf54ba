//! A target's fingerprints of its cameras: what the target would be sent for each camera (a
//! rendering and an HMAC), kept with the camera record it came from.
//!
//! An inventory re-read shares the record of an unchanged camera, so its fingerprint is not
//! computed again. [`Fingerprints::prepare`] runs when an inventory is published, before any
//! item works from it: a whole-target item then only looks fingerprints up, and a recovery
//! asked for meanwhile does not wait for thousands of renderings.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::camera::Camera;
use crate::ledger::{Fingerprint, Ledger};
use crate::source::Inventory;
use crate::target::Target;

pub struct Fingerprints {
    target: Arc<dyn Target>,
    ledger: Arc<Ledger>,
    known: Mutex<HashMap<String, (Arc<Camera>, Fingerprint)>>,
}

impl Fingerprints {
    pub fn new(target: Arc<dyn Target>, ledger: Arc<Ledger>) -> Fingerprints {
        Fingerprints {
            target,
            ledger,
            known: Mutex::default(),
        }
    }

    fn known(&self) -> MutexGuard<'_, HashMap<String, (Arc<Camera>, Fingerprint)>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fingerprint of what the target would be sent for `camera`.
    pub fn of(&self, camera: &Arc<Camera>) -> Fingerprint {
        if let Some((from, fingerprint)) = self.known().get(&camera.name)
            && Arc::ptr_eq(from, camera)
        {
            return fingerprint.clone();
        }
        // Rendered without the lock: a worker's item looking up another camera need not wait.
        let fingerprint = self.ledger.fingerprint(&self.target.render(camera));
        self.known()
            .insert(camera.name.clone(), (camera.clone(), fingerprint.clone()));
        fingerprint
    }

    /// The fingerprint of every camera of `inventory` that wants this target.
    pub fn desired(&self, inventory: &Inventory) -> BTreeMap<String, Fingerprint> {
        inventory
            .cameras
            .values()
            .filter(|c| c.wants_target(self.target.name()))
            .map(|c| (c.name.clone(), self.of(c)))
            .collect()
    }

    /// Computes what `inventory` changed, and forgets the cameras it no longer has here, so the
    /// map stays the inventory's size.
    pub fn prepare(&self, inventory: &Inventory) {
        let desired = self.desired(inventory);
        self.known().retain(|name, _| desired.contains_key(name));
    }
}

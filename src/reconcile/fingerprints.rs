//! A target's fingerprints of its cameras: what the target would be sent for each camera (a
//! rendering and an HMAC), kept with the camera record it came from.
//!
//! An inventory re-read shares the record of an unchanged camera, so its fingerprint is not
//! computed again. [`Fingerprints::prepare`] runs when an inventory is published, before any
//! item works from it, and keeps the inventory's whole map: a whole-target item then takes it
//! as it is, and a recovery asked for meanwhile does not wait for thousands of renderings or
//! lookups.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::camera::Camera;
use crate::ledger::{Fingerprint, Ledger};
use crate::lock::lock;
use crate::source::Inventory;
use crate::target::Target;

pub struct Fingerprints {
    target: Arc<dyn Target>,
    ledger: Arc<Ledger>,
    known: Mutex<HashMap<String, (Arc<Camera>, Fingerprint)>>,
    /// The inventory last prepared, with its map.
    prepared: Mutex<Option<(Arc<Inventory>, Desired)>>,
}

/// Every camera that wants the target, with its fingerprint.
pub type Desired = Arc<BTreeMap<String, Fingerprint>>;

impl Fingerprints {
    pub fn new(target: Arc<dyn Target>, ledger: Arc<Ledger>) -> Fingerprints {
        Fingerprints {
            target,
            ledger,
            known: Mutex::default(),
            prepared: Mutex::default(),
        }
    }

    /// The fingerprint of what the target would be sent for `camera`.
    pub fn of(&self, camera: &Arc<Camera>) -> Fingerprint {
        if let Some((from, fingerprint)) = lock(&self.known).get(&camera.name)
            && Arc::ptr_eq(from, camera)
        {
            return fingerprint.clone();
        }
        // Rendered without the lock: a worker's item looking up another camera need not wait.
        let fingerprint = self.ledger.fingerprint(&self.target.render(camera));
        lock(&self.known).insert(camera.name.clone(), (camera.clone(), fingerprint.clone()));
        fingerprint
    }

    /// The fingerprint of every camera of `inventory` that wants this target.
    pub fn desired(&self, inventory: &Arc<Inventory>) -> Desired {
        if let Some((of, desired)) = &*lock(&self.prepared)
            && Arc::ptr_eq(of, inventory)
        {
            return desired.clone();
        }
        Arc::new(self.compute(inventory))
    }

    fn compute(&self, inventory: &Inventory) -> BTreeMap<String, Fingerprint> {
        inventory
            .cameras
            .values()
            .filter(|c| c.wants_target(self.target.name()))
            .map(|c| (c.name.clone(), self.of(c)))
            .collect()
    }

    /// Computes what `inventory` changed and keeps its map; forgets the cameras it no longer
    /// has here, so the cache stays the inventory's size.
    pub fn prepare(&self, inventory: &Arc<Inventory>) {
        let desired = self.compute(inventory);
        lock(&self.known).retain(|name, _| desired.contains_key(name));
        *lock(&self.prepared) = Some((inventory.clone(), Arc::new(desired)));
    }
}

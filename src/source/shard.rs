//! Sharding: which cameras this camsync instance serves when several instances share one
//! camera database (`shard: {index, count}` in camsync.yaml).
//!
//! Each camera belongs to exactly one of `count` shards: the one its record pins (`shard: N`),
//! else the one rendezvous (highest-random-weight) hashing of its name picks. The weight of
//! shard `i` for a camera is the first 8 bytes, big-endian, of SHA-256 over the text
//! `"{i}:{name}"`; the highest weight wins, the lowest index on a tie. The hash is fixed, so
//! every instance, machine and release computes the same assignment, and an operator can
//! reproduce it with `sha256sum` (see README, "Operating at scale").
//!
//! Invariants: the assignment depends only on the camera's name (or pin) and `count`, never on
//! the order of the records; going from N to N+1 shards moves a camera only to the new shard
//! (about 1/(N+1) of them), and going back moves only the last shard's cameras. Pure, no I/O.

use sha2::{Digest, Sha256};

use super::inventory::{Inventory, Rejection};
use crate::camera::Camera;
use crate::config::Shard;

/// The weight of shard `index` for the camera `name`.
pub fn weight(name: &str, index: u32) -> u64 {
    let digest = Sha256::digest(format!("{index}:{name}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The shard, out of `count`, that rendezvous hashing gives the camera `name`.
pub fn owner(name: &str, count: u32) -> u32 {
    let mut best = (0, weight(name, 0));
    for index in 1..count {
        let w = weight(name, index);
        if w > best.1 {
            best = (index, w);
        }
    }
    best.0
}

/// The shard a camera belongs to: its pin, else its name's rendezvous owner.
pub fn shard_of(camera: &Camera, count: u32) -> u32 {
    camera.shard.unwrap_or_else(|| owner(&camera.name, count))
}

/// Keeps the cameras of this instance's shard; with no `shard` (not sharded) everything, and
/// pins are ignored. A camera pinned to a shard that does not exist is rejected, in every shard,
/// so the problem is seen wherever `camsync check` runs. Rejected records stay too: the database
/// is shared, and each instance reports what it could not read.
pub fn select(mut inventory: Inventory, shard: Option<&Shard>) -> Inventory {
    let Some(shard) = shard else {
        return inventory;
    };
    let total = inventory.cameras.len();
    let mut misplaced = Vec::new();
    inventory.cameras.retain(|name, camera| match camera.shard {
        Some(pin) if pin >= shard.count => {
            misplaced.push(Rejection {
                camera: name.clone(),
                location: shard.origin.clone(),
                reason: format!(
                    "camera {name:?}: pinned to shard {pin} (its `shard` field), but `shard.count` \
                     is {} (shards 0 to {}); pin it to one of those or remove the pin",
                    shard.count,
                    shard.count - 1
                ),
                kept: false,
            });
            false
        }
        _ => shard_of(camera, shard.count) == shard.index,
    });
    tracing::debug!(
        shard = shard.index,
        count = shard.count,
        selected = inventory.cameras.len(),
        of = total,
        "cameras of this shard"
    );
    inventory.rejected.extend(misplaced);
    inventory
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::camera::ValidationContext;
    use crate::config::TargetKind;
    use crate::profile::Profiles;
    use crate::source::{Record, validate_records};

    fn names(n: usize) -> Vec<String> {
        // Names as sites write them: a prefix, a site and a number.
        (0..n)
            .map(|i| format!("site{}/cam-{i:05}", i % 37))
            .collect()
    }

    fn camera(name: &str, pin: Option<u32>) -> Camera {
        Camera {
            shard: pin,
            ..Camera::example(name, "rtsp://192.0.2.1/x")
        }
    }

    fn inventory(names: &[String]) -> Inventory {
        Inventory {
            cameras: names
                .iter()
                .map(|n| (n.clone(), Arc::new(camera(n, None))))
                .collect(),
            rejected: Vec::new(),
        }
    }

    fn shard(index: u32, count: u32) -> Shard {
        Shard {
            index,
            count,
            origin: "camsync.yaml:9".into(),
        }
    }

    fn selected(inv: &Inventory, index: u32, count: u32) -> Vec<String> {
        select(inv.clone(), Some(&shard(index, count)))
            .cameras
            .into_keys()
            .collect()
    }

    /// The weights are fixed forever: changing them would move every camera of every sharded
    /// deployment on upgrade. These values are `printf '%s' "0:front_door" | sha256sum` etc.
    #[test]
    fn the_hash_is_the_documented_one() {
        assert_eq!(weight("front_door", 0), 0xf5df_23fc_a787_e6a1);
        assert_eq!(weight("front_door", 1), 0xffde_fc15_e50c_9d12);
        assert_eq!(owner("front_door", 2), 1);
    }

    #[test]
    fn every_camera_is_in_exactly_one_shard() {
        let all = names(2_000);
        let inv = inventory(&all);
        for count in 1..=7 {
            let mut seen: BTreeMap<String, u32> = BTreeMap::new();
            for index in 0..count {
                for name in selected(&inv, index, count) {
                    assert!(
                        seen.insert(name.clone(), index).is_none(),
                        "{name} is in two shards of {count}"
                    );
                }
            }
            assert_eq!(
                seen.len(),
                all.len(),
                "count {count}: a camera is in no shard"
            );
        }
    }

    #[test]
    fn the_assignment_does_not_depend_on_the_order_of_the_records() {
        let all = names(500);
        let targets: BTreeMap<String, TargetKind> =
            [("go2rtc".to_string(), TargetKind::Go2rtc)].into();
        let profiles = Profiles::builtin();
        let env = |_: &str| None;
        let ctx = ValidationContext::new(std::path::Path::new("."), &targets, &profiles, &env);
        let records = |order: &[String]| -> Vec<Record> {
            order
                .iter()
                .enumerate()
                .map(|(i, name)| Record {
                    location: format!("cameras.yaml:{i}"),
                    name: Some(name.clone()),
                    spec: serde_json::from_value(serde_json::json!({
                        "name": name, "url": "rtsp://192.0.2.1/x"
                    }))
                    .map(Arc::new)
                    .map_err(|e| e.to_string()),
                })
                .collect()
        };
        let mut reversed = all.clone();
        reversed.reverse();
        // A fixed shuffle: every 7th name first, then the rest.
        let mut shuffled: Vec<String> = all.iter().step_by(7).cloned().collect();
        shuffled.extend(
            all.iter()
                .enumerate()
                .filter(|(i, _)| i % 7 != 0)
                .map(|(_, n)| n.clone()),
        );
        for index in 0..3 {
            let pick =
                |order: &[String]| selected(&validate_records(records(order), &ctx), index, 3);
            let expected = pick(&all);
            assert!(!expected.is_empty());
            assert_eq!(pick(&reversed), expected);
            assert_eq!(pick(&shuffled), expected);
        }
    }

    /// Rendezvous hashing moves a camera from N to N+1 shards exactly when the new shard's
    /// weight beats all N old ones: probability 1/(N+1) per camera, so over `n` names the count
    /// moved is Binomial(n, 1/(N+1)) around n/(N+1), with standard deviation
    /// sqrt(n·p·(1-p)) (≤ 50 for n = 10,000). The tolerance is 5 standard deviations: a correct
    /// implementation with a good hash lands outside it with probability below 1e-6 (and the
    /// hash is deterministic, so the test cannot flake), while `hash % count` — the usual
    /// mistake — moves about N/(N+1) of the cameras and fails by thousands.
    #[test]
    fn growing_by_one_shard_moves_the_minimum_and_only_to_the_new_shard() {
        let n = 10_000;
        let all = names(n);
        for count in 1..=8u32 {
            let before: Vec<u32> = all.iter().map(|c| owner(c, count)).collect();
            let after: Vec<u32> = all.iter().map(|c| owner(c, count + 1)).collect();
            let mut moved = 0usize;
            for (b, a) in before.iter().zip(&after) {
                if b != a {
                    assert_eq!(*a, count, "a camera moved between two old shards");
                    moved += 1;
                }
            }
            let p = 1.0 / f64::from(count + 1);
            let expected = n as f64 * p;
            let sigma = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (moved as f64 - expected).abs() <= 5.0 * sigma,
                "{count} -> {}: {moved} of {n} moved, expected {expected:.0} ± {:.0}",
                count + 1,
                5.0 * sigma
            );
            // Balance, by the same argument: each shard holds Binomial(n, 1/count).
            let q = 1.0 / f64::from(count);
            let spread = 5.0 * (n as f64 * q * (1.0 - q)).sqrt();
            for index in 0..count {
                let held = before.iter().filter(|s| **s == index).count() as f64;
                assert!(
                    (held - n as f64 * q).abs() <= spread,
                    "shard {index} of {count} holds {held}"
                );
            }
        }
    }

    #[test]
    fn a_pinned_camera_stays_in_its_shard_whatever_the_count() {
        let mut inv = inventory(&names(50));
        // A name that hashes to shard 0 of 3, pinned to 2.
        let name = names(50)
            .into_iter()
            .find(|n| owner(n, 3) == 0 && owner(n, 4) == 0)
            .unwrap();
        inv.cameras
            .insert(name.clone(), Arc::new(camera(&name, Some(2))));
        for count in [3, 4] {
            assert!(selected(&inv, 2, count).contains(&name));
            for index in (0..count).filter(|i| *i != 2) {
                assert!(!selected(&inv, index, count).contains(&name));
            }
        }
        // Not sharded: every camera, pins ignored.
        assert_eq!(select(inv.clone(), None).cameras.len(), 50);
    }

    #[test]
    fn a_pin_beyond_the_count_is_rejected_in_every_shard_with_the_reason() {
        let mut inv = inventory(&names(3));
        inv.cameras
            .insert("lobby".into(), Arc::new(camera("lobby", Some(5))));
        for index in 0..3 {
            let out = select(inv.clone(), Some(&shard(index, 3)));
            assert!(!out.cameras.contains_key("lobby"));
            let r = &out.rejected[0];
            assert_eq!(
                (r.camera.as_str(), r.location.as_str()),
                ("lobby", "camsync.yaml:9")
            );
            assert!(
                r.reason.contains("shard 5") && r.reason.contains("0 to 2"),
                "{}",
                r.reason
            );
        }
    }
}

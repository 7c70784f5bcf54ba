//! The plan: desired + ledger + observed ⇒ one action per stream name. Pure, no I/O.
//!
//! | desired | owned | on server | action                                   |
//! |---------|-------|-----------|------------------------------------------|
//! | yes     | no    | no        | create                                   |
//! | yes     | no    | yes       | adopt (overwrite with ours, then owned)  |
//! | yes     | yes   | no        | create (the server lost it)              |
//! | yes     | yes   | yes       | update if the fingerprint differs or the last write is unconfirmed, else unchanged |
//! | no      | yes   | yes       | delete (hold, while the inventory has rejected entries or the camera waits for its URL) |
//! | no      | yes   | no        | forget (drop from the ledger, no call)   |
//! | no      | no    | yes       | nothing: not ours                        |
//!
//! An inventory with rejected entries is not trusted to say what is gone: a half-saved file
//! reads as its first cameras plus one broken entry, and a typo in one camera must not take
//! the others down. Its deletions are held until the inventory is whole again. A camera whose
//! stream URL is resolved at run time (Nest) and not resolved yet is neither written nor
//! deleted: what was on the server stays until the URL is known.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::ledger::{Fingerprint, Owned};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Adopt,
    Update,
    Delete,
    /// A stream re-registered to recover it (a health verdict or a forced reconnect).
    Recover,
    /// A deletion held back because the inventory has rejected entries.
    Hold,
    Forget,
    Unchanged,
}

impl Action {
    /// The name used in reports, events and metrics (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Adopt => "adopt",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Recover => "recover",
            Action::Hold => "hold",
            Action::Forget => "forget",
            Action::Unchanged => "unchanged",
        }
    }

    /// Whether the action calls the server.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Action::Create | Action::Adopt | Action::Update | Action::Delete | Action::Recover
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub action: Action,
    pub reason: &'static str,
    /// What the stream should look like afterwards (none for delete/forget).
    pub fingerprint: Option<Fingerprint>,
}

/// Deletions the guard refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MassDelete {
    pub deletes: usize,
    pub owned: usize,
}

impl MassDelete {
    pub fn explain(&self, target: &str) -> String {
        format!(
            "refusing to delete {} of the {} streams camsync owns on target {target:?} (more than half); \
             an empty or broken camera inventory must not wipe a server. If this is intended, run with \
             --allow-mass-delete (or set `allow_mass_delete: true`)",
            self.deletes, self.owned
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPlan {
    pub target: String,
    /// Sorted: writes that add or change streams first, then deletions, then the rest.
    pub steps: Vec<Step>,
    /// Set when the plan deletes too much; such a plan is not applied.
    pub refused: Option<MassDelete>,
}

impl TargetPlan {
    pub fn count(&self, action: Action) -> usize {
        self.steps.iter().filter(|s| s.action == action).count()
    }
}

/// What the plan may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletePolicy<'a> {
    /// Delete even more than half of what camsync owns (`--allow-mass-delete`).
    pub allow_mass_delete: bool,
    /// Hold every deletion: the inventory has rejected entries.
    pub hold: bool,
    /// Streams whose camera waits for its URL to be resolved: held too.
    pub awaiting: &'a BTreeSet<String>,
}

/// Why a deletion is held, if it is.
pub fn held(hold_all: bool, awaiting_source: bool) -> Option<&'static str> {
    if awaiting_source {
        Some("not deleted: the camera waits for its stream URL to be resolved")
    } else if hold_all {
        Some("not deleted: the inventory has rejected entries; deletions wait until they are fixed")
    } else {
        None
    }
}

pub fn plan_target(
    target: &str,
    desired: &BTreeMap<String, Fingerprint>,
    owned: &Owned,
    observed: &BTreeSet<String>,
    deletes: DeletePolicy<'_>,
) -> TargetPlan {
    let names: BTreeSet<&String> = desired.keys().chain(owned.keys()).collect();
    let mut steps: Vec<Step> = names
        .into_iter()
        .map(|name| {
            step_for(
                name,
                desired.get(name),
                owned.get(name),
                observed.contains(name),
                held(deletes.hold, deletes.awaiting.contains(name)),
            )
        })
        .collect();
    steps.sort_by_key(|s| match s.action {
        Action::Create | Action::Adopt | Action::Update | Action::Recover => 0,
        Action::Delete => 1,
        Action::Hold | Action::Forget | Action::Unchanged => 2,
    });
    let deleting = steps.iter().filter(|s| s.action == Action::Delete).count();
    let owned_on_server = owned.keys().filter(|n| observed.contains(*n)).count();
    TargetPlan {
        target: target.to_owned(),
        steps,
        refused: mass_delete(deleting, owned_on_server, deletes.allow_mass_delete),
    }
}

/// The one stream `name`: what it should be (`desired`), what the ledger says camsync owns
/// (`owned`: `Some(None)` for an unconfirmed write) and whether the server has it.
pub fn step_for(
    name: &str,
    desired: Option<&Fingerprint>,
    owned: Option<&Option<Fingerprint>>,
    on_server: bool,
    hold: Option<&'static str>,
) -> Step {
    let (action, reason) = match (desired, owned) {
        (Some(_), None) if on_server => (Action::Adopt, "already on the server; taking it over"),
        (Some(_), None) => (Action::Create, "new camera"),
        (Some(_), Some(_)) if !on_server => (Action::Create, "missing on the server"),
        (Some(_), Some(None)) => (Action::Update, "last write was not confirmed"),
        (Some(want), Some(Some(have))) if want != have => (Action::Update, "camera changed"),
        (Some(_), Some(Some(_))) => (Action::Unchanged, "up to date"),
        (None, _) if on_server && let Some(why) = hold => (Action::Hold, why),
        (None, _) if on_server => (Action::Delete, "no longer in the inventory"),
        (None, _) => (Action::Forget, "already gone from the server"),
    };
    Step {
        name: name.to_owned(),
        action,
        reason,
        fingerprint: desired.cloned(),
    }
}

/// The guard: deleting more than half of the `owned` streams on a server, or all of them, is
/// refused unless allowed.
pub fn mass_delete(deletes: usize, owned: usize, allowed: bool) -> Option<MassDelete> {
    let too_many = deletes > 0 && (deletes * 2 > owned || deletes == owned);
    (too_many && !allowed).then_some(MassDelete { deletes, owned })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE_AWAITING: &BTreeSet<String> = &BTreeSet::new();
    const GUARDED: DeletePolicy = DeletePolicy {
        allow_mass_delete: false,
        hold: false,
        awaiting: NONE_AWAITING,
    };
    const ALLOWED: DeletePolicy = DeletePolicy {
        allow_mass_delete: true,
        hold: false,
        awaiting: NONE_AWAITING,
    };

    fn fp(s: &str) -> Fingerprint {
        Fingerprint(s.into())
    }

    fn actions(plan: &TargetPlan) -> Vec<(&str, Action)> {
        let mut v: Vec<_> = plan
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.action))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_row_of_the_table() {
        let desired: BTreeMap<String, Fingerprint> = [
            ("new", "a"),
            ("adopt", "a"),
            ("lost", "a"),
            ("unconfirmed", "a"),
            ("changed", "b"),
            ("same", "a"),
        ]
        .into_iter()
        .map(|(n, f)| (n.to_string(), fp(f)))
        .collect();
        let owned: Owned = [
            ("lost", Some(fp("a"))),
            ("unconfirmed", None),
            ("changed", Some(fp("a"))),
            ("same", Some(fp("a"))),
            ("removed", Some(fp("a"))),
            ("gone", Some(fp("a"))),
            ("keep1", Some(fp("a"))),
            ("keep2", Some(fp("a"))),
        ]
        .into_iter()
        .map(|(n, f)| (n.to_string(), f))
        .collect();
        let observed: BTreeSet<String> = [
            "adopt",
            "unconfirmed",
            "changed",
            "same",
            "removed",
            "users_own",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let mut desired = desired;
        desired.insert("keep1".into(), fp("a"));
        desired.insert("keep2".into(), fp("a"));
        let plan = plan_target("g", &desired, &owned, &observed, GUARDED);
        assert_eq!(
            actions(&plan),
            [
                ("adopt", Action::Adopt),
                ("changed", Action::Update),
                ("gone", Action::Forget),
                ("keep1", Action::Create),
                ("keep2", Action::Create),
                ("lost", Action::Create),
                ("new", Action::Create),
                ("removed", Action::Delete),
                ("same", Action::Unchanged),
                ("unconfirmed", Action::Update),
            ]
        );
        assert!(!plan.steps.iter().any(|s| s.name == "users_own"));
        assert_eq!(plan.refused, None);
        let first_delete = plan
            .steps
            .iter()
            .position(|s| s.action == Action::Delete)
            .unwrap();
        assert!(
            plan.steps[..first_delete]
                .iter()
                .all(|s| s.action != Action::Unchanged)
        );
    }

    fn owned_and_observed(n: usize) -> (Owned, BTreeSet<String>) {
        let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        (
            names.iter().map(|n| (n.clone(), Some(fp("a")))).collect(),
            names.into_iter().collect(),
        )
    }

    fn keep(n: usize) -> BTreeMap<String, Fingerprint> {
        (0..n).map(|i| (format!("c{i}"), fp("a"))).collect()
    }

    #[test]
    fn the_guard_refuses_deleting_more_than_half_or_everything() {
        let (owned, observed) = owned_and_observed(4);
        // Half is allowed.
        assert_eq!(
            plan_target("g", &keep(2), &owned, &observed, GUARDED).refused,
            None
        );
        // More than half is not.
        let plan = plan_target("g", &keep(1), &owned, &observed, GUARDED);
        assert_eq!(
            plan.refused,
            Some(MassDelete {
                deletes: 3,
                owned: 4
            })
        );
        assert!(
            plan.refused
                .unwrap()
                .explain("g")
                .contains("--allow-mass-delete")
        );
        // An empty inventory is not.
        assert!(
            plan_target("g", &keep(0), &owned, &observed, GUARDED)
                .refused
                .is_some()
        );
        // All of one owned stream is not.
        let (one, one_seen) = owned_and_observed(1);
        assert!(
            plan_target("g", &keep(0), &one, &one_seen, GUARDED)
                .refused
                .is_some()
        );
        // Unless allowed.
        assert_eq!(
            plan_target("g", &keep(0), &owned, &observed, ALLOWED).refused,
            None
        );
    }

    #[test]
    fn nothing_to_delete_is_never_refused() {
        let (owned, _) = owned_and_observed(4);
        // The server forgot everything (restart): recreate, and forgets are not deletes.
        let plan = plan_target("g", &keep(0), &owned, &BTreeSet::new(), GUARDED);
        assert_eq!(plan.refused, None);
        assert_eq!(plan.count(Action::Forget), 4);
    }

    #[test]
    fn an_inventory_with_rejected_entries_deletes_nothing_but_still_adds_and_updates() {
        let (owned, observed) = owned_and_observed(10);
        let mut desired = keep(6);
        desired.insert("c0".into(), fp("changed"));
        desired.insert("new".into(), fp("a"));
        let hold = DeletePolicy {
            allow_mass_delete: true,
            hold: true,
            awaiting: NONE_AWAITING,
        };
        let plan = plan_target("g", &desired, &owned, &observed, hold);
        assert_eq!(plan.count(Action::Delete), 0);
        assert_eq!(plan.count(Action::Hold), 4);
        assert_eq!(plan.count(Action::Update), 1);
        assert_eq!(plan.count(Action::Create), 1);
        assert_eq!(plan.refused, None);
    }

    #[test]
    fn action_names_are_the_serialized_names() {
        for action in [
            Action::Create,
            Action::Adopt,
            Action::Update,
            Action::Delete,
            Action::Recover,
            Action::Hold,
            Action::Forget,
            Action::Unchanged,
        ] {
            assert_eq!(serde_json::to_value(action).unwrap(), action.name());
        }
    }
}

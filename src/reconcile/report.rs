//! What a plan or sync did, per target and stream: the `--output json` document and the human
//! table. Unchanged streams are counted, not listed.

use std::fmt::Write as _;

use serde::Serialize;

use super::plan::{Action, Step, TargetPlan};
use crate::source::Rejection;

/// The result of `camsync plan` or `camsync sync`.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// `false` for a plan (nothing was written).
    pub applied: bool,
    pub targets: Vec<TargetReport>,
    /// Camera records that were rejected; the rest was synced.
    pub rejected: Vec<Rejection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Convergence {
    /// A plan that would be applied as shown.
    Planned,
    /// Every step succeeded.
    Converged,
    /// The target could not be read, or some step failed.
    Failed,
    /// The mass-deletion guard stopped the plan; nothing was written.
    Refused,
}

impl Convergence {
    /// The name used in reports, events and metrics (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Convergence::Planned => "planned",
            Convergence::Converged => "converged",
            Convergence::Failed => "failed",
            Convergence::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: String,
    pub status: Convergence,
    pub error: Option<String>,
    pub counts: Counts,
    /// Every step except unchanged ones.
    pub steps: Vec<StepReport>,
    /// For a file target in a plan: the edit as a unified diff (empty when nothing changes).
    pub diff: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub create: usize,
    pub adopt: usize,
    pub update: usize,
    pub delete: usize,
    /// Streams re-registered to recover them.
    pub recover: usize,
    /// Deletions held back because the inventory has rejected entries.
    pub hold: usize,
    pub forget: usize,
    pub unchanged: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub stream: String,
    pub action: Action,
    pub reason: &'static str,
    pub outcome: OutcomeKind,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Planned,
    Unchanged,
    Done,
    Partial,
    Failed,
    /// Nothing to do there (the detail says why).
    Skipped,
}

impl OutcomeKind {
    /// The name used in reports, events and metrics (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            OutcomeKind::Planned => "planned",
            OutcomeKind::Unchanged => "unchanged",
            OutcomeKind::Done => "done",
            OutcomeKind::Partial => "partial",
            OutcomeKind::Failed => "failed",
            OutcomeKind::Skipped => "skipped",
        }
    }
}

/// How one step went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Planned,
    Unchanged,
    Done,
    Partial(String),
    Failed(String),
    Skipped(String),
}

impl StepReport {
    pub fn new(step: &Step, outcome: Outcome) -> StepReport {
        let (outcome, detail) = match outcome {
            Outcome::Planned => (OutcomeKind::Planned, None),
            Outcome::Unchanged => (OutcomeKind::Unchanged, None),
            Outcome::Done => (OutcomeKind::Done, None),
            Outcome::Partial(d) => (OutcomeKind::Partial, Some(d)),
            Outcome::Failed(d) => (OutcomeKind::Failed, Some(d)),
            Outcome::Skipped(d) => (OutcomeKind::Skipped, Some(d)),
        };
        StepReport {
            stream: step.name.clone(),
            action: step.action,
            reason: step.reason,
            outcome,
            detail,
        }
    }
}

impl TargetReport {
    pub fn failed(target: String, error: String) -> TargetReport {
        TargetReport {
            target,
            status: Convergence::Failed,
            error: Some(error),
            counts: Counts::default(),
            steps: Vec::new(),
            diff: None,
        }
    }

    pub fn from_plan(
        plan: &TargetPlan,
        status: Convergence,
        error: Option<String>,
    ) -> TargetReport {
        let steps = plan
            .steps
            .iter()
            .map(|s| StepReport::new(s, Outcome::Planned))
            .collect();
        TargetReport::build(plan.target.clone(), status, error, steps)
    }

    pub fn applied(target: String, steps: Vec<StepReport>) -> TargetReport {
        let failed = steps.iter().any(|s| s.outcome == OutcomeKind::Failed);
        let status = if failed {
            Convergence::Failed
        } else {
            Convergence::Converged
        };
        TargetReport::build(target, status, None, steps)
    }

    pub(crate) fn build(
        target: String,
        status: Convergence,
        error: Option<String>,
        steps: Vec<StepReport>,
    ) -> TargetReport {
        let mut counts = Counts::default();
        for s in &steps {
            match s.outcome {
                OutcomeKind::Failed => {
                    counts.failed += 1;
                    continue;
                }
                OutcomeKind::Skipped => continue,
                _ => {}
            }
            *match s.action {
                Action::Create => &mut counts.create,
                Action::Adopt => &mut counts.adopt,
                Action::Update => &mut counts.update,
                Action::Delete => &mut counts.delete,
                Action::Recover => &mut counts.recover,
                Action::Hold => &mut counts.hold,
                Action::Forget => &mut counts.forget,
                Action::Unchanged => &mut counts.unchanged,
            } += 1;
        }
        TargetReport {
            target,
            status,
            error,
            counts,
            steps: steps
                .into_iter()
                .filter(|s| s.action != Action::Unchanged)
                .collect(),
            diff: None,
        }
    }
}

impl SyncReport {
    /// Whether every target converged (or would) and no camera was rejected.
    pub fn ok(&self) -> bool {
        self.rejected.is_empty()
            && self
                .targets
                .iter()
                .all(|t| matches!(t.status, Convergence::Converged | Convergence::Planned))
    }

    /// The human table.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for t in &self.targets {
            let c = &t.counts;
            let verb = if self.applied { "" } else { "would " };
            let status = match t.status {
                Convergence::Planned => "plan",
                Convergence::Converged => "converged",
                Convergence::Failed => "FAILED",
                Convergence::Refused => "REFUSED",
            };
            let _ = writeln!(
                out,
                "target {}: {status} — {verb}create {}, adopt {}, update {}, delete {}; {} unchanged{}{}",
                t.target,
                c.create,
                c.adopt,
                c.update,
                c.delete,
                c.unchanged,
                if c.hold > 0 {
                    format!(", {} deletion(s) held", c.hold)
                } else {
                    String::new()
                },
                if c.failed > 0 {
                    format!(", {} failed", c.failed)
                } else {
                    String::new()
                },
            );
            if let Some(e) = &t.error {
                let _ = writeln!(out, "  error: {e}");
            }
            for s in &t.steps {
                let mark = match s.action {
                    Action::Create | Action::Adopt => '+',
                    Action::Update | Action::Recover => '~',
                    Action::Delete => '-',
                    Action::Hold => '!',
                    Action::Forget | Action::Unchanged => ' ',
                };
                let _ = write!(
                    out,
                    "  {mark} {:<8} {:<24} {}",
                    s.action.name(),
                    s.stream,
                    s.reason
                );
                match (&s.outcome, &s.detail) {
                    (OutcomeKind::Failed, Some(d)) => {
                        let _ = write!(out, "  FAILED: {d}");
                    }
                    (OutcomeKind::Partial | OutcomeKind::Skipped, Some(d)) => {
                        let _ = write!(out, "  ({d})");
                    }
                    _ => {}
                }
                out.push('\n');
            }
            if let Some(diff) = t.diff.as_deref().filter(|d| !d.is_empty()) {
                for line in diff.lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
        for r in &self.rejected {
            let _ = writeln!(out, "rejected {r}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_the_serialized_names() {
        for status in [
            Convergence::Planned,
            Convergence::Converged,
            Convergence::Failed,
            Convergence::Refused,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.name());
        }
    }

    #[test]
    fn outcome_names_are_the_serialized_names() {
        for outcome in [
            OutcomeKind::Planned,
            OutcomeKind::Unchanged,
            OutcomeKind::Done,
            OutcomeKind::Partial,
            OutcomeKind::Failed,
            OutcomeKind::Skipped,
        ] {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.name());
        }
    }
}

//! Zuul-style speculative gating (`concurrency.policy: Gate`), the queue's
//! rules without the stages: where a run stands in its queue, what its try
//! must be tested on, and what the gate decides for it. Pure.
//!
//! The runs of a group in one namespace, in creation order, form the queue.
//! Each run is one change, tested on top of the undecided changes ahead of
//! it (`ahead`); merged changes are part of the base. The rules:
//! - a try is valid while what it was tested on, less what merged since,
//!   is exactly what is undecided ahead now; a change ahead that was
//!   rejected, cancelled or deleted (or one that appeared ahead) makes it
//!   invalid: the run is reset and tested again on what is ahead now;
//! - a run whose try failed is rejected only at the head of the queue
//!   (everything ahead merged); until then it waits, and is retried if a
//!   change ahead is rejected;
//! - a run whose try passed merges at the head: its merge stages run then
//!   (without any, reaching the head is the merge);
//! - only the first `window` runs of the queue start a try; the window
//!   grows by one after each merge and halves after each rejection, down to
//!   a floor of 3 (or the configured window, when smaller).

use chrono::{DateTime, Utc};

use crate::api::pipelinerun::{GateChange, GateStatus, GateVerdict};

/// The window when the spec sets none.
pub const DEFAULT_WINDOW: u32 = 20;
/// The smallest window a run of rejections shrinks it to.
pub const WINDOW_FLOOR: u32 = 3;
/// The largest window a spec may set.
pub const MAX_WINDOW: u32 = 1000;

/// Another run of the queue, as its status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRun {
    /// Its name.
    pub name: String,
    /// Its `spec.source.revision`.
    pub revision: Option<String>,
    /// Where it stands.
    pub standing: Standing,
    /// When it was merged or rejected.
    pub decided_at: Option<DateTime<Utc>>,
}

/// Whether a run is still in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Undecided: queued, testing, passed or failing.
    Undecided,
    /// Merged: part of the base for everything behind it.
    Merged,
    /// Rejected.
    Rejected,
    /// Out of the queue without a verdict: cancelled.
    Withdrawn,
}

/// How the current try of this run went, from its stages (merge stages
/// aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryOutcome {
    /// Stages are still running or waiting.
    Running,
    /// Every stage passed.
    Passed,
    /// A gating stage failed.
    Failed,
}

/// How this run's merge stages went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The run has no merge stages: reaching the head is the merge.
    NoMergeStages,
    /// Not started, or running.
    Unfinished,
    /// Every merge stage succeeded.
    Succeeded,
    /// A merge stage failed.
    Failed,
}

/// What the gate decides for this run now.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Undecided runs ahead.
    pub position: u32,
    /// The undecided runs ahead, in queue order: what a new try is tested on.
    pub ahead: Vec<GateChange>,
    /// The window in effect.
    pub window: u32,
    /// What to do.
    pub step: Step,
}

/// What the planner does for a gated run.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Outside the window: start nothing (a run whose try became invalid
    /// stops it first).
    Wait { reset: bool },
    /// Start a try on `Decision::ahead`: the first one, or a new one after a
    /// reset (which stops the old try first).
    StartTry { reset: bool },
    /// The current try stands: go on testing.
    Test,
    /// The try failed while runs ahead are undecided: wait for them.
    FailedWaiting,
    /// The try passed: wait for the runs ahead.
    PassedWaiting,
    /// At the head with the try passed: run the merge stages.
    Merge,
    /// Merged.
    Merged,
    /// Rejected, and why.
    Rejected(String),
}

/// The window in effect: `initial`, plus one per merge and halved per
/// rejection (not below the floor), in the order the decisions were made.
pub fn window(initial: u32, queue: &[QueuedRun]) -> u32 {
    let floor = WINDOW_FLOOR.min(initial).max(1);
    let mut decided: Vec<(DateTime<Utc>, &str, Standing)> = queue
        .iter()
        .filter_map(|r| Some((r.decided_at?, r.name.as_str(), r.standing)))
        .filter(|(_, _, s)| matches!(s, Standing::Merged | Standing::Rejected))
        .collect();
    decided.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    decided.iter().fold(initial.max(1), |w, (_, _, standing)| match standing {
        Standing::Merged => w.saturating_add(1).min(MAX_WINDOW),
        _ => (w / 2).max(floor),
    })
}

/// Decides for the run whose current gate status is `current` (None before
/// its first try). `ahead_of_me` is every other run of the queue that comes
/// before it, in queue order, whatever its standing: a merged one ahead
/// lets a try that included it stand.
pub fn decide(
    current: Option<&GateStatus>,
    ahead_of_me: &[QueuedRun],
    window: u32,
    outcome: TryOutcome,
    merge: MergeOutcome,
) -> Decision {
    let ahead: Vec<GateChange> = ahead_of_me
        .iter()
        .filter(|r| r.standing == Standing::Undecided)
        .map(|r| GateChange { run: r.name.clone(), revision: r.revision.clone() })
        .collect();
    let merged: Vec<&str> =
        ahead_of_me.iter().filter(|r| r.standing == Standing::Merged).map(|r| r.name.as_str()).collect();
    let position = u32::try_from(ahead.len()).unwrap_or(u32::MAX);
    let in_window = position < window;
    // A run sent back to the queue (its try stopped) has no try that stands.
    let tried = current.filter(|g| g.try_number > 0 && g.verdict != GateVerdict::Queued);
    let step = match tried {
        None if in_window => Step::StartTry { reset: false },
        None => Step::Wait { reset: false },
        Some(g) if !still_valid(&g.ahead, &ahead, &merged) => {
            if in_window {
                Step::StartTry { reset: true }
            } else {
                Step::Wait { reset: true }
            }
        }
        Some(_) => match (outcome, position) {
            (TryOutcome::Running, _) => Step::Test,
            (TryOutcome::Failed, 0) => Step::Rejected("failed with every change ahead of it merged".into()),
            (TryOutcome::Failed, _) => Step::FailedWaiting,
            (TryOutcome::Passed, 0) => match merge {
                MergeOutcome::NoMergeStages | MergeOutcome::Succeeded => Step::Merged,
                MergeOutcome::Unfinished => Step::Merge,
                MergeOutcome::Failed => Step::Rejected("a merge stage failed".into()),
            },
            (TryOutcome::Passed, _) => Step::PassedWaiting,
        },
    };
    Decision { position, ahead, window, step }
}

/// Whether a try tested on `tested_on` still stands when `ahead` is
/// undecided ahead now and `merged` has merged: what it was tested on, less
/// what merged, is exactly what is ahead, in the same order.
fn still_valid(tested_on: &[GateChange], ahead: &[GateChange], merged: &[&str]) -> bool {
    let unmerged = tested_on.iter().filter(|c| !merged.contains(&c.run.as_str()));
    unmerged.map(|c| &c.run).eq(ahead.iter().map(|c| &c.run))
}

/// The verdict a gated run shows for a step.
pub fn verdict_of(step: &Step) -> GateVerdict {
    match step {
        Step::Wait { .. } => GateVerdict::Queued,
        Step::StartTry { .. } | Step::Test | Step::FailedWaiting => GateVerdict::Testing,
        Step::PassedWaiting | Step::Merge => GateVerdict::Passed,
        Step::Merged => GateVerdict::Merged,
        Step::Rejected(_) => GateVerdict::Rejected,
    }
}

/// The value of `$(gate.ahead)` and `GANTRY_GATE_AHEAD`: the revisions
/// (else the run names) of the changes a try is tested on, space separated.
pub fn ahead_value(ahead: &[GateChange]) -> String {
    let names: Vec<&str> = ahead.iter().map(|c| c.revision.as_deref().unwrap_or(&c.run)).collect();
    names.join(" ")
}

#[cfg(test)]
mod tests;

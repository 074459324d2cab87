//! Step 6b: a `Gate` run's place in its queue ([`crate::engine::pipelinerun::gate`]
//! has the rules). The gate decides from the queue and from how this run's
//! try went; this step carries the decision out: a reset ends the try and
//! starts every stage again as a new try (attempt numbers go on, history
//! keeps the old try; the old try's Jobs are deleted by the next reconcile),
//! merge stages may start only at the head, and a rejection cancels what has
//! not run.

use super::{is_gating, Action, Planner, QUEUE_POLL};
use crate::api::pipelinerun::{GateChange, GateStatus, GateVerdict, StagePhase};
use crate::engine::conditions::MAX_MESSAGE_BYTES;
use crate::engine::job::JobState;
use crate::engine::note::Note;
use crate::engine::pipelinerun::events;
use crate::engine::pipelinerun::gate::{
    ahead_value, decide, verdict_of, window, MergeOutcome, Step, TryOutcome, DEFAULT_WINDOW,
};
use crate::engine::pipelinerun::view::gate_queue;
use crate::engine::text::truncate;

/// What the gate lets the rest of the passes do.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct GateControl {
    /// Start no stage (outside the window).
    pub hold: bool,
    /// Merge stages may start.
    pub merge: bool,
}

impl Planner<'_> {
    /// Decides this run's standing in its queue and carries it out.
    pub(super) fn apply_gate(&mut self) -> GateControl {
        let Some(concurrency) = self.spec.gate() else {
            return GateControl::default();
        };
        self.stop_stale_attempts();
        let queue = gate_queue(&self.observed.group, self.run.created, self.run.name);
        let window = window(concurrency.window.unwrap_or(DEFAULT_WINDOW), &queue.all);
        let decision =
            decide(self.status.gate.as_ref(), &queue.ahead, window, self.try_outcome(), self.merge_outcome());
        let mut gate = self.status.gate.clone().unwrap_or_default();
        gate.position = decision.position;
        gate.window = decision.window;
        let mut control = GateControl::default();
        let ahead_text = tested_on(&decision.ahead);
        let reason = match &decision.step {
            Step::Wait { reset } => {
                if *reset {
                    self.reset_try(&gate, "the changes ahead changed");
                }
                control.hold = true;
                format!("waiting for a place in the window ({} runs ahead, window {window})", decision.position)
            }
            Step::StartTry { reset } => {
                if *reset {
                    self.reset_try(&gate, &format!("now tested on {ahead_text}"));
                }
                gate.try_number = gate.try_number.saturating_add(1);
                gate.ahead = decision.ahead.clone();
                format!("try {} on {ahead_text}", gate.try_number)
            }
            Step::Test => format!("try {} on {}", gate.try_number, tested_on(&gate.ahead)),
            Step::FailedWaiting => format!(
                "try {} failed; waiting for the {} runs ahead to be decided",
                gate.try_number, decision.position
            ),
            Step::PassedWaiting => {
                format!("try {} passed; waiting for the {} runs ahead", gate.try_number, decision.position)
            }
            Step::Merge => {
                control.merge = true;
                format!("try {} passed at the head of the queue: merging", gate.try_number)
            }
            Step::Merged => format!("merged: try {} passed on {}", gate.try_number, tested_on(&gate.ahead)),
            Step::Rejected(why) => {
                self.cancel_merge_stages("not merged: the run was rejected");
                format!("rejected: try {} {why}", gate.try_number)
            }
        };
        let verdict = verdict_of(&decision.step);
        let was = self.status.gate.as_ref().map(|g| g.verdict);
        if verdict == GateVerdict::Merged && was != Some(GateVerdict::Merged) {
            self.notes.push(Note::normal(events::GATE_MERGED, reason.clone()));
        }
        if verdict == GateVerdict::Rejected && was != Some(GateVerdict::Rejected) {
            self.notes.push(Note::warning(events::GATE_REJECTED, reason.clone()));
        }
        gate.verdict = verdict;
        gate.reason = Some(truncate(&reason, MAX_MESSAGE_BYTES));
        self.status.gate = Some(gate);
        if !verdict.is_decided() {
            // The runs ahead decide this one's fate: look at them again soon.
            self.wake.after(QUEUE_POLL);
        }
        control
    }

    /// Deletes the Jobs still running for attempts of an earlier try, as the
    /// status read (not the one being planned) records it. A Job is deleted
    /// only once the reset that ended its attempt is written: deleted sooner,
    /// a lost status write could start the same attempt again.
    fn stop_stale_attempts(&mut self) {
        for job in &self.observed.jobs {
            let first = self.run.status.stages.iter().find(|s| s.name == job.stage).map_or(0, |s| s.first_attempt);
            if job.attempt < first && job.outcome.state == JobState::Active {
                self.actions.push(Action::DeleteJob { name: job.outcome.name.clone() });
            }
        }
    }

    /// How the current try went: its stages, merge stages aside.
    fn try_outcome(&self) -> TryOutcome {
        let tried = self.spec.stages.iter().zip(&self.status.stages).filter(|(s, _)| !s.merge);
        let mut outcome = TryOutcome::Passed;
        for (stage, status) in tried {
            if !status.phase.is_finished() {
                return TryOutcome::Running;
            }
            if is_gating(stage) && !status.phase.is_success() {
                outcome = TryOutcome::Failed;
            }
        }
        outcome
    }

    /// How the merge stages went.
    fn merge_outcome(&self) -> MergeOutcome {
        let merges: Vec<StagePhase> =
            self.spec.stages.iter().zip(&self.status.stages).filter(|(s, _)| s.merge).map(|(_, st)| st.phase).collect();
        if merges.is_empty() {
            MergeOutcome::NoMergeStages
        } else if merges.iter().any(|p| p.is_finished() && !p.is_success()) {
            MergeOutcome::Failed
        } else if merges.iter().all(|p| p.is_success()) {
            MergeOutcome::Succeeded
        } else {
            MergeOutcome::Unfinished
        }
    }

    /// Stops the current try and sets every stage back to Pending for the
    /// next one; running attempts are stopped and recorded as cancelled.
    fn reset_try(&mut self, gate: &GateStatus, why: &str) {
        let message = format!("reset after try {}: {why}", gate.try_number);
        self.notes.push(Note::normal(events::GATE_RESET, message.clone()));
        for i in 0..self.spec.stages.len() {
            let entry = &self.status.stages[i];
            // A stage waiting for its retry has its failed attempt recorded
            // already. A running attempt's Job is stopped by a later
            // reconcile (`stop_stale_attempts`), once this one's status is written.
            if entry.phase == StagePhase::Running && entry.job_name.is_some() {
                let job = self.observed.job(&entry.name, entry.attempt).cloned();
                self.record_attempt(i, job.as_ref(), StagePhase::Cancelled, Some(&message));
            }
            // Past every attempt with a Job, recorded or not (a lost status
            // write): the new try never reuses an attempt's Job name.
            let latest = self.observed.latest_attempt(&self.status.stages[i].name).unwrap_or(0);
            self.new_try(i, latest, &message);
        }
        self.status.completion_time = None;
    }

    /// Cancels the merge stages that have not run (a rejected run merges nothing).
    fn cancel_merge_stages(&mut self, why: &str) {
        for i in 0..self.spec.stages.len() {
            if self.spec.stages[i].merge && !self.status.stages[i].phase.is_finished() {
                self.stage_done(i, None, StagePhase::Cancelled, None, Some(why));
            }
        }
    }
}

/// What a try is tested on, for messages.
fn tested_on(ahead: &[GateChange]) -> String {
    if ahead.is_empty() {
        "the base".into()
    } else {
        ahead_value(ahead)
    }
}

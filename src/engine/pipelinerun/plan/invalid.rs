//! Step 1's other branch: the spec is invalid. Nothing is created; the run
//! fails with `InvalidSpec` naming the field, unless it had finished before
//! its spec became invalid, when the result it had stands.

use super::Planner;
use crate::api::pipelinerun::RunPhase;
use crate::engine::conditions::{ConditionStatus, MAX_MESSAGE_BYTES};
use crate::engine::note::Note;
use crate::engine::pipelinerun::events;
use crate::engine::pipelinerun::status::{reasons, CONDITION_SUCCEEDED};
use crate::engine::spec_error::SpecError;
use crate::engine::text::truncate;

impl Planner<'_> {
    /// Fails the run for `e` (once: the Event is not repeated), or keeps
    /// the result of a run that had finished.
    pub(super) fn invalid(&mut self, e: SpecError) {
        let finished = self.status.phase.is_some_and(RunPhase::is_finished);
        let invalid_before =
            self.status.conditions.iter().any(|c| c.type_ == CONDITION_SUCCEEDED && c.reason == reasons::INVALID_SPEC);
        if finished && !invalid_before {
            // It finished before its spec became invalid (an edit, or a
            // stricter operator after an upgrade): the result it had stands.
            if let Some(stage) = self.run.rerun {
                self.notes.push(Note::warning(events::RERUN_IGNORED, format!("rerun of \"{stage}\" ignored: {e}")));
            }
            self.clear_rerun_request();
            return self.expire_after_ttl();
        }
        if self.status.phase != Some(RunPhase::Failed) {
            self.notes.push(Note::warning(events::INVALID_SPEC, e.to_string()));
        }
        self.status.phase = Some(RunPhase::Failed);
        self.status.message = Some(truncate(&e.to_string(), MAX_MESSAGE_BYTES));
        self.status.completion_time.get_or_insert(self.now);
        self.set_succeeded(ConditionStatus::False, reasons::INVALID_SPEC, &e.to_string());
        self.clear_rerun_request();
        self.expire_after_ttl();
    }
}

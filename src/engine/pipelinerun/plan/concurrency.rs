//! Step 6: runs of one concurrency group. `Queue`: a run that has not
//! started waits while an older run of the group is unfinished.
//! `CancelRunning`: a run supersedes the older unfinished runs (they cancel
//! themselves, see `stop`). `Allow`: nothing to do. `Gate`: see `gate.rs`.

use super::{Action, Planner, QUEUE_POLL};
use crate::api::pipelinerun::{ConcurrencyPolicy, RunPhase};
use crate::engine::conditions::ConditionStatus;
use crate::engine::note::Note;
use crate::engine::pipelinerun::events;
use crate::engine::pipelinerun::status::reasons;
use crate::engine::pipelinerun::view::group_order;

/// The message of a queued run.
const QUEUED_MESSAGE: &str = "waiting for older runs of the concurrency group";

impl Planner<'_> {
    /// Applies the group's policy. Returns whether this run must wait.
    pub(super) fn apply_concurrency(&mut self) -> bool {
        let Some(concurrency) = &self.spec.concurrency else {
            return false;
        };
        let started = self.status.stages.iter().any(|s| s.attempt > 0);
        let me = group_order(self.run.created, self.status.start_time, self.run.name);
        let older: Vec<_> = self
            .observed
            .group
            .iter()
            .filter(|m| !m.finished && group_order(m.created, m.started, &m.name) < me)
            .collect();
        match concurrency.policy {
            // The gate has its own step (`gate.rs`): the queue decides per try.
            ConcurrencyPolicy::Allow | ConcurrencyPolicy::Gate => false,
            ConcurrencyPolicy::Queue => !started && !older.is_empty(),
            ConcurrencyPolicy::CancelRunning => {
                for m in older.iter().filter(|m| !m.superseded) {
                    self.actions.push(Action::Supersede { run: m.name.clone() });
                    let why = format!("cancelling older run {} of group {}", m.name, concurrency.group);
                    self.notes.push(Note::normal(events::SUPERSEDED, why));
                }
                false
            }
        }
    }

    /// After `conclude`: a run that must wait and has not finished shows
    /// `Queued`, and looks again soon.
    pub(super) fn wait_in_queue(&mut self) {
        if self.status.phase.is_some_and(RunPhase::is_finished) {
            return;
        }
        self.status.phase = Some(RunPhase::Queued);
        self.status.message = Some(QUEUED_MESSAGE.into());
        self.set_succeeded(ConditionStatus::Unknown, reasons::QUEUED, QUEUED_MESSAGE);
        self.wake.after(QUEUE_POLL);
    }
}

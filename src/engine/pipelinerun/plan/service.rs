//! Service stages: a service's Job runs until the stages that need it are
//! done. It is ready once all its pods are (its addresses become its
//! output, and the stages that need it may start); then it is torn down
//! and succeeds. A ready service a finally stage needs stays up for it.

use std::collections::BTreeMap;

use super::{Action, Planner, SERVICE_POLL};
use crate::api::pipelinerun::StagePhase;
use crate::engine::conditions::MAX_MESSAGE_BYTES;
use crate::engine::note::Note;
use crate::engine::pipelinerun::events;
use crate::engine::pipelinerun::stage_kind::{stage_kind, StageKind};
use crate::engine::pipelinerun::view::JobObservation;
use crate::engine::text::truncate;

impl Planner<'_> {
    /// A service stage is ready once all its pods are: its addresses become
    /// its output and the stages that need it may start.
    pub(super) fn integrate_service(&mut self, i: usize, job: &JobObservation, replicas: u32) {
        let entry = &mut self.status.stages[i];
        if entry.phase != StagePhase::Running || entry.ready {
            return;
        }
        if job.outcome.ready_addresses.len() < replicas as usize {
            // Pod readiness changes no Job field on older clusters (`status.ready`
            // is 1.23+), so nothing wakes the run: look again soon.
            self.wake.after(SERVICE_POLL);
            return;
        }
        entry.ready = true;
        entry.outputs = BTreeMap::from([("addresses".to_string(), job.outcome.ready_addresses.join(","))]);
        let message = format!("{replicas}/{replicas} pods ready: {}", job.outcome.ready_addresses.join(", "));
        entry.message = Some(truncate(&message, MAX_MESSAGE_BYTES));
        let (stage, job_name) = (entry.name.clone(), job.outcome.name.clone());
        let note = Note::normal(events::SERVICE_READY, format!("stage {stage}: {message}"));
        self.notes.push(note.about_stage(stage).about_job(Some(job_name)));
    }

    /// Step 10: tears down every ready service whose dependents have all
    /// finished (with none, once every other stage has): its Job is deleted
    /// and the stage succeeds.
    pub(super) fn tear_down_services(&mut self) {
        let spec = self.spec;
        for (i, stage) in spec.stages.iter().enumerate() {
            let entry = &self.status.stages[i];
            if !matches!(stage_kind(stage), StageKind::Service { .. })
                || entry.phase != StagePhase::Running
                || !entry.ready
            {
                continue;
            }
            let mut dependents =
                spec.stages.iter().enumerate().filter(|(_, s)| s.needs.contains(&stage.name)).peekable();
            let done = if dependents.peek().is_some() {
                dependents.all(|(j, _)| self.status.stages[j].phase.is_finished())
            } else {
                spec.stages.iter().enumerate().all(|(j, s)| {
                    j == i || s.finally || s.service.is_some() || self.status.stages[j].phase.is_finished()
                })
            };
            if !done {
                continue;
            }
            let job = self.observed.job(&stage.name, entry.attempt).cloned();
            if let Some(name) = entry.job_name.clone() {
                self.actions.push(Action::DeleteJob { name });
            }
            let why = "torn down: the stages that need it have finished";
            self.record_attempt(i, job.as_ref(), StagePhase::Succeeded, Some(why));
            self.stage_done(i, None, StagePhase::Succeeded, None, Some(why));
        }
    }

    /// Whether stage `i` is a service that runs and is ready.
    pub(super) fn serving(&self, i: usize) -> bool {
        let entry = &self.status.stages[i];
        self.spec.stages[i].service.is_some() && entry.phase == StagePhase::Running && entry.ready
    }

    /// Whether stage `i` is a ready service that a finally stage needs: it
    /// stays up for the finally stages (fail-fast leaves it alone too).
    pub(super) fn kept_for_finally(&self, i: usize) -> bool {
        let name = &self.spec.stages[i].name;
        self.serving(i) && self.spec.stages.iter().any(|s| s.finally && s.needs.contains(name))
    }
}

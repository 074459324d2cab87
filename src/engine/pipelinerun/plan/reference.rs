//! `imageBuild` and `kataInstall` stages run nothing: they wait for the
//! Gantry object they name, take its outputs when it is ready, fail when it
//! fails, and time out like any stage while it never comes.

use super::{Action, Planner, REFERENCE_POLL};
use crate::api::pipelinerun::StagePhase;
use crate::engine::conditions::MAX_MESSAGE_BYTES;
use crate::engine::duration::{format_duration, later};
use crate::engine::pipelinerun::launch::stage_timeout;
use crate::engine::pipelinerun::references::Referenced;
use crate::engine::pipelinerun::stage_kind::{stage_kind, StageKind};
use crate::engine::text::truncate;

impl Planner<'_> {
    /// Starts an `imageBuild` or `kataInstall` stage: it runs nothing, it
    /// waits for the object.
    pub(super) fn start_reference(&mut self, i: usize) {
        let entry = &mut self.status.stages[i];
        entry.attempt += 1;
        if entry.first_attempt == 0 {
            entry.first_attempt = entry.attempt;
        }
        entry.job_name = None;
        entry.phase = StagePhase::Running;
        entry.start_time.get_or_insert(self.now);
        entry.completion_time = None;
        self.status.start_time.get_or_insert(self.now);
        self.integrate_reference(i);
    }

    /// Folds the state of the object a reference stage waits for into it.
    pub(super) fn integrate_reference(&mut self, i: usize) {
        let stage = &self.spec.stages[i];
        let (kind, name, state) = match stage_kind(stage) {
            StageKind::ImageBuild { name } => ("ImageBuild", name, self.observed.image_builds.get(name)),
            StageKind::KataInstall { name } => ("KataInstall", name, self.observed.kata_installs.get(name)),
            _ => return,
        };
        match state {
            Some(Referenced::Ready(outputs)) => {
                self.status.stages[i].outputs = outputs.clone();
                if matches!(stage_kind(stage), StageKind::ImageBuild { .. }) {
                    self.actions.push(Action::MarkImageUsed { build: name.to_string() });
                }
                self.stage_done(i, None, StagePhase::Succeeded, None, None);
            }
            Some(Referenced::Failed(why)) => {
                let why = why.clone();
                self.stage_done(i, None, StagePhase::Failed, None, Some(&why));
            }
            waiting => {
                let why = match waiting {
                    Some(Referenced::Waiting(why)) => why.clone(),
                    _ => format!("waiting for {kind} {name}, which does not exist"),
                };
                let timeout = stage_timeout(self.spec, stage, self.run.settings);
                let started = self.status.stages[i].start_time.unwrap_or(self.now);
                let deadline = timeout.map(|t| later(started, t));
                if let (Some(t), Some(deadline)) = (timeout, deadline) {
                    if self.now >= deadline {
                        let why = format!("timed out after {}: {why}", format_duration(t));
                        return self.stage_done(i, None, StagePhase::Failed, None, Some(&why));
                    }
                    self.wake.at(deadline);
                }
                self.status.stages[i].message = Some(truncate(&why, MAX_MESSAGE_BYTES));
                self.wake.after(REFERENCE_POLL);
            }
        }
    }
}

//! Steps 7 and 8, and a stage's own deadline: what stops. The whole run
//! stops when it is cancelled (`spec.cancel`), superseded by a newer run of
//! its group, refused its workspace claim or past its `spec.timeout` (its
//! clock starts at creation); every unfinished stage is cancelled, finally
//! stages included. With `failFast`, a failed gating stage cancels every
//! other unfinished stage but the finally stages (and the services they
//! need). An attempt past its timeout plus grace is stopped by the
//! operator's clock.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{is_gating, Action, Planner};
use crate::api::pipelinerun::StagePhase;
use crate::engine::duration::{format_duration, later, parse_duration};
use crate::engine::job::stop_deadline;
use crate::engine::naming::workspace_claim_name;
use crate::engine::pipelinerun::launch::stage_timeout;
use crate::engine::pipelinerun::view::JobObservation;

/// Why the whole run is being stopped.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Stop {
    Cancelled(String),
    TimedOut(String),
    /// The API server would not create the run's workspace claim.
    WorkspaceRefused(String),
}

impl Stop {
    /// What every stage it stops says.
    pub(super) fn message(&self) -> &str {
        match self {
            Stop::Cancelled(m) | Stop::TimedOut(m) | Stop::WorkspaceRefused(m) => m,
        }
    }
}

impl Planner<'_> {
    /// Whether (and why) the whole run must stop now.
    pub(super) fn run_stop(&self) -> Option<Stop> {
        if self.spec.cancel {
            return Some(Stop::Cancelled("cancelled by spec.cancel".into()));
        }
        if let Some(newer) = self.run.superseded_by {
            return Some(Stop::Cancelled(format!("superseded by run {newer}")));
        }
        let claim = workspace_claim_name(self.run.name, self.run.uid);
        if let Some(refusal) = self.spec.workspace.as_ref().and(self.observed.refused.get(&claim)) {
            return Some(Stop::WorkspaceRefused(format!("workspace claim {claim} not created: {}", refusal.message)));
        }
        let (timeout, deadline) = self.run_deadline()?;
        (self.now >= deadline).then(|| Stop::TimedOut(format!("run timed out after {}", format_duration(timeout))))
    }

    /// The run's timeout and the deadline it sets (its clock starts at creation).
    pub(super) fn run_deadline(&self) -> Option<(Duration, DateTime<Utc>)> {
        let timeout = self.spec.timeout.as_deref().and_then(|t| parse_duration(t).ok())?;
        Some((timeout, later(self.run.created, timeout)))
    }

    /// Stops every unfinished stage, finally stages included.
    pub(super) fn stop_all(&mut self, stop: &Stop) {
        let why = stop.message().to_string();
        for i in 0..self.spec.stages.len() {
            self.cancel_stage(i, &why);
        }
    }

    fn cancel_stage(&mut self, i: usize, why: &str) {
        let entry = &self.status.stages[i];
        if entry.phase.is_finished() {
            return;
        }
        if entry.phase == StagePhase::Running {
            if let Some(name) = entry.job_name.clone() {
                self.actions.push(Action::DeleteJob { name });
                let job = self.observed.job(&entry.name, entry.attempt).cloned();
                self.record_attempt(i, job.as_ref(), StagePhase::Cancelled, Some(why));
            }
        }
        self.stage_done(i, None, StagePhase::Cancelled, None, Some(why));
    }

    /// With `failFast`, a failed gating stage stops every other unfinished
    /// stage except the finally stages.
    pub(super) fn fail_fast(&mut self) {
        if !self.spec.fail_fast {
            return;
        }
        let failed = self
            .spec
            .stages
            .iter()
            .zip(&self.status.stages)
            .find(|(s, st)| !s.finally && is_gating(s) && st.phase == StagePhase::Failed)
            .map(|(s, _)| s.name.clone());
        if let Some(failed) = failed {
            let why = format!("fail-fast: stage {failed} failed");
            for i in 0..self.spec.stages.len() {
                if !self.spec.stages[i].finally && !self.kept_for_finally(i) {
                    self.cancel_stage(i, &why);
                }
            }
        }
    }

    /// The operator's own clock: covers time a pod spends Pending, which
    /// `activeDeadlineSeconds` does not count before the Job starts.
    pub(super) fn check_stage_deadline(&mut self, i: usize, job: &JobObservation) {
        let Some(timeout) = stage_timeout(self.spec, &self.spec.stages[i], self.run.settings) else {
            return;
        };
        let started = job.outcome.created.unwrap_or(self.now);
        let deadline = stop_deadline(started, timeout);
        if self.now >= deadline {
            self.actions.push(Action::DeleteJob { name: job.outcome.name.clone() });
            let t = format_duration(timeout);
            self.attempt_failed(i, Some(job), format!("timed out after {t} (Job {})", job.outcome.name));
        } else {
            self.wake.at(deadline);
        }
    }
}

//! Step 11: the run's phase, `Succeeded` condition, message and summary
//! (`progress`, `currentStage`) from its stages. While stages are
//! unfinished it is Pending or Running; then Succeeded, Failed (a gating
//! stage failed, or it timed out, or its workspace was refused) or
//! Cancelled. A finished run is deleted once its TTL has passed.

use super::stop::Stop;
use super::{is_gating, Action, Planner};
use crate::api::pipelinerun::{RunPhase, StagePhase};
use crate::engine::conditions::{set_condition, ConditionStatus, MAX_MESSAGE_BYTES};
use crate::engine::duration::later_by_secs;
use crate::engine::pipelinerun::status::{reasons, CONDITION_SUCCEEDED};
use crate::engine::text::truncate;

impl Planner<'_> {
    /// Sets the run's phase, condition, message and summary fields.
    pub(super) fn conclude(&mut self, stop: Option<Stop>) {
        let total = self.spec.stages.len();
        let done = self.status.stages.iter().filter(|s| s.phase.is_finished()).count();
        self.status.progress = Some(format!("{done}/{total}"));
        let running: Vec<&str> =
            self.status.stages.iter().filter(|s| s.phase == StagePhase::Running).map(|s| s.name.as_str()).collect();
        self.status.current_stage = (!running.is_empty()).then(|| running.join(","));

        if done < total {
            let started = self.status.stages.iter().any(|s| s.attempt > 0);
            let (phase, reason) =
                if started { (RunPhase::Running, reasons::RUNNING) } else { (RunPhase::Pending, reasons::PENDING) };
            let message = if running.is_empty() {
                "waiting for stages to start".to_string()
            } else {
                format!("running: {}", running.join(", "))
            };
            self.status.phase = Some(phase);
            self.status.message = Some(truncate(&message, MAX_MESSAGE_BYTES));
            self.set_succeeded(ConditionStatus::Unknown, reason, &message);
            if let Some((_, deadline)) = self.run_deadline() {
                self.wake.at(deadline);
            }
            return;
        }

        let failed: Vec<&str> = self
            .spec
            .stages
            .iter()
            .zip(&self.status.stages)
            .filter(|(s, st)| is_gating(s) && st.phase == StagePhase::Failed)
            .map(|(s, _)| s.name.as_str())
            .collect();
        let (phase, reason, message) = match stop {
            Some(Stop::Cancelled(m)) => (RunPhase::Cancelled, reasons::CANCELLED, m),
            Some(Stop::TimedOut(m)) => (RunPhase::Failed, reasons::TIMED_OUT, m),
            Some(Stop::WorkspaceRefused(m)) => (RunPhase::Failed, reasons::WORKSPACE_REFUSED, m),
            None if !failed.is_empty() => {
                let first = self.status.stages.iter().find(|s| s.name == failed[0]);
                let detail = first.and_then(|s| s.message.clone()).unwrap_or_default();
                (RunPhase::Failed, reasons::FAILED, format!("stage {} failed: {detail}", failed.join(", ")))
            }
            None => {
                let skipped = self.status.stages.iter().filter(|s| s.phase == StagePhase::Skipped).count();
                let non_gating_failed = self.status.stages.iter().filter(|s| s.phase == StagePhase::Failed).count();
                let mut m = format!("{total} stages done");
                if skipped > 0 {
                    m.push_str(&format!(", {skipped} skipped"));
                }
                if non_gating_failed > 0 {
                    m.push_str(&format!(", {non_gating_failed} non-gating failed"));
                }
                (RunPhase::Succeeded, reasons::SUCCEEDED, m)
            }
        };
        let status_value = ConditionStatus::from(phase == RunPhase::Succeeded);
        self.status.phase = Some(phase);
        self.status.message = Some(truncate(&message, MAX_MESSAGE_BYTES));
        self.status.completion_time = Some(self.now);
        self.set_succeeded(status_value, reason, &message);
        self.expire_after_ttl();
    }

    /// Sets the run's `Succeeded` condition.
    pub(super) fn set_succeeded(&mut self, status: ConditionStatus, reason: &str, message: &str) {
        let generation = self.run.generation;
        set_condition(&mut self.status.conditions, CONDITION_SUCCEEDED, status, reason, message, generation, self.now);
    }

    /// Deletes a finished run once `ttlSecondsAfterFinished` has passed,
    /// or wakes it then.
    pub(super) fn expire_after_ttl(&mut self) {
        let (Some(ttl), Some(done)) = (self.spec.ttl_seconds_after_finished, self.status.completion_time) else {
            return;
        };
        let expiry = later_by_secs(done, ttl);
        if self.now >= expiry {
            self.actions.push(Action::DeleteRun);
        } else {
            self.wake.at(expiry);
        }
    }
}

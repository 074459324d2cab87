//! Step 11: the run's phase, `Succeeded` condition, message and summary
//! (`progress`, `currentStage`) from its stages. While stages are
//! unfinished it is Pending or Running; then Succeeded, Failed (a gating
//! stage failed, or it timed out, or its workspace was refused) or
//! Cancelled. A `Gate` run's phase follows the gate's verdict instead:
//! Queued, Running until Merged (Succeeded) or Rejected (Failed). A finished
//! run gets its gating verdict, and is deleted once its TTL has passed.

use super::stop::Stop;
use super::{is_gating, Action, Planner};
use crate::api::pipelinerun::{Decision, GateVerdict, RunPhase, StagePhase, StageResult, Verdict};
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

        let gated = self.status.gate.as_ref().filter(|_| self.spec.gate().is_some() && stop.is_none());
        if let Some(gate) = gated {
            let message = gate.reason.clone().unwrap_or_default();
            let started = self.status.stages.iter().any(|s| s.attempt > 0);
            return match gate.verdict {
                GateVerdict::Merged => self.finish_run(RunPhase::Succeeded, reasons::MERGED, message),
                GateVerdict::Rejected => self.finish_run(RunPhase::Failed, reasons::REJECTED, message),
                GateVerdict::Queued => self.unfinished(RunPhase::Queued, reasons::QUEUED, &message),
                _ if started => self.unfinished(RunPhase::Running, reasons::RUNNING, &message),
                _ => self.unfinished(RunPhase::Pending, reasons::PENDING, &message),
            };
        }

        if done < total {
            let started = self.status.stages.iter().any(|s| s.attempt > 0);
            let (phase, reason) =
                if started { (RunPhase::Running, reasons::RUNNING) } else { (RunPhase::Pending, reasons::PENDING) };
            let message = if running.is_empty() {
                "waiting for stages to start".to_string()
            } else {
                format!("running: {}", running.join(", "))
            };
            return self.unfinished(phase, reason, &message);
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
        if let Some(gate) = self.status.gate.as_mut().filter(|_| self.spec.concurrency.is_some()) {
            // Out of the queue: a timeout is a rejection, a cancel withdraws it.
            if phase == RunPhase::Failed {
                gate.verdict = GateVerdict::Rejected;
            }
            gate.reason = Some(truncate(&message, MAX_MESSAGE_BYTES));
        }
        self.finish_run(phase, reason, message);
    }

    /// A run still under way: its phase and a condition that is Unknown.
    fn unfinished(&mut self, phase: RunPhase, reason: &str, message: &str) {
        self.status.phase = Some(phase);
        self.status.message = Some(truncate(message, MAX_MESSAGE_BYTES));
        self.set_succeeded(ConditionStatus::Unknown, reason, message);
        if let Some((_, deadline)) = self.run_deadline() {
            self.wake.at(deadline);
        }
    }

    /// The run is over: its final phase, condition, verdict and TTL.
    fn finish_run(&mut self, phase: RunPhase, reason: &str, message: String) {
        let status_value = ConditionStatus::from(phase == RunPhase::Succeeded);
        self.status.phase = Some(phase);
        self.status.message = Some(truncate(&message, MAX_MESSAGE_BYTES));
        self.status.completion_time = Some(self.now);
        self.set_succeeded(status_value, reason, &message);
        self.status.verdict = Some(self.verdict(phase));
        self.expire_after_ttl();
    }

    /// The gating verdict of a run that finished in `phase`: gating stages
    /// are required, the others informational.
    fn verdict(&self, phase: RunPhase) -> Verdict {
        let mut verdict = Verdict {
            decision: if phase == RunPhase::Succeeded { Decision::Pass } else { Decision::Fail },
            ..Default::default()
        };
        for (stage, status) in self.spec.stages.iter().zip(&self.status.stages) {
            let result = StageResult {
                stage: stage.name.clone(),
                outcome: status.phase,
                failed_tests: status.tests.as_ref().map(|t| t.failed_names.clone()).unwrap_or_default(),
            };
            if is_gating(stage) {
                verdict.required.push(result);
            } else {
                verdict.informational.push(result);
            }
        }
        verdict
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

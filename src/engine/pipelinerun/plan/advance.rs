//! Step 9: start what may start. Stages are visited in dependency order,
//! finally stages last. A stage listed in `spec.skip` is skipped; one whose
//! need was skipped (by request or upstream) or failed without gating is
//! skipped too; one whose need failed or was cancelled is cancelled; one
//! whose needs all succeeded (or serve, for a service) starts its next
//! attempt, unless the run is queued or a retry delay runs. Finally stages
//! start once every other stage is settled.

use super::{is_gating, Action, Planner};
use crate::api::pipelinerun::{SkipReason, StagePhase};
use crate::engine::pipelinerun::dag::Graph;
use crate::engine::pipelinerun::launch::launch;
use crate::engine::pipelinerun::stage_kind::stage_kind;
use crate::engine::refusal::Refusal;

/// Whether a stage may start, given its needs.
enum Readiness {
    Ready,
    Blocked,
    Skip(SkipReason, String),
    Cancel(String),
}

impl Readiness {
    /// Keeps the stronger verdict: cancel beats skip beats ready.
    fn or(self, other: Readiness) -> Readiness {
        match (&self, &other) {
            (Readiness::Cancel(_), _) => self,
            (_, Readiness::Cancel(_)) => other,
            (Readiness::Skip(..), _) => self,
            _ => other,
        }
    }
}

impl Planner<'_> {
    /// Starts every stage whose needs are met (in dependency order).
    /// Merge stages (`Gate` runs) start only when `merge` says the run is at
    /// the head of its queue with its try passed.
    pub(super) fn advance(&mut self, graph: &Graph, queued: bool, merge: bool) {
        let mut order = graph.topological_order(&self.spec.stages).expect("validated");
        // Finally stages last: they start once every other stage is settled,
        // including the ones settled (skipped, cancelled) in this same pass.
        order.sort_by_key(|&i| self.spec.stages[i].finally);
        for i in order {
            let phase = self.status.stages[i].phase;
            if phase.is_finished() || phase == StagePhase::Running {
                continue;
            }
            let stage = &self.spec.stages[i];
            if stage.merge && !merge {
                continue;
            }
            if self.spec.skip.contains(&stage.name) {
                self.stage_done(i, None, StagePhase::Skipped, Some(SkipReason::Listed), Some("listed in spec.skip"));
                continue;
            }
            match self.readiness(graph, i) {
                Readiness::Blocked => continue,
                Readiness::Skip(reason, message) => {
                    self.stage_done(i, None, StagePhase::Skipped, Some(reason), Some(&message));
                    continue;
                }
                Readiness::Cancel(message) => {
                    self.stage_done(i, None, StagePhase::Cancelled, None, Some(&message));
                    continue;
                }
                Readiness::Ready => {}
            }
            if queued {
                continue;
            }
            if let Some(at) = self.status.stages[i].retry_after {
                if self.now < at {
                    self.wake.at(at);
                    continue;
                }
            }
            self.start(graph, i);
        }
    }

    fn readiness(&self, graph: &Graph, i: usize) -> Readiness {
        let stage = &self.spec.stages[i];
        if stage.finally {
            // A service a finally stage needs stays up for it (collecting a
            // test cluster's logs, say): it is torn down after its last dependent.
            // In a gated run, finally stages end the try: merge stages come after.
            let others_done = (0..self.spec.stages.len()).all(|j| {
                let other = &self.spec.stages[j];
                other.finally || other.merge || self.status.stages[j].phase.is_finished() || self.kept_for_finally(j)
            });
            let needs_done =
                graph.needs[i].iter().all(|&n| self.status.stages[n].phase.is_finished() || self.serving(n));
            return if others_done && needs_done { Readiness::Ready } else { Readiness::Blocked };
        }
        let mut verdict = Readiness::Ready;
        for &n in &graph.needs[i] {
            let (need, st) = (&self.spec.stages[n], &self.status.stages[n]);
            match st.phase {
                StagePhase::Succeeded => {}
                StagePhase::Skipped if !st.skip_reason.is_some_and(SkipReason::propagates) => {}
                StagePhase::Skipped => {
                    verdict = verdict.or(Readiness::Skip(SkipReason::Upstream, format!("{} was skipped", need.name)))
                }
                StagePhase::Failed if !is_gating(need) => {
                    verdict = verdict.or(Readiness::Skip(
                        SkipReason::UpstreamFailedNonGating,
                        format!("{} (non-gating) failed", need.name),
                    ))
                }
                StagePhase::Failed | StagePhase::Cancelled => {
                    verdict = verdict.or(Readiness::Cancel(format!("needs {}, which did not succeed", need.name)))
                }
                // A service is needed while it runs, once it is ready.
                StagePhase::Running if st.ready => {}
                StagePhase::Pending | StagePhase::Waiting | StagePhase::Running => return Readiness::Blocked,
            }
        }
        verdict
    }

    /// Starts stage `i`'s next attempt: its Job (or, for a reference
    /// stage, the wait for its object).
    fn start(&mut self, graph: &Graph, i: usize) {
        if stage_kind(&self.spec.stages[i]).is_reference() {
            return self.start_reference(i);
        }
        let entry = &self.status.stages[i];
        let attempt = entry.attempt.saturating_add(1);
        match launch(self.run.name, self.run.uid, self.run.settings, self.spec, graph, &self.status, i, attempt) {
            Err(e) => {
                let why = format!("cannot start: {e}");
                self.stage_done(i, None, StagePhase::Failed, None, Some(&why));
            }
            Ok(l) => {
                let entry = &mut self.status.stages[i];
                if entry.first_attempt == 0 {
                    entry.first_attempt = attempt;
                }
                entry.attempt = attempt;
                entry.job_name = Some(l.job_name.clone());
                if self.observed.foreign_jobs.contains(&l.job_name) {
                    let refusal = Refusal { conflict: true, message: taken_message(&l.job_name) };
                    return self.refused(i, &l.job_name, &refusal);
                }
                entry.phase = StagePhase::Running;
                entry.retry_after = None;
                entry.start_time.get_or_insert(self.now);
                entry.completion_time = None;
                entry.message = None;
                entry.ready = false;
                self.status.start_time.get_or_insert(self.now);
                self.actions.push(Action::CreateJob(Box::new(l)));
            }
        }
    }
}

/// Why a stage does not start when its Job's name is held by a Job that
/// carries the run's labels but not its UID as controller.
fn taken_message(job: &str) -> String {
    format!(
        "Job {job} already exists and belongs to someone else (its controller is not this run); \
         Gantry neither adopts nor deletes it"
    )
}

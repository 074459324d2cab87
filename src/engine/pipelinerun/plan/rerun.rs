//! Step 2: the `gantry.dev/rerun` annotation. A finished run reruns the
//! named stage, everything downstream of it and the finally stages, keeping
//! their earlier attempts in history; a request on a running run or for an
//! unknown stage is ignored with a Warning. Either way the annotation is
//! cleared (once the status recording it is written).

use super::{Action, Planner};
use crate::api::pipelinerun::RunPhase;
use crate::engine::note::Note;
use crate::engine::pipelinerun::dag::Graph;
use crate::engine::pipelinerun::events;

impl Planner<'_> {
    /// Handles a rerun request. Returns whether the passes go on: a
    /// finished run that is not rerun only waits for its TTL.
    pub(super) fn rerun(&mut self, graph: &Graph) -> bool {
        let finished = self.status.phase.is_some_and(RunPhase::is_finished);
        if let Some(stage) = self.run.rerun {
            if finished {
                self.apply_rerun(graph, stage);
            } else {
                let why = format!("rerun of \"{stage}\" ignored: the run has not finished");
                self.notes.push(Note::warning(events::RERUN_IGNORED, why));
            }
            self.actions.push(Action::ClearRerunAnnotation);
        } else if finished {
            self.expire_after_ttl();
            return false;
        }
        true
    }

    fn apply_rerun(&mut self, graph: &Graph, stage: &str) {
        let Some(index) = self.spec.stages.iter().position(|s| s.name == stage) else {
            self.notes
                .push(Note::warning(events::RERUN_IGNORED, format!("rerun of \"{stage}\" ignored: no such stage")));
            return;
        };
        let mut reset: Vec<usize> = vec![index];
        reset.extend(graph.descendants(index));
        reset.extend(self.spec.stages.iter().enumerate().filter(|(_, s)| s.finally).map(|(i, _)| i));
        reset.sort_unstable();
        reset.dedup();
        let names: Vec<&str> = reset.iter().map(|&i| self.spec.stages[i].name.as_str()).collect();
        self.notes.push(Note::normal(events::RERUN, format!("rerunning {}", names.join(", "))));
        for i in reset {
            self.new_try(i, 0, "rerun requested");
        }
        self.status.phase = Some(RunPhase::Running);
        self.status.completion_time = None;
        self.status.verdict = None;
    }

    /// Asks to clear the rerun annotation, when there is one.
    pub(super) fn clear_rerun_request(&mut self) {
        if self.run.rerun.is_some() {
            self.actions.push(Action::ClearRerunAnnotation);
        }
    }
}

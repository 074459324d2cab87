//! What a stage's spec and status say, in the words every view uses
//! (`describe`, `watch`, `graph`): its phase, `attempt n/m`, duration, marks.

use chrono::{DateTime, Utc};
use gantry::api::pipelinerun::{PipelineRun, PipelineRunSpec, Stage, StagePhase, StageStatus};

use crate::output::word;
use crate::time;

/// One stage of a run: its spec and, once the operator wrote one, its status.
#[derive(Clone, Copy, Debug)]
pub struct StageView<'a> {
    pub spec: &'a Stage,
    pub status: Option<&'a StageStatus>,
    run_spec: &'a PipelineRunSpec,
}

/// Every stage of `run`, in spec order.
pub fn of(run: &PipelineRun) -> Vec<StageView<'_>> {
    let statuses = run.status.as_ref().map(|s| s.stages.as_slice()).unwrap_or_default();
    run.spec
        .stages
        .iter()
        .map(|spec| StageView { spec, status: statuses.iter().find(|s| s.name == spec.name), run_spec: &run.spec })
        .collect()
}

impl StageView<'_> {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Its phase; Pending until the status has an entry for it.
    pub fn phase(&self) -> StagePhase {
        self.status.map(|s| s.phase).unwrap_or_default()
    }

    /// The phase's API name, e.g. `Succeeded`.
    pub fn phase_word(&self) -> String {
        word(Some(&self.phase()))
    }

    /// How many attempts the stage may make: 1 + its retries (or the run's default).
    pub fn max_attempts(&self) -> u32 {
        1 + self.spec.retries.or(self.run_spec.defaults.retries).unwrap_or(0)
    }

    /// `n/m`: the current attempt of the current try out of the attempts it
    /// may make. Attempt numbers keep counting across reruns, so after a
    /// rerun the Job's own number follows: `1/3 (#4)`. None before the first attempt.
    pub fn attempt(&self) -> Option<String> {
        let status = self.status.filter(|s| s.attempt > 0)?;
        let first = status.first_attempt.max(1).min(status.attempt);
        let n = status.attempt - first + 1;
        let label = format!("{n}/{}", self.max_attempts());
        Some(if first > 1 { format!("{label} (#{})", status.attempt) } else { label })
    }

    /// From its start to its end (to `now` while it runs).
    pub fn duration(&self, now: DateTime<Utc>) -> Option<String> {
        let status = self.status?;
        time::span(status.start_time, status.completion_time, now)
    }

    /// The marks that change how the stage counts or runs: `finally`,
    /// `non-gating`, `service`.
    pub fn marks(&self) -> Vec<&'static str> {
        let mut marks = Vec::new();
        if self.spec.finally {
            marks.push("finally");
        }
        if self.spec.gating == Some(false) {
            marks.push("non-gating");
        }
        if self.spec.service.is_some() {
            marks.push("service");
        }
        marks
    }

    /// Its status message, if any.
    pub fn message(&self) -> Option<&str> {
        self.status.and_then(|s| s.message.as_deref()).filter(|m| !m.is_empty())
    }
}

/// A symbol for a phase, for the tree and transition lines (like `argo get`'s).
pub fn symbol(phase: StagePhase) -> &'static str {
    match phase {
        StagePhase::Pending => "○",
        StagePhase::Waiting => "◷",
        StagePhase::Running => "●",
        StagePhase::Succeeded => "✔",
        StagePhase::Failed => "✖",
        StagePhase::Skipped => "↷",
        StagePhase::Cancelled => "⊘",
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A run from JSON `spec` and `status` (for the views' tests).
    pub fn run_from(spec: serde_json::Value, status: serde_json::Value) -> PipelineRun {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": "nightly", "namespace": "ci", "creationTimestamp": "2026-12-02T07:00:00Z"},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    pub fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T07:00:00Z").unwrap().with_timezone(&Utc)
            + chrono::Duration::seconds(seconds)
    }

    #[test]
    fn attempts_count_within_the_current_try_out_of_one_plus_retries() {
        let run = run_from(
            serde_json::json!({"defaults": {"retries": 1}, "stages": [
                {"name": "a"}, {"name": "b", "retries": 2}, {"name": "c"}, {"name": "d"}]}),
            serde_json::json!({"stages": [
                {"name": "a", "phase": "Running", "attempt": 1, "firstAttempt": 1},
                {"name": "b", "phase": "Succeeded", "attempt": 2, "firstAttempt": 1},
                {"name": "c", "phase": "Running", "attempt": 4, "firstAttempt": 4}]}),
        );
        let stages = of(&run);
        let attempts: Vec<Option<String>> = stages.iter().map(|s| s.attempt()).collect();
        assert_eq!(attempts, [Some("1/2".to_string()), Some("2/3".to_string()), Some("1/2 (#4)".to_string()), None]);
        assert_eq!(stages[3].phase(), StagePhase::Pending, "no status entry yet: Pending");
    }

    #[test]
    fn a_running_stage_counts_its_duration_to_now() {
        let run = run_from(
            serde_json::json!({"stages": [{"name": "a"}, {"name": "b"}]}),
            serde_json::json!({"stages": [
                {"name": "a", "phase": "Succeeded", "attempt": 1, "startTime": "2026-12-02T07:00:00Z", "completionTime": "2026-12-02T07:01:05Z"},
                {"name": "b", "phase": "Running", "attempt": 1, "startTime": "2026-12-02T07:01:05Z"}]}),
        );
        let stages = of(&run);
        assert_eq!(stages[0].duration(at(600)).as_deref(), Some("1m5s"));
        assert_eq!(stages[1].duration(at(75)).as_deref(), Some("10s"));
    }

    #[test]
    fn marks_name_finally_non_gating_and_service() {
        let run = run_from(
            serde_json::json!({"stages": [
                {"name": "a", "finally": true}, {"name": "b", "gating": false},
                {"name": "c", "service": {"replicas": 2}}, {"name": "d", "gating": true}]}),
            serde_json::json!({}),
        );
        let marks: Vec<Vec<&str>> = of(&run).iter().map(|s| s.marks()).collect();
        assert_eq!(marks, [vec!["finally"], vec!["non-gating"], vec!["service"], vec![]]);
    }
}

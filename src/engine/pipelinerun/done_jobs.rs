//! Which stage Jobs a running run is done with, so the controller need not
//! keep them (and their pods) in its watch caches: once the status records a
//! stage as finished, everything the planner reads of its Jobs (outputs,
//! messages, test counts, history) is in the status. At 2000 runs of 5
//! stages in flight they were most of the operator's memory.
//!
//! A status can go back (a stale writer puts an old one back): then the
//! planner expects a Job the caches were told to drop, and the controller
//! reads the run's children from the API server again ([`expects_done_job`]).

use crate::api::pipelinerun::PipelineRunStatus;
use crate::engine::job::JobState;
use crate::engine::naming::job_name;

use super::view::{Observed, View};

/// The observed Jobs that `status` (written) has no more use for: finished
/// Jobs of stages it records as finished at that attempt or a later one.
pub fn done_with(status: &PipelineRunStatus, observed: &Observed) -> Vec<String> {
    observed
        .jobs
        .iter()
        .filter(|job| job.outcome.state != JobState::Active)
        .filter(|job| {
            let stage = status.stages.iter().find(|s| s.name == job.stage);
            stage.is_some_and(|s| s.phase.is_finished() && job.attempt <= s.attempt)
        })
        .map(|job| job.outcome.name.clone())
        .collect()
}

/// Whether the run's status expects a Job that `is_done` says was dropped:
/// the Job of an attempt of a stage it does not record as finished (its
/// current try's attempts, or the first attempt of a stage not started).
pub fn expects_done_job(run: &View, is_done: impl Fn(&str) -> bool) -> bool {
    run.status.stages.iter().filter(|s| !s.phase.is_finished()).any(|s| {
        (s.first_attempt.max(1)..=s.attempt.max(1))
            .any(|attempt| is_done(&job_name(run.name, run.uid, &s.name, attempt)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::pipelinerun::{StagePhase, StageStatus};
    use crate::engine::job::JobOutcome;
    use crate::engine::pipelinerun::view::JobObservation;
    use crate::engine::settings::Settings;

    fn stage(name: &str, phase: StagePhase, first_attempt: u32, attempt: u32) -> StageStatus {
        StageStatus { name: name.into(), phase, first_attempt, attempt, ..Default::default() }
    }

    fn job(stage: &str, attempt: u32, state: JobState) -> JobObservation {
        let outcome = JobOutcome { name: format!("{stage}-{attempt}"), state, ..Default::default() };
        JobObservation { stage: stage.into(), attempt, outcome }
    }

    #[test]
    fn only_finished_jobs_of_stages_recorded_finished_are_done_with() {
        let status = PipelineRunStatus {
            stages: vec![
                stage("build", StagePhase::Succeeded, 1, 2),
                stage("test", StagePhase::Running, 1, 2),
                stage("stop", StagePhase::Cancelled, 1, 1),
            ],
            ..Default::default()
        };
        let observed = Observed {
            jobs: vec![
                job("build", 1, JobState::Failed),
                job("build", 2, JobState::Succeeded),
                job("build", 3, JobState::Succeeded), // an attempt the status does not know (a lost write)
                job("test", 1, JobState::Failed),     // a running stage's earlier attempt: TAP reads it
                job("test", 2, JobState::Active),
                job("stop", 1, JobState::Active), // cancelled, its Job not stopped yet
                job("gone", 1, JobState::Succeeded),
            ],
            ..Default::default()
        };
        assert_eq!(done_with(&status, &observed), ["build-1", "build-2"]);
        assert!(done_with(&PipelineRunStatus::default(), &observed).is_empty());
    }

    /// Whether a run "r" with `stages` expects the dropped Job of build's attempt 1.
    fn expects_build_1(stages: Vec<StageStatus>) -> bool {
        let (settings, spec) = (Settings::default(), Default::default());
        let status = PipelineRunStatus { stages, ..Default::default() };
        let view = View {
            name: "r",
            uid: "uid",
            generation: None,
            created: chrono::Utc::now(),
            spec: &spec,
            status: &status,
            rerun: None,
            superseded_by: None,
            settings: &settings,
        };
        expects_done_job(&view, |name| name == job_name("r", "uid", "build", 1))
    }

    #[test]
    fn a_status_that_went_back_expects_a_dropped_job_and_a_new_try_does_not() {
        assert!(expects_build_1(vec![stage("build", StagePhase::Running, 1, 1)]));
        assert!(expects_build_1(vec![stage("build", StagePhase::Pending, 0, 0)]), "it would create attempt 1 again");
        assert!(!expects_build_1(vec![stage("build", StagePhase::Succeeded, 1, 1)]));
        let rerun = stage("build", StagePhase::Pending, 2, 1);
        assert!(!expects_build_1(vec![rerun]), "a rerun's new try starts past the dropped attempt");
        assert!(!expects_build_1(vec![stage("test", StagePhase::Running, 1, 1)]));
    }
}

//! Which attempt of a stage a command is about (the current one, a numbered
//! one, the last that failed) and the Job that ran it. Pure.

use std::collections::BTreeSet;

use gantry::api::pipelinerun::{PipelineRun, Stage, StagePhase, StageStatus};
use gantry::engine::naming::job_name;
use gantry::engine::pipelinerun::stage_kind::{stage_kind, StageKind};
use kube::ResourceExt;

use crate::failure::CliError;

/// Which attempt of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The current attempt (the last one, once the stage is over).
    Current,
    /// Attempt number N.
    Number(u32),
    /// The newest attempt that failed.
    LastFailed,
}

/// One attempt of one stage and the Job that runs (or ran) it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attempt {
    pub stage: String,
    pub number: u32,
    pub job: String,
}

impl Attempt {
    /// How messages name it: `stage test attempt 2`.
    pub fn label(&self) -> String {
        format!("stage {} attempt {}", self.stage, self.number)
    }
}

/// What a stage that runs no Job waits for instead (`ImageBuild "sdk"`), if it is one.
pub fn waits_for(stage: &Stage) -> Option<String> {
    match stage_kind(stage) {
        StageKind::ImageBuild { name } => Some(format!("ImageBuild \"{name}\"")),
        StageKind::KataInstall { name } => Some(format!("KataInstall \"{name}\"")),
        StageKind::Job | StageKind::Service { .. } => None,
    }
}

/// The attempt `which` of the stage whose status is `status`, in `run`.
/// Errors (bad input) name the stage and what it has instead.
pub fn pick(run: &PipelineRun, status: &StageStatus, which: Which) -> Result<Attempt, CliError> {
    let run_name = run.name_any();
    let of = format!("stage \"{}\" of pipelinerun \"{run_name}\"", status.name);
    if let Some(what) = run.spec.stages.iter().find(|s| s.name == status.name).and_then(waits_for) {
        return Err(CliError::bad_input(format!("{of} waits for {what}: it runs no Job")));
    }
    let attempt = |number: u32, job: String| Attempt { stage: status.name.clone(), number, job };
    let current = current_job(status);
    match which {
        Which::Current => current
            .map(|job| attempt(status.attempt, job))
            .ok_or_else(|| CliError::bad_input(format!("{of} has no attempt yet ({})", phase_word(status.phase)))),
        Which::LastFailed => status
            .history
            .iter()
            .filter(|h| h.phase == StagePhase::Failed)
            .max_by_key(|h| h.attempt)
            .map(|h| attempt(h.attempt, h.job_name.clone()))
            .ok_or_else(|| CliError::bad_input(format!("{of} has no failed attempt"))),
        Which::Number(n) => {
            if let Some(h) = status.history.iter().find(|h| h.attempt == n) {
                return Ok(attempt(n, h.job_name.clone()));
            }
            if n == status.attempt {
                if let Some(job) = current {
                    return Ok(attempt(n, job));
                }
            }
            // Older attempts than the capped history keeps: their Job name is
            // known all the same (it may be gone, which `logs` then says).
            if n >= 1 && n < status.attempt {
                let uid = run.uid().unwrap_or_default();
                return Ok(attempt(n, job_name(&run_name, &uid, &status.name, n)));
            }
            let has = match status.attempt {
                0 => "has no attempt yet".to_string(),
                1 => "has only attempt 1".to_string(),
                last => format!("has attempts 1 to {last}"),
            };
            Err(CliError::bad_input(format!("{of} has no attempt {n} (it {has})")))
        }
    }
}

/// The Job of the stage's current attempt: the one in the status, else (a
/// rerun was just requested and the stage not started again) the last recorded.
fn current_job(status: &StageStatus) -> Option<String> {
    if status.attempt == 0 {
        return None;
    }
    status
        .job_name
        .clone()
        .filter(|j| !j.is_empty())
        .or_else(|| status.history.iter().find(|h| h.attempt == status.attempt).map(|h| h.job_name.clone()))
}

fn phase_word(phase: StagePhase) -> String {
    crate::output::word(Some(&phase))
}

/// The attempt `which` of every stage that runs a Job and has one, in spec
/// order; stages that never started (or never failed, for `LastFailed`) are left out.
pub fn of_every_stage(run: &PipelineRun, which: Which) -> Vec<Attempt> {
    let Some(status) = run.status.as_ref() else { return Vec::new() };
    run.spec
        .stages
        .iter()
        .filter(|s| waits_for(s).is_none())
        .filter_map(|s| status.stages.iter().find(|st| st.name == s.name))
        .filter_map(|st| pick(run, st, which).ok())
        .collect()
}

/// Every attempt of `run` with a known Job (earlier ones and the current
/// one), of the stage `only` or of all stages, in spec order then by number.
pub fn started(run: &PipelineRun, only: Option<&str>) -> Vec<Attempt> {
    let Some(status) = run.status.as_ref() else { return Vec::new() };
    let mut out = Vec::new();
    for stage in run.spec.stages.iter().filter(|s| waits_for(s).is_none()) {
        if only.is_some_and(|o| o != stage.name) {
            continue;
        }
        let Some(st) = status.stages.iter().find(|st| st.name == stage.name) else { continue };
        let mut numbers: BTreeSet<Attempt> = st
            .history
            .iter()
            .filter(|h| !h.job_name.is_empty())
            .map(|h| Attempt { stage: st.name.clone(), number: h.attempt, job: h.job_name.clone() })
            .collect();
        if let Some(job) = current_job(st) {
            numbers.insert(Attempt { stage: st.name.clone(), number: st.attempt, job });
        }
        out.extend(numbers);
    }
    out
}

/// The attempts `run` records as cancelled: `(stage, number)`.
pub fn cancelled(run: &PipelineRun) -> Vec<(String, u32)> {
    let Some(status) = run.status.as_ref() else { return Vec::new() };
    status
        .stages
        .iter()
        .flat_map(|st| {
            st.history.iter().filter(|h| h.phase == StagePhase::Cancelled).map(|h| (st.name.clone(), h.attempt))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry::api::pipelinerun::AttemptStatus;

    fn run_with(stages: serde_json::Value, status: serde_json::Value) -> PipelineRun {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": "nightly", "namespace": "ci", "uid": "u-1"},
            "spec": {"stages": stages},
            "status": status,
        }))
        .unwrap()
    }

    fn history(attempt: u32, phase: &str) -> serde_json::Value {
        serde_json::json!({"attempt": attempt, "jobName": format!("nightly-test-{attempt}-x"), "phase": phase})
    }

    /// `test` failed once then passed on attempt 2; `lint` runs attempt 1;
    /// `deploy` never started; `sdk` waits for an ImageBuild.
    fn run() -> PipelineRun {
        run_with(
            serde_json::json!([
                {"name": "sdk", "imageBuild": {"name": "sdk"}},
                {"name": "test", "run": {"image": "busybox"}},
                {"name": "lint", "run": {"image": "busybox"}},
                {"name": "deploy", "needs": ["test"], "run": {"image": "busybox"}},
            ]),
            serde_json::json!({"stages": [
                {"name": "sdk", "phase": "Succeeded", "attempt": 1},
                {"name": "test", "phase": "Succeeded", "attempt": 2, "jobName": "nightly-test-2-x",
                 "history": [history(1, "Failed"), history(2, "Succeeded")]},
                {"name": "lint", "phase": "Running", "attempt": 1, "jobName": "nightly-lint-1-x"},
                {"name": "deploy", "phase": "Pending"},
            ]}),
        )
    }

    fn status<'a>(run: &'a PipelineRun, name: &str) -> &'a StageStatus {
        run.status.as_ref().unwrap().stages.iter().find(|s| s.name == name).unwrap()
    }

    fn picked(stage: &str, which: Which) -> Result<(u32, String), String> {
        let r = run();
        pick(&r, status(&r, stage), which).map(|a| (a.number, a.job)).map_err(|e| e.to_string())
    }

    #[test]
    fn the_current_attempt_is_the_status_job() {
        assert_eq!(picked("test", Which::Current), Ok((2, "nightly-test-2-x".into())));
        assert_eq!(picked("lint", Which::Current), Ok((1, "nightly-lint-1-x".into())));
    }

    #[test]
    fn failed_picks_the_newest_failed_attempt() {
        assert_eq!(picked("test", Which::LastFailed), Ok((1, "nightly-test-1-x".into())));
        assert_eq!(
            picked("lint", Which::LastFailed),
            Err("stage \"lint\" of pipelinerun \"nightly\" has no failed attempt".into())
        );
    }

    #[test]
    fn a_numbered_attempt_must_exist() {
        assert_eq!(picked("test", Which::Number(1)), Ok((1, "nightly-test-1-x".into())));
        assert_eq!(picked("lint", Which::Number(1)), Ok((1, "nightly-lint-1-x".into())));
        assert_eq!(
            picked("test", Which::Number(3)),
            Err("stage \"test\" of pipelinerun \"nightly\" has no attempt 3 (it has attempts 1 to 2)".into())
        );
        assert_eq!(
            picked("lint", Which::Number(0)),
            Err("stage \"lint\" of pipelinerun \"nightly\" has no attempt 0 (it has only attempt 1)".into())
        );
    }

    #[test]
    fn an_attempt_older_than_the_history_gets_its_computed_job_name() {
        let mut r = run();
        let test = &mut r.status.as_mut().unwrap().stages[1];
        test.attempt = 12;
        test.job_name = Some("nightly-test-12-x".into());
        test.history = (3..=12)
            .map(|a| AttemptStatus {
                attempt: a,
                job_name: format!("nightly-test-{a}-x"),
                phase: StagePhase::Failed,
                ..Default::default()
            })
            .collect();
        let a = pick(&r, status(&r, "test"), Which::Number(2)).unwrap();
        assert_eq!(a.job, job_name("nightly", "u-1", "test", 2));
    }

    #[test]
    fn a_stage_not_started_or_without_a_job_says_so() {
        assert_eq!(
            picked("deploy", Which::Current),
            Err("stage \"deploy\" of pipelinerun \"nightly\" has no attempt yet (Pending)".into())
        );
        assert_eq!(
            picked("sdk", Which::Current),
            Err("stage \"sdk\" of pipelinerun \"nightly\" waits for ImageBuild \"sdk\": it runs no Job".into())
        );
    }

    #[test]
    fn a_rerun_not_started_yet_still_shows_the_last_attempt() {
        let mut r = run();
        let test = &mut r.status.as_mut().unwrap().stages[1];
        test.job_name = None;
        test.phase = StagePhase::Pending;
        assert_eq!(pick(&r, status(&r, "test"), Which::Current).unwrap().number, 2);
    }

    #[test]
    fn every_stage_skips_those_without_an_attempt_or_a_job() {
        let stages: Vec<(String, u32)> =
            of_every_stage(&run(), Which::Current).into_iter().map(|a| (a.stage, a.number)).collect();
        assert_eq!(stages, [("test".to_string(), 2), ("lint".to_string(), 1)]);
        let failed: Vec<String> = of_every_stage(&run(), Which::LastFailed).into_iter().map(|a| a.stage).collect();
        assert_eq!(failed, ["test"]);
    }

    #[test]
    fn started_lists_every_attempt_with_a_job_once() {
        let all: Vec<String> = started(&run(), None).iter().map(Attempt::label).collect();
        assert_eq!(all, ["stage test attempt 1", "stage test attempt 2", "stage lint attempt 1"]);
        assert_eq!(started(&run(), Some("lint")).len(), 1);
    }

    #[test]
    fn cancelled_attempts_are_read_from_the_history() {
        let mut r = run();
        assert!(cancelled(&r).is_empty());
        let lint = &mut r.status.as_mut().unwrap().stages[2];
        lint.history.push(AttemptStatus {
            attempt: 1,
            job_name: "nightly-lint-1-x".into(),
            phase: StagePhase::Cancelled,
            ..Default::default()
        });
        assert_eq!(cancelled(&r), [("lint".to_string(), 1)]);
    }
}

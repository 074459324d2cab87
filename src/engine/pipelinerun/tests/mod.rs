//! The PipelineRun planner's scenarios, one file per concern, driven through
//! the kit's simulated cluster ([`testing::Sim`]) with a [`Run`] world: the
//! planner's actions are applied to an in-memory Job list, tests decide how
//! Jobs end.

mod bounds;
mod concurrency;
mod failure;
mod fuzz;
mod gate;
mod ordering;
mod outputs;
mod references;
mod replan;
mod rerun;
mod retries;
mod services;
mod spec;
mod stop;
mod tap;
mod terminates;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use crate::api::common::ContainerRun;
use crate::api::pipelinerun::{
    Concurrency, ConcurrencyPolicy, Param, PipelineRunSpec, PipelineRunStatus, ResultsFormat, RunPhase, SkipReason,
    Stage, StagePhase, StageStatus,
};
use crate::engine::job::{JobOutcome, JobState};
use crate::engine::pipelinerun::launch::StageLaunch;
use crate::engine::pipelinerun::plan::{MAX_HISTORY, QUEUE_POLL, REFERENCE_POLL, SERVICE_POLL};
use crate::engine::pipelinerun::references::Referenced;
use crate::engine::pipelinerun::view::{failures_to_explain, logs_wanted, GroupMember, JobObservation, Observed, View};
use crate::engine::pipelinerun::{plan, Action, Plan, CONDITION_SUCCEEDED};
use crate::engine::settings::Settings;
use crate::engine::testing::{self, t0, World};

/// The simulated run's `metadata.uid`.
const UID: &str = "4a1c2e7b-0d3f-4e5a-8b9c-1d2e3f4a5b6c";

/// The Job the planner names for `stage`'s `attempt` of the simulated run.
fn job(stage: &str, attempt: u32) -> String {
    crate::engine::naming::job_name("run", UID, stage, attempt)
}

fn stage(name: &str, needs: &[&str]) -> Stage {
    Stage {
        name: name.into(),
        needs: needs.iter().map(|s| s.to_string()).collect(),
        run: Some(ContainerRun { image: Some("local/busybox:1".into()), ..Default::default() }),
        ..Default::default()
    }
}

fn spec(stages: Vec<Stage>) -> PipelineRunSpec {
    PipelineRunSpec { stages, ..Default::default() }
}

/// One run named `run` (created at [`t0`]) and the cluster around it: its
/// Jobs, the objects it waits for, its annotations and the admin's settings.
struct Run {
    spec: PipelineRunSpec,
    observed: Observed,
    uid: &'static str,
    rerun: Option<String>,
    superseded_by: Option<String>,
    settings: Settings,
    /// Every Job created, in order.
    created_jobs: Vec<String>,
    /// Every Job deleted, in order.
    deleted_jobs: Vec<String>,
}

impl Run {
    fn new(spec: PipelineRunSpec) -> Self {
        Run {
            spec,
            observed: Observed::default(),
            uid: UID,
            rerun: None,
            superseded_by: None,
            settings: Settings::default(),
            created_jobs: Vec::new(),
            deleted_jobs: Vec::new(),
        }
    }

    /// The run as the planner sees it with `status`.
    fn view<'a>(&'a self, status: &'a PipelineRunStatus) -> View<'a> {
        View {
            name: "run",
            uid: self.uid,
            generation: Some(1),
            created: t0(),
            spec: &self.spec,
            status,
            rerun: self.rerun.as_deref(),
            superseded_by: self.superseded_by.as_deref(),
            settings: &self.settings,
        }
    }
}

impl World for Run {
    type Status = PipelineRunStatus;
    type Action = Action;

    fn plan(&self, status: &PipelineRunStatus, now: DateTime<Utc>) -> Plan {
        plan(&self.view(status), &self.observed, now)
    }

    /// Jobs are created active and deleted at once; the annotation is cleared.
    fn apply(&mut self, action: &Action, now: DateTime<Utc>) {
        match action {
            Action::CreateJob(l) => {
                assert!(
                    self.observed.jobs.iter().all(|j| j.outcome.name != l.job_name),
                    "Job {} created twice",
                    l.job_name
                );
                assert!(!self.created_jobs.contains(&l.job_name), "Job {} created twice", l.job_name);
                self.created_jobs.push(l.job_name.clone());
                self.observed.jobs.push(JobObservation {
                    stage: l.stage.clone(),
                    attempt: l.attempt,
                    outcome: JobOutcome { name: l.job_name.clone(), created: Some(now), ..Default::default() },
                });
            }
            Action::DeleteJob { name } => {
                self.deleted_jobs.push(name.clone());
                self.observed.jobs.retain(|j| &j.outcome.name != name);
            }
            Action::ClearRerunAnnotation => self.rerun = None,
            _ => {}
        }
    }
}

/// The simulated cluster of one run.
type Sim = testing::Sim<Run>;

impl Sim {
    fn new(spec: PipelineRunSpec) -> Self {
        Sim::of(Run::new(spec))
    }

    /// Ends `stage`'s newest Job in `state`, having written `outputs`.
    fn finish(&mut self, stage: &str, state: JobState, outputs: &str) {
        let now = self.now;
        let observed = &mut self.world.observed;
        let attempt = observed.latest_attempt(stage).unwrap_or_else(|| panic!("{stage} has no Job"));
        let job = observed.jobs.iter_mut().find(|j| j.stage == stage && j.attempt == attempt).unwrap();
        assert_eq!(job.outcome.state, JobState::Active, "{stage} attempt {attempt} already finished");
        job.outcome.state = state;
        job.outcome.finished = Some(now);
        job.outcome.outputs = (!outputs.is_empty()).then(|| outputs.to_string());
        job.outcome.pod = Some(format!("{}-x", job.outcome.name));
        if state == JobState::Failed {
            job.outcome.message =
                Some(format!("container stage in pod {}-x exited with code 1 (Error)", job.outcome.name));
        }
    }

    fn succeed(&mut self, stage: &str) {
        self.finish(stage, JobState::Succeeded, "");
    }

    fn fail(&mut self, stage: &str) {
        self.finish(stage, JobState::Failed, "");
    }

    fn stage(&self, name: &str) -> &StageStatus {
        self.status.stages.iter().find(|s| s.name == name).unwrap()
    }

    fn phase(&self, name: &str) -> StagePhase {
        self.stage(name).phase
    }

    fn running(&self) -> Vec<String> {
        self.status.stages.iter().filter(|s| s.phase == StagePhase::Running).map(|s| s.name.clone()).collect()
    }

    /// The (status, reason) of the run's `Succeeded` condition.
    fn condition(&self) -> (String, String) {
        testing::condition(&self.status.conditions, CONDITION_SUCCEEDED)
    }

    /// The Jobs the last plan created.
    fn launches(&self) -> Vec<StageLaunch> {
        self.last
            .as_ref()
            .unwrap()
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::CreateJob(l) => Some((**l).clone()),
                _ => None,
            })
            .collect()
    }
}

fn env_of(l: &StageLaunch, name: &str) -> Option<String> {
    l.env.iter().find(|e| e.name == name).and_then(|e| e.value.clone())
}

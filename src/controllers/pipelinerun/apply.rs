//! Carries out the planner's actions. Every action is idempotent: creating
//! what exists (and is the run's) or deleting what is gone is not an error,
//! so a reconcile that is retried (or an operator that restarted)
//! converges. A create the API server refuses for good does not stop the
//! others: it is handed back for the planner to fail its stage, and the
//! run is planned again within the same reconcile ([`apply`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{DeleteParams, Patch, PropagationPolicy};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::api::{ImageBuild, PipelineRun};
use crate::controllers::create::create_child;
use crate::controllers::expectations::Expectations;
use crate::controllers::{describe, ok_if, patch_params, Error, KubeResultExt};
use crate::engine::imagebuild::suffix::may_be_built_image;
use crate::engine::naming::{ANNOTATION_RERUN, ANNOTATION_SUPERSEDED_BY};
use crate::engine::pipelinerun::references::builds_with_image;
use crate::engine::pipelinerun::replan::{record_applied, replan};
use crate::engine::pipelinerun::{Action, Observed, Plan, View};
use crate::engine::refusal::Refusal;
use crate::engine::shard::run_bucket;
use crate::resources::shard::{shard_claim, shard_job};
use crate::resources::{controller_ref, job::stage_job, workspace::workspace_claim};

/// Applies `plan`'s actions for `view`'s run. A refused create fails its
/// stage: plan again with the refusal (recorded in `observed`) and apply
/// that, so fail-fast, gating and finally follow in this reconcile. Each
/// round finishes a stage, so the rounds are bounded by the stages. Returns
/// the last plan, or `None` when the run itself was deleted (its TTL passed).
pub async fn apply(
    client: &Client,
    run: &PipelineRun,
    view: &View<'_>,
    observed: &mut Observed,
    mut plan: Plan,
    expectations: &Expectations,
    now: DateTime<Utc>,
) -> Result<Option<Plan>, Error> {
    for round in 0.. {
        let refused = match apply_actions(client, run, &plan.actions, expectations).await? {
            Outcome::Deleted => return Ok(None),
            Outcome::Continue(refused) => refused,
        };
        if refused.is_empty() || round > run.spec.stages.len() {
            break;
        }
        record_applied(observed, &plan.actions, refused, now);
        plan = replan(view, observed, plan, now);
    }
    Ok(Some(plan))
}

/// What the reconcile should do after applying.
enum Outcome {
    /// Go on: write status. The creates the API server refused for good,
    /// by object name (empty when all went through).
    Continue(BTreeMap<String, Refusal>),
    /// The run was deleted (TTL); nothing more to write.
    Deleted,
}

/// Applies `actions` for `run` in order, except `ClearRerunAnnotation`:
/// the reconcile clears the annotation once the status that records the
/// rerun is written, so a failed write never loses the request. The Jobs
/// created and deleted are remembered until the Job cache shows it.
async fn apply_actions(
    client: &Client,
    run: &PipelineRun,
    actions: &[Action],
    expectations: &Expectations,
) -> Result<Outcome, Error> {
    let ns = run.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let owner = controller_ref(run).ok_or(Error::MissingField("metadata.uid"))?;
    let mut refused = BTreeMap::new();
    let shard = run_bucket(run);
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns);
    for action in actions {
        match action {
            Action::CreateJob(launch) => {
                let job = shard_job(stage_job(launch, &ns, owner.clone()), shard);
                info!(run = %run.name_any(), job = %launch.job_name, "creating stage Job");
                match create_child(&jobs, &job, &owner.uid).await? {
                    None => expectations.created(&owner.uid, &launch.job_name),
                    Some(refusal) => {
                        warn!(run = %run.name_any(), job = %launch.job_name, why = %refusal.message, "stage Job refused");
                        refused.insert(launch.job_name.clone(), refusal);
                    }
                }
            }
            Action::DeleteJob { name } => {
                let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
                info!(run = %run.name_any(), job = %name, "deleting stage Job");
                ok_if(jobs.delete(name, &dp).await, 404).applying("delete", || describe::<Job>(Some(&ns), name))?;
                expectations.deleted(&owner.uid, name);
            }
            Action::EnsureWorkspace { claim, size, storage_class } => {
                let pvc = workspace_claim(claim, &run.name_any(), &ns, size, storage_class.as_deref(), owner.clone());
                let pvc = shard_claim(pvc, shard);
                let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
                if let Some(refusal) = create_child(&claims, &pvc, &owner.uid).await? {
                    warn!(run = %run.name_any(), claim = %claim, why = %refusal.message, "workspace claim refused");
                    refused.insert(claim.clone(), refusal);
                }
            }
            Action::Supersede { run: older } => {
                let patch =
                    serde_json::json!({"metadata": {"annotations": {ANNOTATION_SUPERSEDED_BY: run.name_any()}}});
                ok_if(runs.patch(older, &patch_params(), &Patch::Merge(&patch)).await, 404)
                    .applying("mark superseded", || describe::<PipelineRun>(Some(&ns), older))?;
            }
            Action::ClearRerunAnnotation => {}
            Action::MarkImageUsed { build } => mark_used(client, &ns, build).await?,
            Action::DeleteRun => {
                info!(run = %run.name_any(), "deleting finished run: ttlSecondsAfterFinished passed");
                ok_if(runs.delete(&run.name_any(), &DeleteParams::background()).await, 404)
                    .applying("delete", || describe::<PipelineRun>(Some(&ns), &run.name_any()))?;
                return Ok(Outcome::Deleted);
            }
        }
    }
    mark_images_of_new_jobs_used(client, &ns, actions, &refused).await?;
    Ok(Outcome::Continue(refused))
}

/// Removes the `gantry.dev/rerun` annotation: the rerun it asked for is
/// recorded in the status written before.
pub async fn clear_rerun_annotation(client: &Client, run: &PipelineRun) -> Result<(), Error> {
    let ns = run.namespace().unwrap_or_default();
    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns);
    let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION_RERUN: null}}});
    ok_if(runs.patch(&run.name_any(), &patch_params(), &Patch::Merge(&patch)).await, 404)
        .applying("clear the rerun annotation of", || describe::<PipelineRun>(Some(&ns), &run.name_any()))
}

/// Bumps an ImageBuild's `lastUsed` (a merge patch of that one field: the
/// ImageBuild controller leaves it out of the status it applies).
async fn mark_used(client: &Client, ns: &str, build: &str) -> Result<(), Error> {
    let builds = Api::<ImageBuild>::namespaced(client.clone(), ns);
    let patch = serde_json::json!({"status": {"lastUsed": chrono::Utc::now()}});
    ok_if(builds.patch_status(build, &patch_params(), &Patch::Merge(&patch)).await, 404)
        .applying("mark used", || describe::<ImageBuild>(Some(ns), build))
}

/// A stage Job that runs an ImageBuild's latest image uses that build.
async fn mark_images_of_new_jobs_used(
    client: &Client,
    ns: &str,
    actions: &[Action],
    refused: &BTreeMap<String, Refusal>,
) -> Result<(), Error> {
    let images: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateJob(launch) if !refused.contains_key(&launch.job_name) => Some(launch.image.as_str()),
            _ => None,
        })
        // Only an image tagged with a build suffix can be a build's: for the
        // others, no ImageBuild LIST per created Job.
        .filter(|image| may_be_built_image(image))
        .collect();
    if images.is_empty() {
        return Ok(());
    }
    let builds = Api::<ImageBuild>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .observing(|| format!("ImageBuilds in {ns}"))?
        .items;
    let mut used: Vec<&str> = images.iter().flat_map(|image| builds_with_image(&builds, image)).collect();
    used.sort_unstable();
    used.dedup();
    for build in used {
        mark_used(client, ns, build).await?;
    }
    Ok(())
}

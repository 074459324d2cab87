//! What the ImageBuild controller writes: the plan's Jobs (a create the API
//! server refuses for good is reported, for the build to fail), and status.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, PropagationPolicy};
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use crate::api::imagebuild::ImageBuildStatus;
use crate::api::ImageBuild;
use crate::controllers::create::create_child;
use crate::controllers::{describe, ok_if, Context, Error, KubeResultExt};
use crate::engine::imagebuild::{record_applied, replan, Action, BuildJob, Plan, View};
use crate::engine::refusal::Refusal;
use crate::resources::build_job::{build_job, prune_job};
use crate::resources::controller_ref;

/// Applies `plan`; returns the plan whose status to write. When the API
/// server refused a create, the refused build (or prune) fails with the
/// server's message: planned once more from `observed` with the refusal
/// observed, and applied. A failed build is not retried by itself, so one
/// more round settles it.
pub async fn apply(
    ctx: &Context,
    build: &ImageBuild,
    view: &View<'_>,
    mut observed: Vec<BuildJob>,
    plan: Plan,
    now: DateTime<Utc>,
) -> Result<Plan, Error> {
    let refused = apply_jobs(ctx, build, &plan).await?;
    if refused.is_empty() {
        return Ok(plan);
    }
    record_applied(&mut observed, &plan.actions, &refused, now);
    let plan = replan(view, &observed, plan, now);
    apply_jobs(ctx, build, &plan).await?;
    Ok(plan)
}

/// Creates and deletes the plan's Jobs; returns the creates the API server
/// refused for good, by Job name.
async fn apply_jobs(ctx: &Context, build: &ImageBuild, plan: &Plan) -> Result<BTreeMap<String, Refusal>, Error> {
    let (name, ns) = (build.name_any(), build.namespace().unwrap_or_default());
    let owner = controller_ref(build).ok_or(Error::MissingField("metadata.uid"))?;
    let jobs_api = Api::<Job>::namespaced(ctx.client.clone(), &ns);
    let mut refused = BTreeMap::new();
    for action in &plan.actions {
        let (job_name, job) = match action {
            Action::CreateJob(launch) => {
                info!(build = %name, job = %launch.job_name, image = %launch.image, "starting build");
                (&launch.job_name, build_job(launch, &build.spec, &ns, owner.clone()))
            }
            Action::CreatePruneJob(launch) => {
                info!(build = %name, job = %launch.job_name, image = %launch.image, "pruning obsolete image");
                (&launch.job_name, prune_job(launch, &build.spec, &ns, owner.clone()))
            }
            Action::DeleteJob { name: job } => {
                let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
                ok_if(jobs_api.delete(job, &dp).await, 404).applying("delete", || describe::<Job>(Some(&ns), job))?;
                continue;
            }
        };
        if let Some(refusal) = create_child(&jobs_api, &job, &owner.uid).await? {
            warn!(build = %name, job = %job_name, why = %refusal.message, "build Job refused");
            refused.insert(job_name.clone(), refusal);
        }
    }
    Ok(refused)
}

/// Applies the status, except `lastUsed`: the PipelineRun controller owns
/// that field (it bumps it with a merge patch whenever a stage uses the
/// image), and applying a stale copy here would set it back.
pub async fn write_status(ctx: &Context, build: &ImageBuild, status: &ImageBuildStatus) -> Result<(), Error> {
    let api = Api::<ImageBuild>::namespaced(ctx.client.clone(), &build.namespace().unwrap_or_default());
    let status = ImageBuildStatus { last_used: None, ..status.clone() };
    crate::controllers::write_status(&api, &build.name_any(), &status).await.map(drop)
}

//! The ImageBuild reconciler: observe the build Jobs, ask the build planner,
//! create or delete Jobs, write status, publish Events.

use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use super::jobs::observe_jobs;
use super::{catch_panic, ok_if, panic_note, publish, Context, Error, Shutdown};
use crate::api::imagebuild::ImageBuildStatus;
use crate::api::{ImageBuild, FIELD_MANAGER};
use crate::engine::build_planner::{plan_build, BuildAction, BuildJob, BuildView};
use crate::engine::naming::{
    run_label, ANNOTATION_IMAGE, ANNOTATION_REBUILD, LABEL_GENERATION, LABEL_IMAGE_BUILD, LABEL_PRUNE, LABEL_SUFFIX,
};
use crate::resources::build_job::{build_job, prune_job, BUILD_CONTAINER, PRUNE_CONTAINER};
use crate::resources::controller_ref;

/// Runs the ImageBuild controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let builds = ctx.scoped_api::<ImageBuild>();
    let jobs = ctx.scoped_api::<Job>();
    info!("watching ImageBuilds");
    Controller::new(builds, watcher::Config::default())
        .owns(jobs, watcher::Config::default().labels(LABEL_IMAGE_BUILD))
        .with_config(ctx.controller_config())
        .graceful_shutdown_on(shutdown)
        .run(reconcile_catching_panics, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                debug!(error = %err, "ImageBuild reconcile failed");
            }
        })
        .await;
}

/// [`reconcile`], with a panic reported on this build (a Warning Event)
/// instead of stopping the controller for every build.
async fn reconcile_catching_panics(build: Arc<ImageBuild>, ctx: Arc<Context>) -> Result<Action, Error> {
    let result = catch_panic(reconcile(build.clone(), ctx.clone())).await;
    if let Err(Error::Panicked(why)) = &result {
        publish(&ctx, &*build, &[panic_note(&build.name_any(), why)]).await;
    }
    result
}

async fn reconcile(build: Arc<ImageBuild>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started("imagebuild");
    if build.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = build.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = build.name_any();
    let selector = format!("{LABEL_IMAGE_BUILD}={}", run_label(&name));
    let jobs_api = Api::<Job>::namespaced(ctx.client.clone(), &ns);
    let jobs = jobs_api.list(&ListParams::default().labels(&selector)).await?;
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns).list(&ListParams::default().labels(&selector)).await?;
    let (prune_jobs, build_jobs): (Vec<Job>, Vec<Job>) =
        jobs.items.into_iter().partition(|j| j.labels().contains_key(LABEL_PRUNE));
    let builds = observe_jobs(&build_jobs, &pods.items, BUILD_CONTAINER).into_iter().map(|o| (o, false));
    let prunes = observe_jobs(&prune_jobs, &pods.items, PRUNE_CONTAINER).into_iter().map(|o| (o, true));
    let observed: Vec<BuildJob> = builds
        .chain(prunes)
        .filter_map(|((job, o), prune)| {
            let (labels, annotations) = (job.labels(), job.annotations());
            Some(BuildJob {
                rebuild_request: annotations.get(ANNOTATION_REBUILD).cloned(),
                image: annotations.get(ANNOTATION_IMAGE).cloned(),
                suffix: labels.get(LABEL_SUFFIX)?.clone(),
                generation: labels.get(LABEL_GENERATION).and_then(|g| g.parse().ok()).unwrap_or_default(),
                outcome: o,
                prune,
            })
        })
        .collect();

    let status = build.status.clone().unwrap_or_default();
    let settings = ctx.config.settings_for(&ns);
    let view = BuildView {
        name: &name,
        generation: build.metadata.generation.unwrap_or(1),
        spec: &build.spec,
        status: &status,
        rebuild: build.annotations().get(ANNOTATION_REBUILD).map(String::as_str),
        settings: &settings,
    };
    let plan = plan_build(&view, &observed, Utc::now());

    let owner = controller_ref(&*build).ok_or(Error::MissingField("metadata.uid"))?;
    for action in &plan.actions {
        match action {
            BuildAction::CreateJob(launch) => {
                info!(build = %name, job = %launch.job_name, image = %launch.image, "starting build");
                let job = build_job(launch, &build.spec, &ns, owner.clone());
                ok_if(jobs_api.create(&PostParams::default(), &job).await, 409)?;
            }
            BuildAction::CreatePruneJob(launch) => {
                info!(build = %name, job = %launch.job_name, image = %launch.image, "pruning obsolete image");
                let job = prune_job(launch, &build.spec, &ns, owner.clone());
                ok_if(jobs_api.create(&PostParams::default(), &job).await, 409)?;
            }
            BuildAction::DeleteJob { name: job } => {
                let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
                ok_if(jobs_api.delete(job, &dp).await, 404)?;
            }
        }
    }
    if plan.status != status {
        write_status(&ctx, &build, &plan.status).await?;
    }
    publish(&ctx, &*build, &plan.notes).await;
    Ok(match plan.requeue_after {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// Applies the status, except `lastUsed`: the PipelineRun controller owns
/// that field (it bumps it with a merge patch whenever a stage uses the
/// image), and applying a stale copy here would set it back.
async fn write_status(ctx: &Context, build: &ImageBuild, status: &ImageBuildStatus) -> Result<(), Error> {
    let api = Api::<ImageBuild>::namespaced(ctx.client.clone(), &build.namespace().unwrap_or_default());
    let status = ImageBuildStatus { last_used: None, ..status.clone() };
    let patch = serde_json::json!({"apiVersion": "gantry.dev/v1alpha1", "kind": "ImageBuild", "status": status});
    api.patch_status(&build.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

fn error_policy(build: Arc<ImageBuild>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed("imagebuild", &err.metric_reason());
    warn!(name = %build.name_any(), error = %err, "ImageBuild reconcile failed; retrying");
    Action::requeue(err.backoff())
}

//! The ImageBuild reconciler: observe the build Jobs (those it controls,
//! by UID), ask the build planner, create or delete Jobs, write status,
//! publish Events. A Job the API server refuses fails its build.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use super::create::create_child;
use super::jobs::observe_jobs;
use super::ownership::split_by_owner;
use super::{catch_panic, describe, ok_if, panic_note, publish, Context, Error, KubeResultExt, Shutdown};
use crate::api::imagebuild::ImageBuildStatus;
use crate::api::ImageBuild;
use crate::engine::build_planner::{plan_build, BuildAction, BuildJob, BuildPlan, BuildView};
use crate::engine::naming::{
    run_label, ANNOTATION_IMAGE, ANNOTATION_REBUILD, LABEL_GENERATION, LABEL_IMAGE_BUILD, LABEL_PRUNE, LABEL_SUFFIX,
};
use crate::engine::observed::Refusal;
use crate::engine::replan::{record_applied_builds, replan_build};
use crate::resources::build_job::{build_job, prune_job, BUILD_CONTAINER, PRUNE_CONTAINER};
use crate::resources::controller_ref;

/// Runs the ImageBuild controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let builds = ctx.scoped_api::<ImageBuild>();
    let jobs = ctx.scoped_api::<Job>();
    info!("watching ImageBuilds");
    let backoff = ctx.backoff.clone();
    let results = super::lean_controller(builds, watcher::Config::default())
        .owns(jobs, watcher::Config::default().labels(LABEL_IMAGE_BUILD))
        .with_config(ctx.controller_config())
        .graceful_shutdown_on(shutdown)
        .run(reconcile_catching_panics, error_policy, ctx);
    super::drain(results, backoff).await;
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
    let of_build = || format!("of {}", describe::<ImageBuild>(Some(&ns), &name));
    let jobs =
        jobs_api.list(&ListParams::default().labels(&selector)).await.observing(|| format!("Jobs {}", of_build()))?;
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default().labels(&selector))
        .await
        .observing(|| format!("pods {}", of_build()))?;
    let owner = controller_ref(&*build).ok_or(Error::MissingField("metadata.uid"))?;
    // Jobs with this build's labels but another controller are not its own.
    let (owned, _) = split_by_owner(jobs.items, &owner.uid);
    let (prune_jobs, build_jobs): (Vec<Job>, Vec<Job>) =
        owned.into_iter().partition(|j| j.labels().contains_key(LABEL_PRUNE));
    let builds = observe_jobs(&build_jobs, &pods.items, BUILD_CONTAINER).into_iter().map(|o| (o, false));
    let prunes = observe_jobs(&prune_jobs, &pods.items, PRUNE_CONTAINER).into_iter().map(|o| (o, true));
    let mut observed: Vec<BuildJob> = builds
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
    let now = Utc::now();
    let mut plan = plan_build(&view, &observed, now);
    let refused = apply(&ctx, &build, &plan).await?;
    if !refused.is_empty() {
        // The refused build (or prune) fails with the server's message; a
        // failed build is not retried by itself, so one more round settles it.
        record_applied_builds(&mut observed, &plan.actions, &refused, now);
        plan = replan_build(&view, &observed, plan, now);
        apply(&ctx, &build, &plan).await?;
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

/// Creates and deletes the plan's Jobs; returns the creates the API server
/// refused for good, by Job name.
async fn apply(ctx: &Context, build: &ImageBuild, plan: &BuildPlan) -> Result<BTreeMap<String, Refusal>, Error> {
    let (name, ns) = (build.name_any(), build.namespace().unwrap_or_default());
    let owner = controller_ref(build).ok_or(Error::MissingField("metadata.uid"))?;
    let jobs_api = Api::<Job>::namespaced(ctx.client.clone(), &ns);
    let mut refused = BTreeMap::new();
    for action in &plan.actions {
        let (job_name, job) = match action {
            BuildAction::CreateJob(launch) => {
                info!(build = %name, job = %launch.job_name, image = %launch.image, "starting build");
                (&launch.job_name, build_job(launch, &build.spec, &ns, owner.clone()))
            }
            BuildAction::CreatePruneJob(launch) => {
                info!(build = %name, job = %launch.job_name, image = %launch.image, "pruning obsolete image");
                (&launch.job_name, prune_job(launch, &build.spec, &ns, owner.clone()))
            }
            BuildAction::DeleteJob { name: job } => {
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
async fn write_status(ctx: &Context, build: &ImageBuild, status: &ImageBuildStatus) -> Result<(), Error> {
    let api = Api::<ImageBuild>::namespaced(ctx.client.clone(), &build.namespace().unwrap_or_default());
    let status = ImageBuildStatus { last_used: None, ..status.clone() };
    super::write_status(&api, &build.name_any(), &status).await.map(drop)
}

/// Transient errors never fail a build: it is reconciled again, backing
/// off per ImageBuild while the errors last.
fn error_policy(build: Arc<ImageBuild>, err: &Error, ctx: Arc<Context>) -> Action {
    super::error_policy(build, err, &ctx)
}

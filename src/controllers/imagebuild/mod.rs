//! The ImageBuild reconciler: observe the build Jobs (those it controls,
//! by UID), ask the build planner, create or delete Jobs, write status,
//! publish Events. A Job the API server refuses fails its build.
//!
//! - [`observe`]: the Jobs and pods, as the planner's
//!   [`BuildJob`](crate::engine::imagebuild::BuildJob)s;
//! - the engine ([`crate::engine::imagebuild`]) decides;
//! - [`apply`]: the Jobs, then the status.

pub mod apply;
pub mod observe;

use std::sync::Arc;

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::ResourceExt;
use tracing::info;

use super::{catch_panic, panic_note, publish, Context, Error, Shutdown};
use crate::api::imagebuild::ImageBuildStatus;
use crate::api::ImageBuild;
use crate::engine::imagebuild::{plan, View};
use crate::engine::naming::{ANNOTATION_REBUILD, LABEL_IMAGE_BUILD};
use crate::engine::settings::Settings;

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
        .run(reconcile_catching_panics, super::error_policy, ctx);
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
    let observed = observe::observe(&ctx, &build, &ns).await?;
    let (status, settings) = (build.status.clone().unwrap_or_default(), ctx.config.settings_for(&ns));
    let view = view(&build, &status, &settings);
    let now = Utc::now();
    let plan = plan(&view, &observed, now);
    let plan = apply::apply(&ctx, &build, &view, observed, plan, now).await?;
    if plan.status != status {
        apply::write_status(&ctx, &build, &plan.status).await?;
    }
    publish(&ctx, &*build, &plan.notes).await;
    Ok(plan.requeue_after.map_or_else(Action::await_change, Action::requeue))
}

/// What the planner reads of `build`.
fn view<'a>(build: &'a ImageBuild, status: &'a ImageBuildStatus, settings: &'a Settings) -> View<'a> {
    View {
        name: build.metadata.name.as_deref().unwrap_or_default(),
        generation: build.metadata.generation.unwrap_or(1),
        spec: &build.spec,
        status,
        rebuild: build.annotations().get(ANNOTATION_REBUILD).map(String::as_str),
        settings,
    }
}

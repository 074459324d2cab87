//! The ImageBuild reconciler.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::ResourceExt;
use tracing::{debug, info, warn};

use super::{Context, Error, Shutdown};
use crate::api::ImageBuild;

/// Runs the ImageBuild controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let builds = ctx.scoped_api::<ImageBuild>();
    let jobs = ctx.scoped_api::<Job>();
    info!("watching ImageBuilds");
    Controller::new(builds, watcher::Config::default())
        .owns(jobs, watcher::Config::default().labels("gantry.dev/image-build"))
        .with_config(ctx.controller_config())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                debug!(error = %err, "ImageBuild reconcile failed");
            }
        })
        .await;
}

async fn reconcile(build: Arc<ImageBuild>, _ctx: Arc<Context>) -> Result<Action, Error> {
    debug!(name = %build.name_any(), "ImageBuild observed");
    Ok(Action::await_change())
}

fn error_policy(build: Arc<ImageBuild>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(name = %build.name_any(), error = %err, "ImageBuild reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
}

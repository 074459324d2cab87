//! The PipelineRun reconciler.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use super::{Context, Error, Shutdown};
use crate::api::PipelineRun;

/// Runs the PipelineRun controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let runs = Api::<PipelineRun>::all(ctx.client.clone());
    let jobs = Api::<Job>::all(ctx.client.clone());
    info!("watching PipelineRuns");
    Controller::new(runs, watcher::Config::default())
        .owns(jobs, watcher::Config::default().labels("gantry.dev/run"))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                debug!(error = %err, "PipelineRun reconcile failed");
            }
        })
        .await;
}

async fn reconcile(run: Arc<PipelineRun>, _ctx: Arc<Context>) -> Result<Action, Error> {
    debug!(name = %run.name_any(), "PipelineRun observed");
    Ok(Action::await_change())
}

fn error_policy(run: Arc<PipelineRun>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(name = %run.name_any(), error = %err, "PipelineRun reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
}

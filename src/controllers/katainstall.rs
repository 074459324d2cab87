//! The KataInstall reconciler.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use super::{Context, Error, Shutdown};
use crate::api::KataInstall;

/// Runs the KataInstall controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let installs = Api::<KataInstall>::all(ctx.client.clone());
    info!("watching KataInstalls");
    Controller::new(installs, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                debug!(error = %err, "KataInstall reconcile failed");
            }
        })
        .await;
}

async fn reconcile(install: Arc<KataInstall>, _ctx: Arc<Context>) -> Result<Action, Error> {
    debug!(name = %install.name_any(), "KataInstall observed");
    Ok(Action::await_change())
}

fn error_policy(install: Arc<KataInstall>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(name = %install.name_any(), error = %err, "KataInstall reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
}

//! What every reconciler does the same way: create and write as Gantry's
//! one field manager (status with server-side apply), and decide when a
//! failed reconcile runs again.

use std::sync::Arc;

use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

use super::{Context, Error, KubeResultExt};
use crate::api::FIELD_MANAGER;

/// Parameters for a create (or a replace, which takes the same): the
/// object's fields are Gantry's (its `managedFields` name the same manager as
/// every apply), not `unknown`.
pub fn create_params() -> PostParams {
    PostParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PostParams::default() }
}

/// Parameters for a merge patch, as Gantry's one field manager (like
/// [`create_params`]).
pub fn patch_params() -> PatchParams {
    PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PatchParams::default() }
}

/// Applies `status` to the status subresource of the object `name` in `api`,
/// as Gantry's one field manager, with the kind's own API version; returns
/// the object as the API server stored it.
pub async fn write_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .writing_status(|| format!("{} {name}", K::kind(&())))
}

/// Transient errors (5xx, throttling, timeouts, connection errors, write
/// conflicts) never fail a stage or a build: the object is reconciled again,
/// backing off per object while the errors last (a panic waits longer).
pub fn error_policy<K, C>(object: Arc<K>, err: &Error, ctx: Arc<C>) -> Action
where
    K: Resource<DynamicType = ()>,
    C: AsRef<Context>,
{
    let ctx = (*ctx).as_ref();
    let kind = K::kind(&()).to_ascii_lowercase();
    ctx.metrics.reconcile_failed(&kind, &err.metric_reason());
    let key = ObjectRef::from_obj(&*object).to_string();
    let wait = err.fixed_backoff().unwrap_or_else(|| ctx.backoff.failed(&key));
    warn!(%kind, name = %object.name_any(), error = %err, retry_in = ?wait, "reconcile failed; retrying");
    Action::requeue(wait)
}

/// Runs a controller's reconcile stream to its end: a reconcile that
/// succeeded resets its object's backoff; failures were logged by
/// [`error_policy`] already.
pub async fn drain<K, E>(
    results: impl futures::Stream<Item = Result<(ObjectRef<K>, Action), E>>,
    backoff: Arc<super::retry::Backoff>,
) where
    K: Resource<DynamicType = ()>,
    E: std::fmt::Display,
{
    use futures::StreamExt;
    results
        .for_each(|result| {
            match result {
                Ok((object, _)) => backoff.succeeded(&object.to_string()),
                Err(err) => tracing::debug!(kind = %K::kind(&()), error = %err, "reconcile failed"),
            }
            std::future::ready(())
        })
        .await;
}

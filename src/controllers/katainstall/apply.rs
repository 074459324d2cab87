//! Carries out the KataInstall planner's actions, in order, and writes the
//! status. DaemonSets, smoke pods and Jobs live in the operator's
//! namespace; nodes and RuntimeClasses are cluster-scoped, and a
//! RuntimeClass is only ever changed or deleted when it is this
//! KataInstall's (by UID).

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::api::katainstall::KataInstallStatus;
use crate::api::{KataInstall, FIELD_MANAGER};
use crate::controllers::{create_params, describe, ok_if, patch_params, Context, Error, KubeResultExt};
use crate::engine::katainstall::{
    Action, NodeMark, Observed, FINALIZER, LABEL_KATA_INSTALL, MARKED_FOR_CLEANUP, NODE_RUNTIME_LABEL,
};
use crate::resources::controller_ref;
use crate::resources::kata::{
    daemonset_name, installer_daemonset, is_owned_by, runtime_class, smoke_client_job, smoke_client_name,
    smoke_server_name, smoke_server_pod,
};

/// Carries out `actions` in order; whether one of them released the
/// finalizer (then the KataInstall is gone, with no status to write).
pub async fn apply_all(
    ctx: &Context,
    install: &KataInstall,
    observed: &Observed,
    actions: &[Action],
) -> Result<bool, Error> {
    let mut released = false;
    for action in actions {
        debug!(install = %install.name_any(), ?action, "applying");
        apply(ctx, install, observed, action).await?;
        released |= *action == Action::RemoveFinalizer;
    }
    Ok(released)
}

async fn apply(ctx: &Context, install: &KataInstall, observed: &Observed, action: &Action) -> Result<(), Error> {
    let name = install.name_any();
    let ns = &ctx.operator_namespace;
    let client = ctx.client.clone();
    let owner = controller_ref(install);
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    let background = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
    match action {
        Action::AddFinalizer | Action::RemoveFinalizer => {
            let mut finalizers: Vec<String> =
                install.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
            if *action == Action::AddFinalizer {
                finalizers.push(FINALIZER.into());
            }
            let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": install.resource_version()}});
            let result = Api::<KataInstall>::all(client).patch(&name, &patch_params(), &Patch::Merge(&patch)).await;
            let verb = if *action == Action::AddFinalizer { "add the finalizer to" } else { "remove the finalizer of" };
            ok_if(result, 404).applying(verb, || describe::<KataInstall>(None, &name))?;
        }
        Action::ApplyDaemonSet { role, config } => {
            info!(install = %name, role = role.as_str(), "applying the installer DaemonSet");
            let ds = installer_daemonset(&name, ns, &install.spec, *role, config, &ctx.config.kata_installer, owner);
            let ds_name = daemonset_name(&name, *role);
            Api::<DaemonSet>::namespaced(client, ns)
                .patch(&ds_name, &ssa, &Patch::Apply(&ds))
                .await
                .applying("apply", || describe::<DaemonSet>(Some(ns), &ds_name))?;
        }
        Action::DeleteDaemonSet(role) => {
            let ds_name = daemonset_name(&name, *role);
            let result = Api::<DaemonSet>::namespaced(client, ns).delete(&ds_name, &background).await;
            ok_if(result, 404).applying("delete", || describe::<DaemonSet>(Some(ns), &ds_name))?;
        }
        Action::MarkNode { node, mark } => {
            let (label, owner) = match mark {
                NodeMark::Installed => (json!("true"), json!(name)),
                NodeMark::Touched => (json!(null), json!(name)),
                NodeMark::Cleanup => (json!(MARKED_FOR_CLEANUP), json!(name)),
                NodeMark::Clear => (json!(null), json!(null)),
            };
            info!(install = %name, node = %node, ?mark, "marking node");
            let patch = json!({"metadata": {"labels": {NODE_RUNTIME_LABEL: label}, "annotations": {LABEL_KATA_INSTALL: owner}}});
            let result = Api::<Node>::all(client).patch(node, &patch_params(), &Patch::Merge(&patch)).await;
            ok_if(result, 404).applying("mark", || describe::<Node>(None, node))?;
        }
        Action::ApplyRuntimeClass { shim, config } => {
            let owner = owner.ok_or(Error::MissingField("metadata.uid"))?;
            let class = runtime_class(&name, &install.spec, shim, config, Some(owner));
            info!(install = %name, runtime_class = ?class.metadata.name, "applying RuntimeClass");
            apply_owned_runtime_class(Api::all(client), class, install).await?;
        }
        Action::DeleteRuntimeClass { name: class } => {
            delete_owned_runtime_class(Api::all(client), class, install).await?;
        }
        Action::CreateSmokeServer { key } => {
            let pod = smoke_server_pod(&name, ns, &install.spec, key, owner);
            let pod_name = smoke_server_name(&name, key);
            ok_if(Api::<Pod>::namespaced(client, ns).create(&create_params(), &pod).await, 409)
                .applying("create", || describe::<Pod>(Some(ns), &pod_name))?;
        }
        Action::CreateSmokeClient { key, server_ip } => {
            let job = smoke_client_job(&name, ns, &install.spec, key, server_ip, owner);
            let job_name = smoke_client_name(&name, key);
            ok_if(Api::<Job>::namespaced(client, ns).create(&create_params(), &job).await, 409)
                .applying("create", || describe::<Job>(Some(ns), &job_name))?;
        }
        Action::DeleteSmoke { keep_key } => {
            let stale = |key: &String| Some(key) != keep_key.as_ref();
            let pods = Api::<Pod>::namespaced(client.clone(), ns);
            for server in observed.smoke_servers.iter().filter(|s| stale(&s.key)) {
                let pod_name = smoke_server_name(&name, &server.key);
                ok_if(pods.delete(&pod_name, &background).await, 404)
                    .applying("delete", || describe::<Pod>(Some(ns), &pod_name))?;
            }
            let jobs = Api::<Job>::namespaced(client, ns);
            for job in observed.smoke_clients.iter().filter(|c| stale(&c.key)) {
                let job_name = smoke_client_name(&name, &job.key);
                ok_if(jobs.delete(&job_name, &background).await, 404)
                    .applying("delete", || describe::<Job>(Some(ns), &job_name))?;
            }
        }
    }
    Ok(())
}

/// Creates `class`, or updates it when it is this KataInstall's (by UID):
/// a RuntimeClass someone else made is never taken over. Both writes fail
/// rather than overwrite one made or changed since it was looked at.
async fn apply_owned_runtime_class(
    api: Api<RuntimeClass>,
    mut class: RuntimeClass,
    install: &KataInstall,
) -> Result<(), Error> {
    let class_name = class.metadata.name.clone().ok_or(Error::MissingField("metadata.name"))?;
    let object = || describe::<RuntimeClass>(None, &class_name);
    match api.get_opt(&class_name).await.observing(object)? {
        None => {
            api.create(&create_params(), &class).await.applying("create", object)?;
        }
        Some(existing) if is_owned_by(&existing.metadata, &install.uid().unwrap_or_default()) => {
            class.metadata.resource_version = existing.metadata.resource_version;
            api.replace(&class_name, &create_params(), &class).await.applying("replace", object)?;
        }
        Some(_) => return Err(Error::NotOwned(format!("RuntimeClass {class_name}"))),
    }
    Ok(())
}

/// Deletes `class` if it is this KataInstall's (by UID, checked by the API
/// server as a precondition); leaves anyone else's alone.
async fn delete_owned_runtime_class(api: Api<RuntimeClass>, class: &str, install: &KataInstall) -> Result<(), Error> {
    let object = || describe::<RuntimeClass>(None, class);
    let Some(existing) = api.get_opt(class).await.observing(object)? else { return Ok(()) };
    let uid = install.uid().unwrap_or_default();
    if !is_owned_by(&existing.metadata, &uid) {
        warn!(install = %install.name_any(), runtime_class = %class, "not deleting a RuntimeClass this KataInstall does not own");
        return Ok(());
    }
    let preconditions = Preconditions { uid: existing.uid(), resource_version: None };
    let params = DeleteParams { preconditions: Some(preconditions), ..Default::default() };
    // 409: it was replaced by another object of that name since.
    match api.delete(class, &params).await {
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        result => ok_if(result, 404).applying("delete", object),
    }
}

/// Applies the status; an install deleted meanwhile has none to write.
pub async fn write_status(ctx: &Context, name: &str, status: &KataInstallStatus) -> Result<(), Error> {
    let api = Api::<KataInstall>::all(ctx.client.clone());
    match crate::controllers::write_status(&api, name, status).await {
        Err(e) if e.is_not_found() => Ok(()),
        result => result.map(drop),
    }
}

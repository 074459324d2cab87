//! The KataInstall reconciler: observe nodes, the installer DaemonSets and
//! their pods, RuntimeClasses and smoke objects; ask the engine; apply its
//! actions; write status; publish Events.
//!
//! KataInstall is cluster-scoped and its DaemonSets, pods and Jobs live in
//! the operator's namespace, so `owns()` cannot map them back (it looks the
//! owner up in the child's namespace): they carry `gantry.dev/kata-install`
//! and are mapped by that label. Node changes wake every KataInstall, and so
//! do changes to any KataInstall or RuntimeClass (a conflict may clear).

use std::sync::Arc;

use chrono::Utc;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::jobs::observe_jobs;
use super::{catch_panic, describe, ok_if, panic_note, to_event, Context, Error, KubeResultExt, Shutdown};
use crate::api::katainstall::KataInstallStatus;
use crate::api::{KataInstall, FIELD_MANAGER};
use crate::engine::katainstall::{
    self as kata, pod_state, InstallerPod, NodeInfo, NodeMark, Observed, OtherInstall, PodState, Role, SmokeClient,
    SmokeServer, View, FINALIZER, LABEL_KATA_CONFIG, LABEL_KATA_INSTALL, LABEL_KATA_ROLE, LABEL_SMOKE_KEY,
    MARKED_FOR_CLEANUP, NODE_RUNTIME_LABEL,
};
use crate::resources::controller_ref;
use crate::resources::kata::{
    daemonset_name, installer_daemonset, is_owned_by, runtime_class, smoke_client_job, smoke_client_name,
    smoke_server_name, smoke_server_pod,
};

/// Runs the KataInstall controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let client = ctx.client.clone();
    let ns = ctx.operator_namespace.clone();
    let installs = Api::<KataInstall>::all(client.clone());
    let mut install_watch = watcher::Config::default();
    if let Some(selector) = &ctx.katainstall_selector {
        install_watch = install_watch.labels(selector);
    }
    let children = || watcher::Config::default().labels(LABEL_KATA_INSTALL);
    info!(namespace = %ns, selector = ?ctx.katainstall_selector, "watching KataInstalls");
    let controller = super::lean_controller(installs, install_watch);
    let store = controller.store();
    let every_install = move || store.state().iter().map(|install| ObjectRef::from_obj(&**install)).collect::<Vec<_>>();
    let (wake_on_node, wake_on_install, wake_on_class) = (every_install.clone(), every_install.clone(), every_install);
    let backoff = ctx.backoff.clone();
    let results = controller
        .watches(Api::<DaemonSet>::namespaced(client.clone(), &ns), children(), by_label)
        .watches(Api::<Pod>::namespaced(client.clone(), &ns), children(), by_label)
        .watches(Api::<Job>::namespaced(client.clone(), &ns), children(), by_label)
        .watches(Api::<Node>::all(client.clone()), watcher::Config::default(), move |_: Node| wake_on_node())
        // Every KataInstall, whatever the selector: one going away may end another's conflict.
        .watches(Api::<KataInstall>::all(client.clone()), watcher::Config::default(), move |_: KataInstall| {
            wake_on_install()
        })
        .watches(Api::<RuntimeClass>::all(client), watcher::Config::default(), move |_: RuntimeClass| wake_on_class())
        .with_config(ctx.controller_config())
        .graceful_shutdown_on(shutdown)
        .run(reconcile_catching_panics, error_policy, ctx);
    super::drain(results, backoff).await;
}

fn by_label<K: Resource>(obj: K) -> Option<ObjectRef<KataInstall>> {
    obj.labels().get(LABEL_KATA_INSTALL).map(|name| ObjectRef::new(name))
}

fn role_of(labels: &std::collections::BTreeMap<String, String>) -> Option<&str> {
    labels.get(LABEL_KATA_ROLE).map(String::as_str)
}

/// The node a DaemonSet pod is for: its binding, else the node its
/// affinity pins it to (DaemonSet pods are scheduled that way).
fn pod_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = &spec.node_name {
        return Some(node.clone());
    }
    let required =
        spec.affinity.as_ref()?.node_affinity.as_ref()?.required_during_scheduling_ignored_during_execution.as_ref()?;
    required
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find_map(|f| (f.key == "metadata.name").then(|| f.values.as_ref()?.first().cloned()).flatten())
}

async fn observe(ctx: &Context, install: &KataInstall) -> Result<Observed, Error> {
    let name = install.name_any();
    let uid = install.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let ns = &ctx.operator_namespace;
    let selector = format!("{LABEL_KATA_INSTALL}={name}");
    let lp = ListParams::default().labels(&selector);
    let client = ctx.client.clone();
    let of_install = |what: &str| format!("{what} of {}", describe::<KataInstall>(None, &name));
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await.observing(|| "Nodes".into())?;
    let daemon_sets =
        Api::<DaemonSet>::namespaced(client.clone(), ns).list(&lp).await.observing(|| of_install("DaemonSets"))?;
    let pods = Api::<Pod>::namespaced(client.clone(), ns).list(&lp).await.observing(|| of_install("pods"))?;
    let jobs = Api::<Job>::namespaced(client.clone(), ns).list(&lp).await.observing(|| of_install("Jobs"))?;
    let classes = Api::<RuntimeClass>::all(client.clone())
        .list(&ListParams::default())
        .await
        .observing(|| "RuntimeClasses".into())?;
    let installs =
        Api::<KataInstall>::all(client).list(&ListParams::default()).await.observing(|| "KataInstalls".into())?;

    let mut observed = Observed::default();
    for node in nodes.items {
        observed.nodes.push(NodeInfo {
            owner: node.annotations().get(LABEL_KATA_INSTALL).cloned(),
            labels: node.labels().clone(),
            name: node.name_any(),
        });
    }
    for ds in &daemon_sets.items {
        let role = match role_of(ds.labels()) {
            Some("install") => Role::Install,
            Some("cleanup") => Role::Cleanup,
            _ => continue,
        };
        observed.daemon_sets.insert(role, ds.labels().get(LABEL_KATA_CONFIG).cloned());
    }
    for class in &classes.items {
        if is_owned_by(&class.metadata, &uid) {
            observed.runtime_classes.insert(class.name_any(), class.labels().get(LABEL_KATA_CONFIG).cloned());
        } else {
            observed.foreign_runtime_classes.insert(class.name_any());
        }
    }
    for other in installs.items.into_iter().filter(|other| other.uid().as_deref() != Some(uid.as_str())) {
        observed.other_installs.push(OtherInstall {
            name: other.name_any(),
            created: other.metadata.creation_timestamp.as_ref().map(crate::engine::conditions::from_k8s_time),
            spec: other.spec,
        });
    }
    let mut client_pods: Vec<&Pod> = Vec::new();
    for pod in &pods.items {
        if pod.metadata.deletion_timestamp.is_some() && role_of(pod.labels()) != Some("install") {
            continue;
        }
        let key = pod.labels().get(LABEL_SMOKE_KEY).cloned();
        match (role_of(pod.labels()), key) {
            (Some(role @ ("install" | "cleanup")), _) => {
                let Some(node) = pod_node(pod) else { continue };
                observed.pods.push(InstallerPod {
                    node,
                    role: if role == "install" { Role::Install } else { Role::Cleanup },
                    config: pod.labels().get(LABEL_KATA_CONFIG).cloned(),
                    state: pod_state(pod),
                });
            }
            (Some("smoke-server"), Some(key)) => observed.smoke_servers.push(SmokeServer {
                key,
                ip: pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
                node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                state: pod_state(pod),
            }),
            (Some("smoke-client"), Some(_)) => client_pods.push(pod),
            _ => {}
        }
    }
    let client_pods_owned: Vec<Pod> = client_pods.into_iter().cloned().collect();
    for (job, outcome) in observe_jobs(&jobs.items, &client_pods_owned, "client") {
        let Some(key) = job.labels().get(LABEL_SMOKE_KEY) else { continue };
        // The client's termination message says what it fetched; prefer it.
        let newest = client_pods_owned
            .iter()
            .filter(|p| p.labels().get("job-name") == Some(&outcome.name))
            .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let message = match newest.map(pod_state) {
            Some(PodState::Failed(m)) => Some(m),
            _ => outcome.message,
        };
        observed.smoke_clients.push(SmokeClient { key: key.clone(), state: outcome.state, message });
    }
    Ok(observed)
}

/// [`reconcile`], with a panic reported on this install (a Warning Event)
/// instead of stopping the controller for every install.
async fn reconcile_catching_panics(install: Arc<KataInstall>, ctx: Arc<Context>) -> Result<Action, Error> {
    let result = catch_panic(reconcile(install.clone(), ctx.clone())).await;
    if let Err(Error::Panicked(why)) = &result {
        publish(&ctx, &install, &[panic_note(&install.name_any(), why)]).await;
    }
    result
}

async fn reconcile(install: Arc<KataInstall>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started("katainstall");
    let name = install.name_any();
    let observed = observe(&ctx, &install).await?;
    let status = install.status.clone().unwrap_or_default();
    let view = View {
        name: &name,
        generation: install.metadata.generation.unwrap_or(1),
        created: install.metadata.creation_timestamp.as_ref().map(crate::engine::conditions::from_k8s_time),
        spec: &install.spec,
        status: &status,
        deleting_since: install.metadata.deletion_timestamp.as_ref().map(crate::engine::conditions::from_k8s_time),
        has_finalizer: install.finalizers().iter().any(|f| f == FINALIZER),
    };
    let plan = kata::plan(&view, &observed, Utc::now());
    let mut released = false;
    for action in &plan.actions {
        debug!(install = %name, ?action, "applying");
        apply(&ctx, &install, &observed, action).await?;
        released |= *action == kata::Action::RemoveFinalizer;
    }
    if !released && plan.status != status {
        write_status(&ctx, &name, &plan.status).await?;
    }
    publish(&ctx, &install, &plan.notes).await;
    Ok(Action::requeue(plan.requeue_after.unwrap_or(kata::RESYNC)))
}

/// Publishes Events about the KataInstall. API servers before 1.22 refuse
/// events.k8s.io Events about cluster-scoped objects anywhere but in
/// kube-system; there they go to the operator's namespace instead.
async fn publish(ctx: &Context, install: &KataInstall, notes: &[crate::engine::planner::Note]) {
    let reference = install.object_ref(&());
    for note in notes {
        let event = to_event(note, None);
        if ctx.recorder.publish(&event, &reference).await.is_ok() {
            continue;
        }
        let mut fallback = reference.clone();
        fallback.namespace = Some(ctx.operator_namespace.clone());
        if let Err(e) = ctx.recorder.publish(&event, &fallback).await {
            warn!(install = %install.name_any(), error = %e, "cannot publish Event");
        }
    }
}

async fn apply(ctx: &Context, install: &KataInstall, observed: &Observed, action: &kata::Action) -> Result<(), Error> {
    let name = install.name_any();
    let ns = &ctx.operator_namespace;
    let client = ctx.client.clone();
    let owner = controller_ref(install);
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    let background = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
    match action {
        kata::Action::AddFinalizer | kata::Action::RemoveFinalizer => {
            let mut finalizers: Vec<String> =
                install.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
            if *action == kata::Action::AddFinalizer {
                finalizers.push(FINALIZER.into());
            }
            let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": install.resource_version()}});
            let result =
                Api::<KataInstall>::all(client).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
            let verb =
                if *action == kata::Action::AddFinalizer { "add the finalizer to" } else { "remove the finalizer of" };
            ok_if(result, 404).applying(verb, || describe::<KataInstall>(None, &name))?;
        }
        kata::Action::ApplyDaemonSet { role, config } => {
            info!(install = %name, role = role.as_str(), "applying the installer DaemonSet");
            let ds = installer_daemonset(&name, ns, &install.spec, *role, config, &ctx.config.kata_installer, owner);
            let ds_name = daemonset_name(&name, *role);
            Api::<DaemonSet>::namespaced(client, ns)
                .patch(&ds_name, &ssa, &Patch::Apply(&ds))
                .await
                .applying("apply", || describe::<DaemonSet>(Some(ns), &ds_name))?;
        }
        kata::Action::DeleteDaemonSet(role) => {
            let ds_name = daemonset_name(&name, *role);
            let result = Api::<DaemonSet>::namespaced(client, ns).delete(&ds_name, &background).await;
            ok_if(result, 404).applying("delete", || describe::<DaemonSet>(Some(ns), &ds_name))?;
        }
        kata::Action::MarkNode { node, mark } => {
            let (label, owner) = match mark {
                NodeMark::Installed => (json!("true"), json!(name)),
                NodeMark::Touched => (json!(null), json!(name)),
                NodeMark::Cleanup => (json!(MARKED_FOR_CLEANUP), json!(name)),
                NodeMark::Clear => (json!(null), json!(null)),
            };
            info!(install = %name, node = %node, ?mark, "marking node");
            let patch = json!({"metadata": {"labels": {NODE_RUNTIME_LABEL: label}, "annotations": {LABEL_KATA_INSTALL: owner}}});
            let result = Api::<Node>::all(client).patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await;
            ok_if(result, 404).applying("mark", || describe::<Node>(None, node))?;
        }
        kata::Action::ApplyRuntimeClass { shim, config } => {
            let owner = owner.ok_or(Error::MissingField("metadata.uid"))?;
            let class = runtime_class(&name, &install.spec, shim, config, Some(owner));
            info!(install = %name, runtime_class = ?class.metadata.name, "applying RuntimeClass");
            apply_owned_runtime_class(Api::all(client), class, install).await?;
        }
        kata::Action::DeleteRuntimeClass { name: class } => {
            delete_owned_runtime_class(Api::all(client), class, install).await?;
        }
        kata::Action::CreateSmokeServer { key } => {
            let pod = smoke_server_pod(&name, ns, &install.spec, key, owner);
            let pod_name = smoke_server_name(&name, key);
            ok_if(Api::<Pod>::namespaced(client, ns).create(&PostParams::default(), &pod).await, 409)
                .applying("create", || describe::<Pod>(Some(ns), &pod_name))?;
        }
        kata::Action::CreateSmokeClient { key, server_ip } => {
            let job = smoke_client_job(&name, ns, &install.spec, key, server_ip, owner);
            let job_name = smoke_client_name(&name, key);
            ok_if(Api::<Job>::namespaced(client, ns).create(&PostParams::default(), &job).await, 409)
                .applying("create", || describe::<Job>(Some(ns), &job_name))?;
        }
        kata::Action::DeleteSmoke { keep_key } => {
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
            api.create(&PostParams::default(), &class).await.applying("create", object)?;
        }
        Some(existing) if is_owned_by(&existing.metadata, &install.uid().unwrap_or_default()) => {
            class.metadata.resource_version = existing.metadata.resource_version;
            api.replace(&class_name, &PostParams::default(), &class).await.applying("replace", object)?;
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
async fn write_status(ctx: &Context, name: &str, status: &KataInstallStatus) -> Result<(), Error> {
    let api = Api::<KataInstall>::all(ctx.client.clone());
    match super::write_status(&api, name, status).await {
        Err(e) if e.is_not_found() => Ok(()),
        result => result.map(drop),
    }
}

fn error_policy(install: Arc<KataInstall>, err: &Error, ctx: Arc<Context>) -> Action {
    super::error_policy(install, err, &ctx)
}

//! What the KataInstall planner is shown: the KataInstall itself ([`view`])
//! and what the cluster holds for it ([`observe`]): every node, its
//! DaemonSets and their pods, every RuntimeClass (its own by UID), every
//! other KataInstall, and its smoke server pods and client Jobs.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::api::katainstall::KataInstallStatus;
use crate::api::KataInstall;
use crate::controllers::jobs::observe_jobs;
use crate::controllers::{describe, Context, Error, KubeResultExt};
use crate::engine::conditions::from_k8s_time;
use crate::engine::katainstall::{
    pod_state, InstallerPod, NodeInfo, Observed, OtherInstall, PodState, Role, SmokeClient, SmokeServer, View,
    FINALIZER, LABEL_KATA_CONFIG, LABEL_KATA_INSTALL, LABEL_KATA_ROLE, LABEL_SMOKE_KEY,
};
use crate::resources::kata::is_owned_by;

/// The planner's view of `install`, whose last written status is `status`.
pub fn view<'a>(install: &'a KataInstall, status: &'a KataInstallStatus) -> View<'a> {
    View {
        name: install.metadata.name.as_deref().unwrap_or_default(),
        generation: install.metadata.generation.unwrap_or(1),
        created: install.metadata.creation_timestamp.as_ref().map(from_k8s_time),
        spec: &install.spec,
        status,
        deleting_since: install.metadata.deletion_timestamp.as_ref().map(from_k8s_time),
        has_finalizer: install.finalizers().iter().any(|f| f == FINALIZER),
    }
}

fn role_of(labels: &BTreeMap<String, String>) -> Option<&str> {
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

/// Reads what the cluster holds for `install`.
pub async fn observe(ctx: &Context, install: &KataInstall) -> Result<Observed, Error> {
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
            created: other.metadata.creation_timestamp.as_ref().map(from_k8s_time),
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

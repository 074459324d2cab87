//! The KataInstall planner: spec, nodes, installer pods, RuntimeClasses and
//! smoke objects in; what to apply or delete, the status and the Events out.
//! Pure: the controller observes and applies.
//!
//! How a node is tracked: the installer DaemonSet's pod on it is Ready once
//! the installer finished (kata-deploy installs, then sleeps), so Ready means
//! installed. Installed nodes get `katacontainers.io/kata-runtime=true`; every
//! node the installer ran on (installed or failed) gets the annotation
//! `gantry.dev/kata-install=<name>`, which is how deletion finds the nodes to
//! clean up.

mod cleanup;
pub mod pods;
mod smoke;
pub mod tenancy;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::conditions::{set_condition, ConditionStatus};
use super::observed::JobState;
use super::planner::Note;
use crate::api::katainstall::{
    KataInstallSpec, KataInstallStatus, KataPhase, NodeInstallStatus, NodeState, SmokeResult,
};
pub use pods::{pod_state, PodState};
pub use tenancy::OtherInstall;
use validate::validate_kata;

/// Label on every object a KataInstall owns (DaemonSets, pods, Jobs,
/// RuntimeClasses), value the KataInstall's name; also the annotation on
/// the nodes its installer ran on.
pub const LABEL_KATA_INSTALL: &str = "gantry.dev/kata-install";
/// What an object is for: `install`, `cleanup`, `smoke-server`, `smoke-client`.
pub const LABEL_KATA_ROLE: &str = "gantry.dev/kata-role";
/// Hash of the spec fields an object was made from; a change rolls it.
pub const LABEL_KATA_CONFIG: &str = "gantry.dev/kata-config";
/// Which smoke test a smoke object belongs to.
pub const LABEL_SMOKE_KEY: &str = "gantry.dev/smoke-key";
/// The node label kata-deploy uses: `true` when installed, `cleanup` while
/// the cleanup runs there. RuntimeClasses schedule on `true`.
pub const NODE_RUNTIME_LABEL: &str = "katacontainers.io/kata-runtime";
/// The value of `NODE_RUNTIME_LABEL` on a node marked for the cleanup DaemonSet.
pub const MARKED_FOR_CLEANUP: &str = "cleanup";
/// Held from before anything is installed until cleanup is done.
pub const FINALIZER: &str = "gantry.dev/kata-cleanup";
/// Most nodes listed in status (the counts stay complete).
pub const MAX_NODES_LISTED: usize = 50;
/// Node-change Events published per reconcile; the rest are summed up.
const MAX_NODE_NOTES: usize = 5;
/// How long a smoke test may take when `smokeTest.timeout` is unset.
pub const DEFAULT_SMOKE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long deletion waits for cleanup when `cleanupTimeout` is unset.
pub const DEFAULT_CLEANUP_TIMEOUT: Duration = Duration::from_secs(600);
/// Look again this often even when nothing changes.
pub const RESYNC: Duration = Duration::from_secs(300);

/// Condition: Kata is installed on every selected node.
pub const CONDITION_INSTALLED: &str = "Installed";
/// Condition: the latest smoke test passed.
pub const CONDITION_VERIFIED: &str = "Verified";

/// Which installer DaemonSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `<name>`: the installer in `install` mode on the selected nodes.
    Install,
    /// `<name>-cleanup`: `cleanup` mode on the nodes marked for cleanup.
    Cleanup,
}

impl Role {
    /// The `gantry.dev/kata-role` label value (and the installer's argument).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Install => "install",
            Role::Cleanup => "cleanup",
        }
    }
}

/// The KataInstall being planned.
#[derive(Debug, Clone)]
pub struct KataView<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.generation`.
    pub generation: i64,
    /// `metadata.creationTimestamp`: the earlier of two conflicting KataInstalls goes ahead.
    pub created: Option<DateTime<Utc>>,
    /// The desired state.
    pub spec: &'a KataInstallSpec,
    /// The status as last written.
    pub status: &'a KataInstallStatus,
    /// `metadata.deletionTimestamp`.
    pub deleting_since: Option<DateTime<Utc>>,
    /// Whether `FINALIZER` is set.
    pub has_finalizer: bool,
}

/// A node as observed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The `gantry.dev/kata-install` annotation: which KataInstall ran there.
    pub owner: Option<String>,
}

/// An installer pod as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallerPod {
    /// The node it is bound to.
    pub node: String,
    /// Its DaemonSet.
    pub role: Role,
    /// Its `gantry.dev/kata-config` label.
    pub config: Option<String>,
    /// Ready, pending or failed.
    pub state: PodState,
}

/// The smoke test's HTTP server pod.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeServer {
    /// Its `gantry.dev/smoke-key` label.
    pub key: String,
    /// Its pod IP, once it has one.
    pub ip: Option<String>,
    /// The node it runs on.
    pub node: Option<String>,
    /// Ready (serving), pending or failed.
    pub state: PodState,
}

/// The smoke test's client Job.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeClient {
    /// Its `gantry.dev/smoke-key` label.
    pub key: String,
    /// Running, succeeded or failed.
    pub state: JobState,
    /// Why it failed.
    pub message: Option<String>,
}

/// Everything the controller saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KataObserved {
    /// Every node in the cluster.
    pub nodes: Vec<NodeInfo>,
    /// The pods of this KataInstall's DaemonSets.
    pub pods: Vec<InstallerPod>,
    /// This KataInstall's DaemonSets, with their config label.
    pub daemon_sets: BTreeMap<Role, Option<String>>,
    /// This KataInstall's RuntimeClasses (owned by its UID) by name, with their config label.
    pub runtime_classes: BTreeMap<String, Option<String>>,
    /// The names of the RuntimeClasses that are not this KataInstall's: never touched.
    pub foreign_runtime_classes: BTreeSet<String>,
    /// Every other KataInstall in the cluster.
    pub other_installs: Vec<OtherInstall>,
    /// Smoke server pods.
    pub smoke_servers: Vec<SmokeServer>,
    /// Smoke client Jobs.
    pub smoke_clients: Vec<SmokeClient>,
}

/// How a node should be marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeMark {
    /// Runtime label `true`, owner annotation set.
    Installed,
    /// The installer ran here but failed: annotation set, runtime label removed.
    Touched,
    /// Runtime label `cleanup` (the cleanup DaemonSet's selector), annotation set.
    Cleanup,
    /// Runtime label and annotation removed.
    Clear,
}

/// Something to do in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum KataAction {
    /// Add `FINALIZER` (before anything else is created).
    AddFinalizer,
    /// Create or update a DaemonSet made from the spec whose hash is `config`.
    ApplyDaemonSet { role: Role, config: String },
    /// Delete a DaemonSet.
    DeleteDaemonSet(Role),
    /// Set or remove the runtime label and owner annotation of a node.
    MarkNode { node: String, mark: NodeMark },
    /// Create or update the RuntimeClass `kata-<shim>`.
    ApplyRuntimeClass { shim: String, config: String },
    /// Delete one of this KataInstall's RuntimeClasses.
    DeleteRuntimeClass { name: String },
    /// Create the HTTP server pod of smoke test `key`.
    CreateSmokeServer { key: String },
    /// Create the client Job of smoke test `key`, fetching from `server_ip`.
    CreateSmokeClient { key: String, server_ip: String },
    /// Delete smoke objects, except those of `keep_key`.
    DeleteSmoke { keep_key: Option<String> },
    /// Remove `FINALIZER`: cleanup is done.
    RemoveFinalizer,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct KataPlan {
    /// The status to write.
    pub status: KataInstallStatus,
    /// What to do, in order.
    pub actions: Vec<KataAction>,
    /// Events to publish.
    pub notes: Vec<Note>,
    /// When to look again.
    pub requeue_after: Duration,
}

/// The RuntimeClass name of a shim.
pub fn runtime_class_name(shim: &str) -> String {
    format!("kata-{shim}")
}

/// A stable short hash (FNV-1a, 64 bits, hex) of `parts`; stable across
/// builds, unlike std's hasher, so operator upgrades do not roll installers.
pub fn short_hash(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0u8]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")[..10].to_string()
}

/// The hash of what the installer DaemonSets are made from.
pub fn install_config(spec: &KataInstallSpec) -> String {
    let selector = serde_json::to_string(&spec.node_selector).unwrap_or_default();
    let default = validate::default_shim(spec).unwrap_or_default();
    short_hash(&[&spec.installer_image, &spec.shims.join(" "), default, &selector])
}

/// The hash of what a shim's RuntimeClass is made from.
pub fn runtime_class_config(spec: &KataInstallSpec, shim: &str) -> String {
    let overhead = spec.overhead.get(shim).map(|o| serde_json::to_string(o).unwrap_or_default()).unwrap_or_default();
    short_hash(&[shim, &overhead])
}

fn note(warning: bool, reason: &str, message: impl Into<String>) -> Note {
    Note { warning, reason: reason.into(), message: message.into(), stage: None, job: None }
}

fn selects(selector: &BTreeMap<String, String>, node: &NodeInfo) -> bool {
    selector.iter().all(|(k, v)| node.labels.get(k) == Some(v))
}

/// The install state of `node` from the install pods of the current config.
fn node_install_state(node: &str, config: &str, pods: &[InstallerPod]) -> NodeInstallStatus {
    let on_node: Vec<&InstallerPod> = pods.iter().filter(|p| p.role == Role::Install && p.node == node).collect();
    let current: Vec<&PodState> =
        on_node.iter().filter(|p| p.config.as_deref() == Some(config)).map(|p| &p.state).collect();
    let (state, message) = if current.contains(&&PodState::Ready) {
        (NodeState::Installed, None)
    } else if let Some(PodState::Failed(m)) = current.iter().find(|s| matches!(s, PodState::Failed(_))) {
        (NodeState::Failed, Some(m.clone()))
    } else if let Some(PodState::Pending(m)) = current.first() {
        (NodeState::InProgress, Some(format!("installer {m}")))
    } else if !on_node.is_empty() {
        (NodeState::InProgress, Some("the installer is being updated".to_string()))
    } else {
        (NodeState::InProgress, Some("waiting for the installer pod".to_string()))
    };
    NodeInstallStatus { name: node.to_string(), state, message }
}

/// Failed first, then in progress, then the rest, each by name; capped.
fn list_nodes(mut nodes: Vec<NodeInstallStatus>) -> Vec<NodeInstallStatus> {
    let rank = |s: NodeState| match s {
        NodeState::Failed => 0,
        NodeState::InProgress | NodeState::CleaningUp => 1,
        _ => 2,
    };
    nodes.sort_by(|a, b| (rank(a.state), &a.name).cmp(&(rank(b.state), &b.name)));
    nodes.truncate(MAX_NODES_LISTED);
    nodes
}

/// Plans one reconcile of a KataInstall.
pub fn plan_kata(view: &KataView, observed: &KataObserved, now: DateTime<Utc>) -> KataPlan {
    let mut status = view.status.clone();
    status.observed_generation = Some(view.generation);
    let generation = Some(view.generation);
    let previous_phase = view.status.phase;
    if view.deleting_since.is_some() {
        return cleanup::plan_cleanup(view, observed, status, now);
    }
    if let Err(e) = validate_kata(view.name, view.spec) {
        let message = e.to_string();
        status.phase = Some(KataPhase::Degraded);
        for condition in [CONDITION_INSTALLED, CONDITION_VERIFIED] {
            set_condition(
                &mut status.conditions,
                condition,
                ConditionStatus::False,
                "InvalidSpec",
                &message,
                generation,
                now,
            );
        }
        let mut notes = Vec::new();
        if view.status.conditions.iter().all(|c| c.reason != "InvalidSpec" || c.message != message) {
            notes.push(note(true, "InvalidSpec", message));
        }
        return KataPlan { status, actions: Vec::new(), notes, requeue_after: RESYNC };
    }
    let conflicts = tenancy::conflicts(view, observed);
    if !conflicts.is_empty() {
        return tenancy::plan_conflict(view, status, &conflicts, now);
    }
    if !view.has_finalizer {
        status.phase = Some(KataPhase::Installing);
        return KataPlan { status, actions: vec![KataAction::AddFinalizer], notes: Vec::new(), requeue_after: RESYNC };
    }

    let mut actions = Vec::new();
    let mut notes = Vec::new();
    let spec = view.spec;
    let config = install_config(spec);
    if observed.daemon_sets.get(&Role::Install) != Some(&Some(config.clone())) {
        actions.push(KataAction::ApplyDaemonSet { role: Role::Install, config: config.clone() });
    }

    let (mut nodes, leaving) = plan_nodes(view, observed, &config, &mut actions, &mut notes);
    let installed: Vec<String> =
        nodes.iter().filter(|n| n.state == NodeState::Installed).map(|n| n.name.clone()).collect();
    let failed: Vec<NodeInstallStatus> = nodes.iter().filter(|n| n.state == NodeState::Failed).cloned().collect();
    status.nodes_desired = nodes.len() as u32;
    status.nodes_installed = installed.len() as u32;
    status.nodes_failed = failed.len() as u32;
    node_notes(&view.status.nodes, &nodes, &mut notes);

    // RuntimeClasses, once Kata runs somewhere.
    let wanted: Vec<String> = spec.shims.iter().map(|s| runtime_class_name(s)).collect();
    if !installed.is_empty() {
        for shim in &spec.shims {
            let config = runtime_class_config(spec, shim);
            if observed.runtime_classes.get(&runtime_class_name(shim)) != Some(&Some(config.clone())) {
                actions.push(KataAction::ApplyRuntimeClass { shim: shim.clone(), config });
            }
        }
        status.runtime_classes = wanted.clone();
    } else {
        status.runtime_classes = wanted.iter().filter(|n| observed.runtime_classes.contains_key(*n)).cloned().collect();
    }
    for name in observed.runtime_classes.keys().filter(|n| !wanted.contains(n)) {
        actions.push(KataAction::DeleteRuntimeClass { name: name.clone() });
    }

    // Install condition and phase.
    let (installed_status, reason, message) = if nodes.is_empty() {
        (ConditionStatus::False, "NoNodesSelected", "no node matches spec.nodeSelector".to_string())
    } else if let Some(first) = failed.first() {
        let names: Vec<&str> = failed.iter().take(5).map(|n| n.name.as_str()).collect();
        let error = first.message.as_deref().unwrap_or("failed");
        (
            ConditionStatus::False,
            "InstallFailed",
            format!("installer failed on {} ({}): {error}", names.join(", "), failed.len()),
        )
    } else if installed.len() == nodes.len() {
        (ConditionStatus::True, "AllNodesInstalled", format!("Kata installed on {} node(s)", installed.len()))
    } else {
        (ConditionStatus::False, "Installing", format!("installed on {} of {} node(s)", installed.len(), nodes.len()))
    };
    set_condition(&mut status.conditions, CONDITION_INSTALLED, installed_status, reason, &message, generation, now);
    nodes.extend(leaving);
    status.nodes = list_nodes(nodes);

    let smoke = smoke::plan_smoke(view, &installed, observed, now);
    actions.extend(smoke.actions);
    notes.extend(smoke.notes);
    status.smoke = smoke.record;
    let (verified, reason, message) = smoke.condition;
    set_condition(&mut status.conditions, CONDITION_VERIFIED, verified, reason, &message, generation, now);

    let smoke_failed = status.smoke.as_ref().is_some_and(|s| s.result == SmokeResult::Failed);
    status.phase = Some(if !failed.is_empty() || smoke_failed {
        KataPhase::Degraded
    } else if installed_status == ConditionStatus::True {
        KataPhase::Installed
    } else {
        KataPhase::Installing
    });
    if status.phase != previous_phase {
        match status.phase {
            Some(KataPhase::Installed) => notes.push(note(false, "Installed", message)),
            Some(KataPhase::Degraded) => notes.push(note(true, "Degraded", degraded_message(&status))),
            _ => {}
        }
    }
    let requeue_after = smoke
        .wake
        .map(|at| (at - now).to_std().unwrap_or(Duration::from_secs(1)).max(Duration::from_secs(1)))
        .map_or(RESYNC, |d| d.min(RESYNC));
    KataPlan { status, actions, notes, requeue_after }
}

/// Per-node state and marks: the selected nodes, and apart from them the
/// nodes being cleaned up after leaving the selector. A node the installer
/// ran on that is no longer selected, or still marked for an earlier
/// cleanup, is cleaned up first (the installer stays off nodes marked for
/// cleanup); the cleanup DaemonSet runs while any node needs it.
fn plan_nodes(
    view: &KataView,
    observed: &KataObserved,
    config: &str,
    actions: &mut Vec<KataAction>,
    notes: &mut Vec<Note>,
) -> (Vec<NodeInstallStatus>, Vec<NodeInstallStatus>) {
    let spec = view.spec;
    let mut nodes = Vec::new();
    let mut leaving = Vec::new();
    // While a node is still marked for cleanup or its cleanup is under way.
    let mut cleanup_runs = false;
    for node in &observed.nodes {
        let owned = node.owner.as_deref() == Some(view.name);
        let label = node.labels.get(NODE_RUNTIME_LABEL).map(String::as_str);
        let selected = selects(&spec.node_selector, node);
        if owned && (!selected || label == Some(MARKED_FOR_CLEANUP)) {
            let installer_left = observed.pods.iter().any(|p| p.role == Role::Install && p.node == node.name);
            let entry = cleanup::clean_node(node, observed, installer_left, actions, notes);
            cleanup_runs |= entry.is_some() || label == Some(MARKED_FOR_CLEANUP);
            match entry {
                Some(entry) if selected => nodes.push(NodeInstallStatus {
                    state: NodeState::InProgress,
                    message: entry.message.map(|m| format!("cleaning up an earlier install first: {m}")),
                    ..entry
                }),
                Some(entry) => leaving.push(entry),
                None if selected => nodes.push(NodeInstallStatus {
                    name: node.name.clone(),
                    state: NodeState::InProgress,
                    message: Some("cleaned up; installing again".into()),
                }),
                None => {}
            }
            continue;
        }
        if !selected {
            continue;
        }
        let state = node_install_state(&node.name, config, &observed.pods);
        let mark = match state.state {
            NodeState::Installed if !(owned && label == Some("true")) => Some(NodeMark::Installed),
            NodeState::Failed if !(owned && label.is_none()) => Some(NodeMark::Touched),
            _ => None,
        };
        if let Some(mark) = mark {
            actions.push(KataAction::MarkNode { node: node.name.clone(), mark });
        }
        nodes.push(state);
    }
    let config_now = observed.daemon_sets.get(&Role::Cleanup);
    if !cleanup_runs {
        if config_now.is_some() {
            actions.push(KataAction::DeleteDaemonSet(Role::Cleanup));
        }
    } else if config_now.and_then(Option::as_deref) != Some(config) {
        actions.push(KataAction::ApplyDaemonSet { role: Role::Cleanup, config: config.to_string() });
    }
    (nodes, leaving)
}

fn degraded_message(status: &KataInstallStatus) -> String {
    let failing = status.conditions.iter().find(|c| c.status == "False" && c.reason.ends_with("Failed"));
    failing.map_or_else(|| "degraded".to_string(), |c| c.message.clone())
}

/// Events for nodes that became installed or failed since the last status.
fn node_notes(before: &[NodeInstallStatus], now: &[NodeInstallStatus], notes: &mut Vec<Note>) {
    let was = |name: &str| before.iter().find(|n| n.name == name).map(|n| n.state);
    let mut changed: Vec<Note> = Vec::new();
    for node in now {
        let previous = was(&node.name);
        // Past the listing cap, the last status cannot tell what is new.
        let unknowable = previous.is_none() && before.len() >= MAX_NODES_LISTED;
        if previous == Some(node.state) || unknowable {
            continue;
        }
        match node.state {
            NodeState::Installed => {
                changed.push(note(false, "NodeInstalled", format!("Kata installed on node {}", node.name)))
            }
            NodeState::Failed => changed.push(note(
                true,
                "NodeInstallFailed",
                format!("installer failed on node {}: {}", node.name, node.message.as_deref().unwrap_or("")),
            )),
            _ => {}
        }
    }
    let extra = changed.len().saturating_sub(MAX_NODE_NOTES);
    changed.truncate(MAX_NODE_NOTES);
    notes.extend(changed);
    if extra > 0 {
        notes.push(note(false, "NodesChanged", format!("{extra} more node(s) changed state")));
    }
}

#[cfg(test)]
mod tests;

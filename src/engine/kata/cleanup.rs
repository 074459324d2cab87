//! Deletion: stop new Kata pods (RuntimeClasses and smoke objects go), stop
//! the installer, run it in `cleanup` mode on every node it ran on, unmark
//! each node once its cleanup pod is Ready, then release the finalizer.
//! The same per-node cleanup runs, while the KataInstall lives, on the nodes
//! that leave its selector.
//! A node that left the cluster is no longer a target; after the cleanup
//! deadline the remaining nodes are unmarked anyway and a Warning says so.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    install_config, list_nodes, note, KataAction, KataObserved, KataPlan, KataView, NodeInfo, NodeMark, PodState, Role,
    CONDITION_INSTALLED, CONDITION_VERIFIED, DEFAULT_CLEANUP_TIMEOUT, MARKED_FOR_CLEANUP, NODE_RUNTIME_LABEL, RESYNC,
};
use crate::api::katainstall::{KataInstallStatus, KataPhase, NodeInstallStatus, NodeState};
use crate::engine::conditions::{set_condition, ConditionStatus};
use crate::engine::duration::{later, parse_duration};
use crate::engine::planner::Note;
use crate::engine::validate::SpecError;

/// Plans one reconcile of a KataInstall being deleted.
pub fn plan_cleanup(
    view: &KataView,
    observed: &KataObserved,
    mut status: KataInstallStatus,
    now: DateTime<Utc>,
) -> KataPlan {
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    if !view.has_finalizer {
        return KataPlan { status, actions, notes, requeue_after: RESYNC };
    }
    if !observed.smoke_servers.is_empty() || !observed.smoke_clients.is_empty() {
        actions.push(KataAction::DeleteSmoke { keep_key: None });
    }
    for name in observed.runtime_classes.keys() {
        actions.push(KataAction::DeleteRuntimeClass { name: name.clone() });
    }
    if observed.daemon_sets.contains_key(&Role::Install) {
        actions.push(KataAction::DeleteDaemonSet(Role::Install));
    }
    let targets: Vec<&NodeInfo> = observed.nodes.iter().filter(|n| n.owner.as_deref() == Some(view.name)).collect();
    let valid = super::validate::validate_kata(view.name, view.spec);
    let deadline = later(view.deleting_since.unwrap_or(now), cleanup_timeout(view));
    let mut nodes = Vec::new();
    let mut wake = Some(deadline);
    if !targets.is_empty() && (now >= deadline || valid.is_err()) {
        let names: Vec<&str> = targets.iter().take(10).map(|n| n.name.as_str()).collect();
        let why = match &valid {
            Err(SpecError { field, .. }) => format!("the spec is invalid ({field})"),
            Ok(()) => "the cleanup deadline passed".into(),
        };
        notes.push(note(
            true,
            "CleanupSkipped",
            format!("{why}: unmarking {} node(s) without a finished cleanup: {}", targets.len(), names.join(", ")),
        ));
        for node in &targets {
            actions.push(KataAction::MarkNode { node: node.name.clone(), mark: NodeMark::Clear });
        }
    } else if !targets.is_empty() {
        let installers_left = observed.pods.iter().any(|p| p.role == Role::Install);
        let config = install_config(view.spec);
        if !installers_left && observed.daemon_sets.get(&Role::Cleanup) != Some(&Some(config.clone())) {
            actions.push(KataAction::ApplyDaemonSet { role: Role::Cleanup, config });
        }
        for node in &targets {
            nodes.extend(clean_node(node, observed, installers_left, &mut actions, &mut notes));
        }
    } else {
        if observed.daemon_sets.contains_key(&Role::Cleanup) {
            actions.push(KataAction::DeleteDaemonSet(Role::Cleanup));
        }
        actions.push(KataAction::RemoveFinalizer);
        notes.push(note(false, "Uninstalled", "Kata removed from every node; releasing the KataInstall"));
        wake = None;
    }
    let generation = Some(view.generation);
    let message = format!("cleaning up {} node(s)", nodes.len());
    for condition in [CONDITION_INSTALLED, CONDITION_VERIFIED] {
        set_condition(
            &mut status.conditions,
            condition,
            ConditionStatus::False,
            "Uninstalling",
            &message,
            generation,
            now,
        );
    }
    if status.phase != Some(KataPhase::Uninstalling) {
        notes.insert(0, note(false, "Uninstalling", "running the installer's cleanup on every node it ran on"));
    }
    status.phase = Some(KataPhase::Uninstalling);
    status.nodes_desired = 0;
    status.nodes_installed = targets.len() as u32;
    status.nodes_failed =
        nodes.iter().filter(|n| n.message.as_deref().is_some_and(|m| m.starts_with("cleanup failed"))).count() as u32;
    status.nodes = list_nodes(nodes);
    status.runtime_classes.clear();
    status.smoke = None;
    let requeue_after = wake
        .map(|at| (at - now).to_std().unwrap_or(Duration::from_secs(1)).max(Duration::from_secs(1)))
        .map_or(RESYNC, |d| d.min(RESYNC));
    KataPlan { status, actions, notes, requeue_after }
}

/// One step of running the installer's cleanup on a node it ran on: mark it
/// for the cleanup DaemonSet once no installer is left there, unmark it once
/// its cleanup pod is Ready. The node's status entry while under way; `None`
/// once it is clean.
pub(super) fn clean_node(
    node: &NodeInfo,
    observed: &KataObserved,
    installer_left: bool,
    actions: &mut Vec<KataAction>,
    notes: &mut Vec<Note>,
) -> Option<NodeInstallStatus> {
    let pod = observed.pods.iter().find(|p| p.role == Role::Cleanup && p.node == node.name);
    let message = match pod.map(|p| &p.state) {
        Some(PodState::Ready) => {
            actions.push(KataAction::MarkNode { node: node.name.clone(), mark: NodeMark::Clear });
            notes.push(note(false, "NodeCleanedUp", format!("Kata removed from node {}", node.name)));
            return None;
        }
        Some(PodState::Failed(m)) => format!("cleanup failed: {m}"),
        Some(PodState::Pending(m)) => format!("cleanup {m}"),
        None if installer_left => "waiting for the installer to stop".into(),
        None => "waiting for the cleanup pod".into(),
    };
    if !installer_left && node.labels.get(NODE_RUNTIME_LABEL).map(String::as_str) != Some(MARKED_FOR_CLEANUP) {
        actions.push(KataAction::MarkNode { node: node.name.clone(), mark: NodeMark::Cleanup });
    }
    Some(NodeInstallStatus { name: node.name.clone(), state: NodeState::CleaningUp, message: Some(message) })
}

fn cleanup_timeout(view: &KataView) -> std::time::Duration {
    let std = view.spec.cleanup_timeout.as_deref().and_then(|t| parse_duration(t).ok());
    std.unwrap_or(DEFAULT_CLEANUP_TIMEOUT)
}

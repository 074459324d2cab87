//! Deletion: stop new Kata pods (RuntimeClasses and smoke objects go), stop
//! the installer, run it in `cleanup` mode on every node it ran on, unmark
//! each node once its cleanup pod is Ready, then release the finalizer.
//! The same per-node cleanup ([`Planner::clean_node`]) runs, while the
//! KataInstall lives, on the nodes that leave its selector.
//! A node that left the cluster is no longer a target; after the cleanup
//! deadline (or at once when the spec is invalid) the remaining nodes are
//! unmarked anyway and a Warning says so.

use std::time::Duration;

use super::nodes::list_nodes;
use super::Planner;
use crate::api::katainstall::{KataPhase, NodeInstallStatus, NodeState};
use crate::engine::duration::{later, parse_duration};
use crate::engine::katainstall::view::{NodeInfo, PodState, Role};
use crate::engine::katainstall::{
    reasons, validate, Action, NodeMark, View, DEFAULT_CLEANUP_TIMEOUT, MARKED_FOR_CLEANUP, NODE_RUNTIME_LABEL,
};
use crate::engine::note::Note;
use crate::engine::spec_error::SpecError;

impl Planner<'_> {
    /// Decides one reconcile of a KataInstall being deleted (nothing once
    /// its finalizer is gone).
    pub(super) fn cleanup(&mut self) {
        let (view, observed, now) = (self.view, self.observed, self.now);
        if !view.has_finalizer {
            return;
        }
        if !observed.smoke_servers.is_empty() || !observed.smoke_clients.is_empty() {
            self.actions.push(Action::DeleteSmoke { keep_key: None });
        }
        for name in observed.runtime_classes.keys() {
            self.actions.push(Action::DeleteRuntimeClass { name: name.clone() });
        }
        if observed.daemon_sets.contains_key(&Role::Install) {
            self.actions.push(Action::DeleteDaemonSet(Role::Install));
        }
        let targets: Vec<&NodeInfo> = observed.nodes.iter().filter(|n| n.owner.as_deref() == Some(view.name)).collect();
        let valid = validate(view.name, view.spec);
        let deadline = later(view.deleting_since.unwrap_or(now), cleanup_timeout(view));
        let mut nodes = Vec::new();
        if !targets.is_empty() && (now >= deadline || valid.is_err()) {
            let names: Vec<&str> = targets.iter().take(10).map(|n| n.name.as_str()).collect();
            let why = match &valid {
                Err(SpecError { field, .. }) => format!("the spec is invalid ({field})"),
                Ok(()) => "the cleanup deadline passed".into(),
            };
            let message =
                format!("{why}: unmarking {} node(s) without a finished cleanup: {}", targets.len(), names.join(", "));
            self.notes.push(Note::warning(reasons::CLEANUP_SKIPPED, message));
            for node in &targets {
                self.actions.push(Action::MarkNode { node: node.name.clone(), mark: NodeMark::Clear });
            }
            self.wake.at(deadline);
        } else if !targets.is_empty() {
            let installers_left = observed.pods.iter().any(|p| p.role == Role::Install);
            if !installers_left && observed.daemon_sets.get(&Role::Cleanup) != Some(&Some(self.config.clone())) {
                self.actions.push(Action::ApplyDaemonSet { role: Role::Cleanup, config: self.config.clone() });
            }
            for node in &targets {
                nodes.extend(self.clean_node(node, installers_left));
            }
            self.wake.at(deadline);
        } else {
            if observed.daemon_sets.contains_key(&Role::Cleanup) {
                self.actions.push(Action::DeleteDaemonSet(Role::Cleanup));
            }
            self.actions.push(Action::RemoveFinalizer);
            let message = "Kata removed from every node; releasing the KataInstall";
            self.notes.push(Note::normal(reasons::UNINSTALLED, message));
        }
        self.both_false(reasons::UNINSTALLING, &format!("cleaning up {} node(s)", nodes.len()));
        if self.status.phase != Some(KataPhase::Uninstalling) {
            let message = "running the installer's cleanup on every node it ran on";
            self.notes.insert(0, Note::normal(reasons::UNINSTALLING, message));
        }
        let status = &mut self.status;
        status.phase = Some(KataPhase::Uninstalling);
        status.nodes_desired = 0;
        status.nodes_installed = targets.len() as u32;
        status.nodes_failed = nodes.iter().filter(|n| cleanup_failed(n)).count() as u32;
        status.nodes = list_nodes(nodes);
        status.runtime_classes.clear();
        status.smoke = None;
    }

    /// One step of running the installer's cleanup on a node it ran on: mark
    /// it for the cleanup DaemonSet once no installer is left there, unmark
    /// it once its cleanup pod is Ready. The node's status entry while under
    /// way; `None` once it is clean.
    pub(super) fn clean_node(&mut self, node: &NodeInfo, installer_left: bool) -> Option<NodeInstallStatus> {
        let observed = self.observed;
        let pod = observed.pods.iter().find(|p| p.role == Role::Cleanup && p.node == node.name);
        let message = match pod.map(|p| &p.state) {
            Some(PodState::Ready) => {
                self.actions.push(Action::MarkNode { node: node.name.clone(), mark: NodeMark::Clear });
                let message = format!("Kata removed from node {}", node.name);
                self.notes.push(Note::normal(reasons::NODE_CLEANED_UP, message));
                return None;
            }
            Some(PodState::Failed(m)) => format!("cleanup failed: {m}"),
            Some(PodState::Pending(m)) => format!("cleanup {m}"),
            None if installer_left => "waiting for the installer to stop".into(),
            None => "waiting for the cleanup pod".into(),
        };
        if !installer_left && node.labels.get(NODE_RUNTIME_LABEL).map(String::as_str) != Some(MARKED_FOR_CLEANUP) {
            self.actions.push(Action::MarkNode { node: node.name.clone(), mark: NodeMark::Cleanup });
        }
        Some(NodeInstallStatus { name: node.name.clone(), state: NodeState::CleaningUp, message: Some(message) })
    }
}

/// Whether a node's cleanup failed (its entry says so).
fn cleanup_failed(node: &NodeInstallStatus) -> bool {
    node.message.as_deref().is_some_and(|m| m.starts_with("cleanup failed"))
}

/// How long deletion waits for the cleanup.
fn cleanup_timeout(view: &View) -> Duration {
    let std = view.spec.cleanup_timeout.as_deref().and_then(|t| parse_duration(t).ok());
    std.unwrap_or(DEFAULT_CLEANUP_TIMEOUT)
}

//! Per-node state and marks. A selected node's state comes from the install
//! pod of the current config on it; an installed node is marked
//! `kata-runtime=true`, a failed one keeps only the owner annotation. A node
//! the installer ran on that is no longer selected, or is still marked for
//! an earlier cleanup, is cleaned up first (the installer stays off nodes
//! marked for cleanup); the cleanup DaemonSet runs while any node needs it.
//! The counts cover every selected node; Events tell which changed.

use super::Planner;
use crate::api::katainstall::{NodeInstallStatus, NodeState};
use crate::engine::katainstall::view::{InstallerPod, PodState, Role};
use crate::engine::katainstall::{events, Action, NodeMark, MARKED_FOR_CLEANUP, MAX_NODES_LISTED, NODE_RUNTIME_LABEL};

impl Planner<'_> {
    /// Decides each node's entry and mark, the counts and the cleanup
    /// DaemonSet; hands on the selected, installed, failed and leaving nodes.
    pub(super) fn nodes(&mut self) {
        let (view, observed) = (self.view, self.observed);
        // While a node is still marked for cleanup or its cleanup is under way.
        let mut cleanup_runs = false;
        for node in &observed.nodes {
            let owned = node.owner.as_deref() == Some(view.name);
            let label = node.labels.get(NODE_RUNTIME_LABEL).map(String::as_str);
            let selected = node.selected_by(&view.spec.node_selector);
            if owned && (!selected || label == Some(MARKED_FOR_CLEANUP)) {
                let installer_left = observed.pods.iter().any(|p| p.role == Role::Install && p.node == node.name);
                let entry = self.clean_node(node, installer_left);
                cleanup_runs |= entry.is_some() || label == Some(MARKED_FOR_CLEANUP);
                match entry {
                    Some(entry) if selected => self.selected.push(NodeInstallStatus {
                        state: NodeState::InProgress,
                        message: entry.message.map(|m| format!("cleaning up an earlier install first: {m}")),
                        ..entry
                    }),
                    Some(entry) => self.leaving.push(entry),
                    None if selected => self.selected.push(NodeInstallStatus {
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
            let entry = node_install_state(&node.name, &self.config, &observed.pods);
            let mark = match entry.state {
                NodeState::Installed if !(owned && label == Some("true")) => Some(NodeMark::Installed),
                NodeState::Failed if !(owned && label.is_none()) => Some(NodeMark::Touched),
                _ => None,
            };
            if let Some(mark) = mark {
                self.actions.push(Action::MarkNode { node: node.name.clone(), mark });
            }
            self.selected.push(entry);
        }
        let config_now = observed.daemon_sets.get(&Role::Cleanup);
        if !cleanup_runs {
            if config_now.is_some() {
                self.actions.push(Action::DeleteDaemonSet(Role::Cleanup));
            }
        } else if config_now.and_then(Option::as_deref) != Some(self.config.as_str()) {
            self.actions.push(Action::ApplyDaemonSet { role: Role::Cleanup, config: self.config.clone() });
        }

        self.installed =
            self.selected.iter().filter(|n| n.state == NodeState::Installed).map(|n| n.name.clone()).collect();
        self.failed = self.selected.iter().filter(|n| n.state == NodeState::Failed).cloned().collect();
        self.status.nodes_desired = self.selected.len() as u32;
        self.status.nodes_installed = self.installed.len() as u32;
        self.status.nodes_failed = self.failed.len() as u32;
        self.notes.extend(events::node_changes(&view.status.nodes, &self.selected));
    }
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

/// The node list in status: failed first, then in progress (or cleaning
/// up), then the rest, each by name; at most [`MAX_NODES_LISTED`].
pub(super) fn list_nodes(mut nodes: Vec<NodeInstallStatus>) -> Vec<NodeInstallStatus> {
    let rank = |s: NodeState| match s {
        NodeState::Failed => 0,
        NodeState::InProgress | NodeState::CleaningUp => 1,
        NodeState::Installed => 2,
    };
    nodes.sort_by(|a, b| (rank(a.state), &a.name).cmp(&(rank(b.state), &b.name)));
    nodes.truncate(MAX_NODES_LISTED);
    nodes
}

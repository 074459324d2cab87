//! The Events that tell a KataInstall's story beyond its status: nodes that
//! became installed or failed, and the phase becoming Installed or Degraded.
//! (Each pass words its own one-off Events; these are the ones computed from
//! two statuses.)

use super::{reasons, MAX_NODES_LISTED};
use crate::api::katainstall::{KataInstallStatus, KataPhase, NodeInstallStatus, NodeState};
use crate::engine::conditions::ConditionStatus;
use crate::engine::note::Note;

/// Node-change Events published per reconcile; the rest are summed up.
pub const MAX_NODE_NOTES: usize = 5;

/// Events for nodes that became installed or failed since the last status
/// (`before`): at most [`MAX_NODE_NOTES`], then one that counts the rest.
pub fn node_changes(before: &[NodeInstallStatus], now: &[NodeInstallStatus]) -> Vec<Note> {
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
                changed.push(Note::normal(reasons::NODE_INSTALLED, format!("Kata installed on node {}", node.name)))
            }
            NodeState::Failed => changed.push(Note::warning(
                reasons::NODE_INSTALL_FAILED,
                format!("installer failed on node {}: {}", node.name, node.message.as_deref().unwrap_or("")),
            )),
            _ => {}
        }
    }
    let extra = changed.len().saturating_sub(MAX_NODE_NOTES);
    changed.truncate(MAX_NODE_NOTES);
    if extra > 0 {
        changed.push(Note::normal(reasons::NODES_CHANGED, format!("{extra} more node(s) changed state")));
    }
    changed
}

/// The Event when the phase changed from `previous` to `status.phase`:
/// Installed (with the `Installed` condition's message, e.g. `Kata installed
/// on 3 node(s)`) or Degraded (with the failing condition's message); none
/// for the other phases.
pub fn phase_changed(previous: Option<KataPhase>, status: &KataInstallStatus) -> Option<Note> {
    if status.phase == previous {
        return None;
    }
    match status.phase {
        Some(KataPhase::Installed) => {
            let installed = status.conditions.iter().find(|c| c.type_ == super::CONDITION_INSTALLED);
            Some(Note::normal(reasons::INSTALLED, installed.map_or("installed", |c| c.message.as_str())))
        }
        Some(KataPhase::Degraded) => Some(Note::warning(reasons::DEGRADED, degraded_message(status))),
        _ => None,
    }
}

/// Why a KataInstall is degraded: the message of its first False condition
/// whose reason ends in `Failed`.
fn degraded_message(status: &KataInstallStatus) -> String {
    let failing =
        status.conditions.iter().find(|c| c.status == ConditionStatus::False.as_str() && c.reason.ends_with("Failed"));
    failing.map_or_else(|| "degraded".to_string(), |c| c.message.clone())
}

//! What the passes add up to: `Installed` (True once every selected node
//! has Kata; False while none is selected, the installer failed somewhere
//! or still runs), `Verified` (from the smoke test), the node list in
//! status, and the phase: Degraded when a node or the smoke test failed,
//! Installed when `Installed` is True, else Installing.

use super::nodes::list_nodes;
use super::Planner;
use crate::api::katainstall::{KataPhase, SmokeResult};
use crate::engine::conditions::ConditionStatus;
use crate::engine::katainstall::{reasons, CONDITION_INSTALLED, CONDITION_VERIFIED};

impl Planner<'_> {
    /// Decides the conditions, the node list and the phase.
    pub(super) fn conclude(&mut self) {
        let (selected, installed, failed) = (self.selected.len(), self.installed.len(), &self.failed);
        let (installed_status, reason, message) = if selected == 0 {
            (ConditionStatus::False, reasons::NO_NODES_SELECTED, "no node matches spec.nodeSelector".to_string())
        } else if let Some(first) = failed.first() {
            let names: Vec<&str> = failed.iter().take(5).map(|n| n.name.as_str()).collect();
            let error = first.message.as_deref().unwrap_or("failed");
            let message = format!("installer failed on {} ({}): {error}", names.join(", "), failed.len());
            (ConditionStatus::False, reasons::INSTALL_FAILED, message)
        } else if installed == selected {
            (ConditionStatus::True, reasons::ALL_NODES_INSTALLED, format!("Kata installed on {installed} node(s)"))
        } else {
            let message = format!("installed on {installed} of {selected} node(s)");
            (ConditionStatus::False, reasons::INSTALLING, message)
        };
        self.set_condition(CONDITION_INSTALLED, installed_status, reason, &message);
        let mut nodes = std::mem::take(&mut self.selected);
        nodes.append(&mut self.leaving);
        self.status.nodes = list_nodes(nodes);
        let (verified, reason, message) = self.verified.clone();
        self.set_condition(CONDITION_VERIFIED, verified, reason, &message);

        let smoke_failed = self.status.smoke.as_ref().is_some_and(|s| s.result == SmokeResult::Failed);
        self.status.phase = Some(if !self.failed.is_empty() || smoke_failed {
            KataPhase::Degraded
        } else if installed_status == ConditionStatus::True {
            KataPhase::Installed
        } else {
            KataPhase::Installing
        });
    }
}

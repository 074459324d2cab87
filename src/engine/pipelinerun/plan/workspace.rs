//! Step 3: the run's workspace claim is created if it does not exist, unless
//! the API server refused it (then the run stops, see `stop`).

use super::{Action, Planner};
use crate::engine::naming::workspace_claim_name;

impl Planner<'_> {
    /// Asks for the run's workspace claim, when the spec has a workspace.
    pub(super) fn ensure_workspace(&mut self) {
        let claim = workspace_claim_name(self.run.name, self.run.uid);
        if let Some(ws) = self.spec.workspace.as_ref().filter(|_| !self.observed.refused.contains_key(&claim)) {
            self.actions.push(Action::EnsureWorkspace {
                claim,
                size: ws.size.clone(),
                storage_class: ws.storage_class_name.clone(),
            });
        }
    }
}

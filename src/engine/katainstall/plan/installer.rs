//! The install DaemonSet: applied when it is missing or was made from
//! another spec (its config hash differs); left alone otherwise.

use super::Planner;
use crate::engine::katainstall::{Action, Role};

impl Planner<'_> {
    /// Decides whether the install DaemonSet is applied.
    pub(super) fn installer(&mut self) {
        if self.observed.daemon_sets.get(&Role::Install) != Some(&Some(self.config.clone())) {
            self.actions.push(Action::ApplyDaemonSet { role: Role::Install, config: self.config.clone() });
        }
    }
}

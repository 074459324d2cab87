//! The finalizer goes on before anything is made, so that deletion always
//! finds the nodes to clean up: this reconcile adds it and does nothing
//! else; the update wakes the next one.

use super::Planner;
use crate::api::katainstall::KataPhase;
use crate::engine::katainstall::Action;

impl Planner<'_> {
    /// Decides the plan of a valid KataInstall without the finalizer yet.
    pub(super) fn add_finalizer(&mut self) {
        self.status.phase = Some(KataPhase::Installing);
        self.actions.push(Action::AddFinalizer);
    }
}

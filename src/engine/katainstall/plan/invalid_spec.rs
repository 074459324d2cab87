//! An invalid spec: nothing is made (or touched), the KataInstall is
//! Degraded, both conditions say which field is wrong, and a Warning says
//! so once per message.

use super::Planner;
use crate::api::katainstall::KataPhase;
use crate::engine::note::Note;
use crate::engine::spec_error::{SpecError, REASON_INVALID_SPEC};

impl Planner<'_> {
    /// Decides the plan of a KataInstall whose spec fails validation with `error`.
    pub(super) fn invalid_spec(&mut self, error: &SpecError) {
        let message = error.to_string();
        self.status.phase = Some(KataPhase::Degraded);
        self.both_false(REASON_INVALID_SPEC, &message);
        if !self.already_said(REASON_INVALID_SPEC, &message) {
            self.notes.push(Note::warning(REASON_INVALID_SPEC, message));
        }
    }
}

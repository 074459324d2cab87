//! Pass 6 (or 1, for an invalid spec): the phase and the `Ready` and
//! `Building` conditions. The newest build gives the phase; `Ready` holds
//! while an image is there to use, even when a newer build failed.

use super::{record_image, Planning};
use crate::api::imagebuild::{BuildPhase, BuildRecordPhase};
use crate::engine::conditions::{set_condition, ConditionStatus};
use crate::engine::imagebuild::conditions::{BUILDING, READY};
use crate::engine::imagebuild::reasons;
use crate::engine::spec_error::SpecError;

impl Planning<'_> {
    /// An invalid spec: Failed, with the problem in both conditions (an
    /// image built before stays Ready).
    pub(super) fn conclude_invalid(&mut self, error: &SpecError) {
        let (generation, now) = (Some(self.view.generation), self.now);
        let message = error.to_string();
        let status = &mut self.status;
        status.phase = Some(BuildPhase::Failed);
        let ready = ConditionStatus::from(status.latest_image.is_some());
        set_condition(&mut status.conditions, READY, ready, reasons::INVALID_SPEC, &message, generation, now);
        let idle = ConditionStatus::False;
        set_condition(&mut status.conditions, BUILDING, idle, reasons::INVALID_SPEC, &message, generation, now);
    }

    /// Phase and conditions from the build history.
    pub(super) fn conclude(&mut self) {
        let (view, generation, now) = (self.view, Some(self.view.generation), self.now);
        let status = &mut self.status;
        let last = status.builds.last().cloned();
        status.phase = Some(match last.as_ref().map(|b| b.phase) {
            None => BuildPhase::Pending,
            Some(BuildRecordPhase::Building) => BuildPhase::Building,
            Some(BuildRecordPhase::Ready) => BuildPhase::Ready,
            Some(BuildRecordPhase::Failed) => BuildPhase::Failed,
        });
        let conditions = &mut status.conditions;
        let (ready, reason, message) = match (&status.latest_image, &last) {
            (Some(image), Some(b)) if b.phase == BuildRecordPhase::Failed => (
                ConditionStatus::True,
                reasons::LATEST_BUILD_FAILED,
                format!("{image} is usable; the latest build failed: {}", b.message.clone().unwrap_or_default()),
            ),
            (Some(image), _) => (ConditionStatus::True, reasons::BUILT, image.clone()),
            (None, Some(b)) if b.phase == BuildRecordPhase::Failed => {
                (ConditionStatus::False, reasons::BUILD_FAILED, b.message.clone().unwrap_or_default())
            }
            (None, _) => (ConditionStatus::False, reasons::NOT_BUILT, "no build has succeeded yet".to_string()),
        };
        set_condition(conditions, READY, ready, reason, &message, generation, now);
        let (building, reason, message) = match &last {
            Some(b) if b.phase == BuildRecordPhase::Building => (
                ConditionStatus::True,
                reasons::BUILDING,
                format!("building {} ({})", record_image(view, b), b.message.clone().unwrap_or_default()),
            ),
            _ => (ConditionStatus::False, reasons::IDLE, "no build running".to_string()),
        };
        set_condition(conditions, BUILDING, building, reason, &message, generation, now);
    }
}

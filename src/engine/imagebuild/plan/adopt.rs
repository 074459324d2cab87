//! Pass 2: build Jobs the status does not list (its write was lost, or the
//! cached object predates it) become build records, with the rebuild
//! request they answered, so a build never starts twice.

use chrono::TimeDelta;

use super::Planning;
use crate::api::imagebuild::{BuildRecord, BuildRecordPhase};
use crate::engine::imagebuild::view::BuildJob;

impl Planning<'_> {
    /// Takes over the unknown build Jobs, oldest first. Only a Job newer
    /// than the newest build can be one whose write was lost: older ones
    /// belong to builds that left the history (`keepLast`).
    pub(super) fn adopt(&mut self) {
        let status = &mut self.status;
        // creationTimestamp has second resolution; start times do not.
        let newest =
            status.builds.last().and_then(|b| b.start_time).and_then(|t| t.checked_sub_signed(TimeDelta::seconds(1)));
        let mut unknown: Vec<&BuildJob> = self
            .observed
            .iter()
            .filter(|j| !j.prune && status.builds.iter().all(|b| b.job_name != j.outcome.name))
            .filter(|j| newest.is_none_or(|newest| j.outcome.created.is_some_and(|c| c >= newest)))
            .collect();
        unknown.sort_by_key(|j| j.outcome.created);
        for job in unknown {
            status.builds.push(BuildRecord {
                suffix: job.suffix.clone(),
                job_name: job.outcome.name.clone(),
                phase: BuildRecordPhase::Building,
                generation: Some(job.generation),
                start_time: job.outcome.created,
                image: job.image.clone(),
                ..Default::default()
            });
            if job.rebuild_request.is_some() {
                status.handled_rebuild = job.rebuild_request.clone();
            }
        }
    }
}

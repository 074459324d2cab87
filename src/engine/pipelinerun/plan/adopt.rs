//! Step 4: a Job for a later attempt than the status knows means the
//! status write after creating it was lost: take it over, never create twice.

use super::Planner;
use crate::api::pipelinerun::StagePhase;
use crate::engine::job::attempt_to_adopt;

impl Planner<'_> {
    /// Takes over the newest Job of every unfinished stage the status lags behind.
    pub(super) fn adopt_jobs(&mut self) {
        for entry in &mut self.status.stages {
            if entry.phase.is_finished() {
                continue;
            }
            if let Some(latest) = attempt_to_adopt(entry.attempt, self.observed.latest_attempt(&entry.name)) {
                entry.attempt = latest;
                entry.first_attempt = if entry.first_attempt == 0 { latest } else { entry.first_attempt };
                entry.job_name = self.observed.job(&entry.name, latest).map(|j| j.outcome.name.clone());
                entry.phase = StagePhase::Running;
                entry.retry_after = None;
                entry.start_time.get_or_insert(self.now);
            }
        }
    }
}

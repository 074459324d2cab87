//! How every step writes a stage's status: one entry per spec stage, an
//! attempt's record in its bounded history, and a stage's final phase.

use std::collections::BTreeMap;

use super::{Planner, MAX_HISTORY};
use crate::api::pipelinerun::{AttemptStatus, SkipReason, StagePhase, StageStatus};
use crate::engine::conditions::MAX_MESSAGE_BYTES;
use crate::engine::pipelinerun::view::JobObservation;
use crate::engine::text::truncate;

impl Planner<'_> {
    /// One status entry per spec stage, in spec order, keeping known ones.
    pub(super) fn align_stage_entries(&mut self) {
        let mut previous: BTreeMap<String, StageStatus> =
            std::mem::take(&mut self.status.stages).into_iter().map(|s| (s.name.clone(), s)).collect();
        self.status.stages = self
            .spec
            .stages
            .iter()
            .map(|s| {
                previous.remove(&s.name).unwrap_or_else(|| StageStatus { name: s.name.clone(), ..Default::default() })
            })
            .collect();
    }

    /// Sets stage `i` back to Pending for a new try (a rerun, a gate reset):
    /// its attempts go on counting past the recorded one and `seen_attempt`,
    /// and its history keeps the earlier tries.
    pub(super) fn new_try(&mut self, i: usize, seen_attempt: u32, message: &str) {
        let entry = &mut self.status.stages[i];
        let attempt = entry.attempt.max(seen_attempt);
        *entry = StageStatus {
            name: entry.name.clone(),
            attempt,
            first_attempt: attempt.saturating_add(1),
            history: std::mem::take(&mut entry.history),
            message: Some(truncate(message, MAX_MESSAGE_BYTES)),
            ..Default::default()
        };
    }

    /// Records stage `i`'s current attempt as ended in `phase`.
    pub(super) fn record_attempt(
        &mut self,
        i: usize,
        job: Option<&JobObservation>,
        phase: StagePhase,
        message: Option<&str>,
    ) {
        let entry = &mut self.status.stages[i];
        let record = AttemptStatus {
            attempt: entry.attempt,
            job_name: entry.job_name.clone().unwrap_or_default(),
            phase,
            start_time: job.and_then(|j| j.outcome.created).or(entry.start_time),
            completion_time: Some(job.and_then(|j| j.outcome.finished).unwrap_or(self.now)),
            message: message.map(|m| truncate(m, 200)),
        };
        entry.history.retain(|h| h.attempt != record.attempt);
        entry.history.push(record);
        let excess = entry.history.len().saturating_sub(MAX_HISTORY);
        entry.history.drain(..excess);
    }

    /// Stage `i` is over: `phase`, with the attempt of `job` recorded.
    pub(super) fn stage_done(
        &mut self,
        i: usize,
        job: Option<&JobObservation>,
        phase: StagePhase,
        skip: Option<SkipReason>,
        message: Option<&str>,
    ) {
        if job.is_some() {
            self.record_attempt(i, job, phase, message);
        }
        let entry = &mut self.status.stages[i];
        entry.phase = phase;
        entry.skip_reason = skip;
        entry.retry_after = None;
        entry.message = message.map(|m| truncate(m, MAX_MESSAGE_BYTES));
        entry.completion_time = Some(job.and_then(|j| j.outcome.finished).unwrap_or(self.now));
    }
}

//! Step 5: what became of each running stage's current attempt. A Job that
//! succeeded hands on its outputs (or fails the attempt when they are bad
//! or lost); a Job that failed is retried with backoff while the stage has
//! retries left; a TAP stage passes once every test passed in some attempt
//! of this try, even if the last Job failed; a Job the API server refused
//! fails the stage at once; a Job that vanished is a failed attempt.

use std::time::Duration;

use super::{Planner, DEFAULT_RETRY_DELAY_SECS, MAX_RETRY_DELAY};
use crate::api::common::TestCounts;
use crate::api::pipelinerun::{ResultsFormat, SkipReason, StagePhase};
use crate::engine::conditions::MAX_MESSAGE_BYTES;
use crate::engine::duration::later;
use crate::engine::job::{disappeared, JobState};
use crate::engine::note::Note;
use crate::engine::outputs::{is_skip, parse_outputs};
use crate::engine::pipelinerun::events;
use crate::engine::pipelinerun::log_tail::MAX_LOG_BYTES;
use crate::engine::pipelinerun::stage_kind::{stage_kind, StageKind};
use crate::engine::pipelinerun::tap;
use crate::engine::pipelinerun::view::JobObservation;
use crate::engine::refusal::{refusal_message, Refusal};
use crate::engine::text::truncate;

impl Planner<'_> {
    /// Folds the outcome of each running stage's current attempt into status.
    pub(super) fn integrate_attempts(&mut self) {
        let observed = self.observed;
        for i in 0..self.spec.stages.len() {
            if self.status.stages[i].phase != StagePhase::Running {
                continue;
            }
            let spec = self.spec;
            let stage = &spec.stages[i];
            let kind = stage_kind(stage);
            if kind.is_reference() {
                self.integrate_reference(i);
                continue;
            }
            let attempt = self.status.stages[i].attempt;
            match observed.job(&stage.name, attempt) {
                None => {
                    let job = self.status.stages[i].job_name.clone().unwrap_or_default();
                    match observed.refused.get(&job) {
                        Some(refusal) => self.refused(i, &job, refusal),
                        None => self.attempt_failed(i, None, disappeared(&job)),
                    }
                }
                Some(job) => match job.outcome.state {
                    JobState::Active => {
                        self.check_stage_deadline(i, job);
                        if let StageKind::Service { replicas } = kind {
                            self.integrate_service(i, job, replicas);
                        }
                    }
                    JobState::Succeeded => self.attempt_succeeded(i, job),
                    JobState::Failed => {
                        let why =
                            job.outcome.message.clone().unwrap_or_else(|| format!("Job {} failed", job.outcome.name));
                        let tap_rescue = self.tap_outcome(i, attempt);
                        match tap_rescue {
                            Some((counts, true, _)) => {
                                // Every test passed in some attempt: the stage passes
                                // even though this attempt's Job failed.
                                self.status.stages[i].tests = Some(counts);
                                self.stage_done(i, Some(job), StagePhase::Succeeded, None, None);
                            }
                            Some((counts, false, _)) => {
                                self.status.stages[i].tests = Some(counts);
                                self.attempt_failed(i, Some(job), why);
                            }
                            None => self.attempt_failed(i, Some(job), why),
                        }
                    }
                },
            }
        }
    }

    /// TAP results merged over the current try: (counts, all passed, problems).
    fn tap_outcome(&self, i: usize, attempt: u32) -> Option<(TestCounts, bool, Vec<String>)> {
        let stage = &self.spec.stages[i];
        if stage.results != Some(ResultsFormat::Tap) {
            return None;
        }
        let first = self.status.stages[i].first_attempt.max(1);
        let jobs: Vec<&str> = (first..=attempt)
            .filter_map(|a| self.observed.job(&stage.name, a))
            .map(|j| j.outcome.name.as_str())
            .collect();
        let reports: Vec<tap::TapReport> =
            jobs.iter().map(|j| tap::parse(self.observed.logs.get(*j).map(String::as_str).unwrap_or(""))).collect();
        let mut merged = tap::merge(&reports);
        if !merged.all_passed && jobs.iter().any(|j| self.observed.logs_cut.contains(*j)) {
            let budget = MAX_LOG_BYTES / (1024 * 1024);
            merged
                .problems
                .push(format!("the log is longer than {budget} MiB: TAP was read from its last {budget} MiB"));
        }
        Some((merged.counts, merged.all_passed, merged.problems))
    }

    fn attempt_succeeded(&mut self, i: usize, job: &JobObservation) {
        let stage = &self.spec.stages[i];
        if job.outcome.outputs_lost && !stage.outputs.is_empty() {
            let why = format!("Job {} succeeded, but its pod is gone with the outputs it wrote", job.outcome.name);
            return self.attempt_failed(i, Some(job), why);
        }
        let outputs = match parse_outputs(job.outcome.outputs.as_deref().unwrap_or(""), &stage.outputs) {
            Ok(o) => o,
            Err(e) => return self.attempt_failed(i, Some(job), format!("bad outputs: {e}")),
        };
        if let Some((counts, all_passed, problems)) = self.tap_outcome(i, job.attempt) {
            let failed = counts.failed;
            self.status.stages[i].tests = Some(counts);
            if !all_passed {
                let mut why = problems;
                if failed > 0 {
                    why.insert(0, format!("{failed} test(s) failed"));
                }
                return self.attempt_failed(i, Some(job), why.join("; "));
            }
        }
        let skip = is_skip(&outputs);
        self.status.stages[i].outputs = outputs;
        if skip {
            self.stage_done(
                i,
                Some(job),
                StagePhase::Skipped,
                Some(SkipReason::Requested),
                Some("stage reported skip"),
            );
        } else {
            self.stage_done(i, Some(job), StagePhase::Succeeded, None, None);
        }
    }

    /// The API server would not create the stage's Job `job`: the stage
    /// fails at once (trying the same manifest again would fare no better),
    /// and fail-fast, gating and finally treat it like any failed stage.
    pub(super) fn refused(&mut self, i: usize, job: &str, refusal: &Refusal) {
        let reason = if refusal.conflict { events::JOB_CONFLICT } else { events::JOB_REFUSED };
        let why = refusal_message(job, refusal);
        self.record_attempt(i, None, StagePhase::Failed, Some(&why));
        self.stage_done(i, None, StagePhase::Failed, None, Some(&why));
        let stage = self.spec.stages[i].name.clone();
        let note = Note::warning(reason, format!("stage {stage}: {why}"));
        self.notes.push(note.about_stage(stage).about_job(Some(job.to_string())));
    }

    /// The current attempt of stage `i` failed for `why`: the stage waits
    /// to retry while it has retries left, else it fails.
    pub(super) fn attempt_failed(&mut self, i: usize, job: Option<&JobObservation>, why: String) {
        self.record_attempt(i, job, StagePhase::Failed, Some(&why));
        let stage = &self.spec.stages[i];
        let entry = &self.status.stages[i];
        let tries = entry.attempt.saturating_add(1).saturating_sub(entry.first_attempt.max(1));
        let retries = stage.retries.or(self.spec.defaults.retries).unwrap_or(0);
        if tries <= retries {
            let base = stage
                .retry_delay_seconds
                .or(self.spec.defaults.retry_delay_seconds)
                .unwrap_or(DEFAULT_RETRY_DELAY_SECS);
            let delay = retry_delay(base, tries);
            let at = later(self.now, delay);
            let entry = &mut self.status.stages[i];
            entry.phase = StagePhase::Waiting;
            entry.retry_after = Some(at);
            entry.message =
                Some(truncate(&format!("attempt {} failed, retrying: {why}", entry.attempt), MAX_MESSAGE_BYTES));
            self.wake.at(at);
        } else {
            self.stage_done(i, None, StagePhase::Failed, None, Some(&why));
        }
    }
}

/// `base` seconds doubled for each retry after the first, capped.
pub fn retry_delay(base_secs: u32, tries: u32) -> Duration {
    let factor = 2u64.saturating_pow(tries.saturating_sub(1).min(20));
    Duration::from_secs(u64::from(base_secs).saturating_mul(factor)).min(MAX_RETRY_DELAY)
}

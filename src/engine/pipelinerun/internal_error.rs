//! What a run's status says when the operator itself failed on it (a
//! reconcile panicked): the run ends Failed with reason `InternalError`
//! instead of showing Running forever, and a finished run keeps the result
//! it really had.

use chrono::{DateTime, Utc};

use super::status::{reasons, CONDITION_SUCCEEDED};
use crate::api::pipelinerun::{PipelineRunStatus, RunPhase};
use crate::engine::conditions::{set_condition, ConditionStatus, MAX_MESSAGE_BYTES};
use crate::engine::text::truncate;

/// The status to write after reconciling the run failed with `why`; `None`
/// when the run had finished already (its result stands).
pub fn failed_by_internal_error(
    status: &PipelineRunStatus,
    why: &str,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Option<PipelineRunStatus> {
    if status.phase.is_some_and(RunPhase::is_finished) {
        return None;
    }
    let message = truncate(
        &format!("the operator failed while reconciling this run (a bug, please report it): {why}"),
        MAX_MESSAGE_BYTES,
    );
    let mut failed = status.clone();
    failed.phase = Some(RunPhase::Failed);
    failed.message = Some(message.clone());
    failed.completion_time = Some(now);
    failed.current_stage = None;
    set_condition(
        &mut failed.conditions,
        CONDITION_SUCCEEDED,
        ConditionStatus::False,
        reasons::INTERNAL_ERROR,
        &message,
        generation,
        now,
    );
    Some(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testing::t0 as now;

    #[test]
    fn an_unfinished_run_fails_with_the_reason_and_message() {
        let running = PipelineRunStatus { phase: Some(RunPhase::Running), ..Default::default() };
        let failed = failed_by_internal_error(&running, "overflow", Some(2), now()).expect("a new status");
        assert_eq!(failed.phase, Some(RunPhase::Failed));
        assert_eq!(failed.completion_time, Some(now()));
        let condition = failed.conditions.iter().find(|c| c.type_ == CONDITION_SUCCEEDED).expect("condition");
        assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("False", reasons::INTERNAL_ERROR));
        assert!(condition.message.ends_with(": overflow"), "{}", condition.message);
        assert_eq!(condition.observed_generation, Some(2));
        let never_reconciled = failed_by_internal_error(&PipelineRunStatus::default(), "x", None, now());
        assert_eq!(never_reconciled.and_then(|s| s.phase), Some(RunPhase::Failed));
    }

    #[test]
    fn a_finished_run_keeps_its_result() {
        for phase in [RunPhase::Succeeded, RunPhase::Failed, RunPhase::Cancelled] {
            let done = PipelineRunStatus { phase: Some(phase), ..Default::default() };
            assert_eq!(failed_by_internal_error(&done, "x", None, now()), None, "{phase:?}");
        }
    }

    #[test]
    fn a_long_panic_message_is_cut() {
        let failed = failed_by_internal_error(&PipelineRunStatus::default(), &"x".repeat(10_000), None, now()).unwrap();
        assert!(failed.message.unwrap().len() <= MAX_MESSAGE_BYTES);
    }
}

//! The Events a run publishes: their reasons, and the notes for every stage
//! and run phase change a plan makes (the last thing [`super::plan()`] does).

use crate::api::pipelinerun::{PipelineRunStatus, RunPhase, StagePhase};
use crate::engine::note::{Note, MAX_NOTE_BYTES};
use crate::engine::text::truncate;

/// A stage is waiting for its needs again (after a rerun).
pub const STAGE_PENDING: &str = "StagePending";
/// An attempt failed and the stage will try again (Warning).
pub const STAGE_RETRYING: &str = "StageRetrying";
/// An attempt started.
pub const STAGE_STARTED: &str = "StageStarted";
/// A stage succeeded.
pub const STAGE_SUCCEEDED: &str = "StageSucceeded";
/// A stage failed (Warning).
pub const STAGE_FAILED: &str = "StageFailed";
/// A stage was skipped.
pub const STAGE_SKIPPED: &str = "StageSkipped";
/// A stage was cancelled (Warning).
pub const STAGE_CANCELLED: &str = "StageCancelled";
/// Every pod of a service stage is ready.
pub const SERVICE_READY: &str = "ServiceReady";
/// The API server refused a stage's Job (Warning).
pub const JOB_REFUSED: &str = "JobRefused";
/// A stage's Job name is held by a Job of another owner (Warning).
pub const JOB_CONFLICT: &str = "JobConflict";
/// A finished run is rerun from a stage.
pub const RERUN: &str = "Rerun";
/// A rerun request could not be followed (Warning).
pub const RERUN_IGNORED: &str = "RerunIgnored";
/// An older run of a `CancelRunning` group is being cancelled.
pub const SUPERSEDED: &str = "Superseded";
/// The spec is invalid (Warning).
pub use crate::engine::spec_error::REASON_INVALID_SPEC as INVALID_SPEC;
/// A `spec.notify` target started failing (Warning).
pub const NOTIFY_FAILED: &str = "NotifyFailed";
/// A `spec.notify` target failed too often and is given up (Warning).
pub const NOTIFY_GAVE_UP: &str = "NotifyGaveUp";
/// Transitions were dropped unsent from a full outbox (Warning).
pub const NOTIFY_DROPPED: &str = "NotifyDropped";
/// A target's delivery queue is full; the rest waits in status (Warning).
pub const NOTIFY_QUEUE_FULL: &str = "NotifyQueueFull";
/// A gated run's try was stopped to be tested again on what is ahead now.
pub const GATE_RESET: &str = "GateReset";
/// A gated run merged.
pub const GATE_MERGED: &str = "GateMerged";
/// A gated run was rejected (Warning).
pub const GATE_REJECTED: &str = "GateRejected";
/// The run entered a phase: `Run` and the phase.
pub const RUN_PENDING: &str = "RunPending";
/// See [`RUN_PENDING`].
pub const RUN_QUEUED: &str = "RunQueued";
/// See [`RUN_PENDING`].
pub const RUN_RUNNING: &str = "RunRunning";
/// See [`RUN_PENDING`].
pub const RUN_SUCCEEDED: &str = "RunSucceeded";
/// See [`RUN_PENDING`] (Warning).
pub const RUN_FAILED: &str = "RunFailed";
/// See [`RUN_PENDING`] (Warning).
pub const RUN_CANCELLED: &str = "RunCancelled";

/// Whether entering `phase` is a Warning, and the Event's reason.
pub fn stage_reason(phase: StagePhase) -> (bool, &'static str) {
    match phase {
        StagePhase::Pending => (false, STAGE_PENDING),
        StagePhase::Waiting => (true, STAGE_RETRYING),
        StagePhase::Running => (false, STAGE_STARTED),
        StagePhase::Succeeded => (false, STAGE_SUCCEEDED),
        StagePhase::Failed => (true, STAGE_FAILED),
        StagePhase::Skipped => (false, STAGE_SKIPPED),
        StagePhase::Cancelled => (true, STAGE_CANCELLED),
    }
}

/// Whether entering `phase` is a Warning, and the Event's reason.
pub fn run_reason(phase: RunPhase) -> (bool, &'static str) {
    match phase {
        RunPhase::Pending => (false, RUN_PENDING),
        RunPhase::Queued => (false, RUN_QUEUED),
        RunPhase::Running => (false, RUN_RUNNING),
        RunPhase::Succeeded => (false, RUN_SUCCEEDED),
        RunPhase::Failed => (true, RUN_FAILED),
        RunPhase::Cancelled => (true, RUN_CANCELLED),
    }
}

/// One Event for every stage whose phase or attempt changed from `before`
/// to `after` (a new stage that is merely Pending is no news), then one for
/// the run's phase if it changed.
pub fn transitions(before: &PipelineRunStatus, after: &PipelineRunStatus) -> Vec<Note> {
    let mut notes = Vec::new();
    for entry in &after.stages {
        let old = before.stages.iter().find(|s| s.name == entry.name);
        let changed = old.is_none_or(|o| o.phase != entry.phase || o.attempt != entry.attempt);
        if !changed || (entry.phase == StagePhase::Pending && old.is_none()) {
            continue;
        }
        let (warning, reason) = stage_reason(entry.phase);
        let mut message = format!("stage {} attempt {}", entry.name, entry.attempt);
        if let Some(m) = &entry.message {
            message.push_str(": ");
            message.push_str(m);
        }
        notes.push(Note::new(warning, reason, message).about_stage(&entry.name).about_job(entry.job_name.clone()));
    }
    if before.phase != after.phase {
        if let Some(phase) = after.phase {
            let (warning, reason) = run_reason(phase);
            notes.push(Note::new(warning, reason, after.message.clone().unwrap_or_default()));
        }
    }
    notes
}

/// Whether a Normal note only says that something began or waits (a stage
/// or the run started, is pending or queued): news the status tells, worth
/// a line in another Event but no API write of its own.
fn is_progress(note: &Note) -> bool {
    !note.warning
        && [STAGE_STARTED, STAGE_PENDING, RUN_PENDING, RUN_QUEUED, RUN_RUNNING].contains(&note.reason.as_str())
}

/// The Kubernetes Events for one reconcile's `notes`. Each Event is an API
/// write, and a stage transition (one stage succeeds, the next starts) must
/// cost one at most: progress notes are folded into the message of the
/// first other Normal note (`StageSucceeded` for a stage reads "…; then
/// StageStarted: stage test attempt 1") and, alone, publish nothing (a run
/// that starts, a retry that begins: the status and the Warning before it
/// say so). Warnings and outcomes each stay an Event of their own. The
/// notes themselves, and the CloudEvents made from them, are unchanged.
pub fn to_publish(notes: &[Note]) -> Vec<Note> {
    let mut published: Vec<Note> = notes.iter().filter(|n| !is_progress(n)).cloned().collect();
    let folded: Vec<String> =
        notes.iter().filter(|n| is_progress(n)).map(|n| format!("{}: {}", n.reason, n.message)).collect();
    if let Some(carrier) = published.iter_mut().find(|n| !n.warning).filter(|_| !folded.is_empty()) {
        let message = format!("{}; then {}", carrier.message, folded.join("; "));
        carrier.message = truncate(&message, MAX_NOTE_BYTES);
    }
    published
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_phase_event_is_run_and_the_phase() {
        use RunPhase::*;
        for phase in [Pending, Queued, Running, Succeeded, Failed, Cancelled] {
            let (warning, reason) = run_reason(phase);
            assert_eq!(reason, format!("Run{phase:?}"));
            assert_eq!(warning, matches!(phase, Failed | Cancelled));
        }
    }

    fn reasons(notes: &[Note]) -> Vec<&str> {
        notes.iter().map(|n| n.reason.as_str()).collect()
    }

    #[test]
    fn a_stage_transition_is_one_event_naming_both_stages() {
        let notes = [
            Note::normal(STAGE_SUCCEEDED, "stage build attempt 1")
                .about_stage("build")
                .about_job(Some("r-build-1".into())),
            Note::normal(STAGE_STARTED, "stage test attempt 1").about_stage("test").about_job(Some("r-test-1".into())),
        ];
        let events = to_publish(&notes);
        assert_eq!(reasons(&events), [STAGE_SUCCEEDED]);
        assert_eq!(events[0].message, "stage build attempt 1; then StageStarted: stage test attempt 1");
        assert_eq!((events[0].stage.as_deref(), events[0].job.as_deref()), (Some("build"), Some("r-build-1")));
    }

    #[test]
    fn a_run_that_starts_publishes_nothing_and_one_that_ends_keeps_both_outcomes() {
        let start = [Note::normal(STAGE_STARTED, "stage a attempt 1").about_stage("a"), Note::normal(RUN_RUNNING, "")];
        assert!(to_publish(&start).is_empty(), "the status says it runs");
        let end =
            [Note::normal(STAGE_SUCCEEDED, "stage z attempt 1"), Note::normal(RUN_SUCCEEDED, "all stages succeeded")];
        assert_eq!(reasons(&to_publish(&end)), [STAGE_SUCCEEDED, RUN_SUCCEEDED]);
    }

    #[test]
    fn warnings_stay_events_of_their_own_and_never_carry_progress() {
        let notes = [
            Note::warning(STAGE_RETRYING, "stage t attempt 1: exit 1"),
            Note::normal(STAGE_STARTED, "stage t attempt 2"),
            Note::warning(STAGE_FAILED, "stage u attempt 3"),
        ];
        let events = to_publish(&notes);
        assert_eq!(reasons(&events), [STAGE_RETRYING, STAGE_FAILED]);
        assert_eq!((&events[0].message, &events[1].message), (&notes[0].message, &notes[2].message));
        assert!(to_publish(&[]).is_empty());
    }

    #[test]
    fn a_folded_message_is_cut_to_the_note_limit() {
        let long = "x".repeat(crate::engine::note::MAX_NOTE_BYTES);
        let notes = [Note::normal(STAGE_SUCCEEDED, &long), Note::normal(STAGE_STARTED, &long)];
        assert!(to_publish(&notes)[0].message.len() <= crate::engine::note::MAX_NOTE_BYTES);
    }
}

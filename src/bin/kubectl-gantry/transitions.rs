//! `watch` without a terminal: one line per transition, between two
//! snapshots of the run, e.g. `12:03:04 build Running (attempt 1/3)` and
//! `12:04:09 run nightly Succeeded in 1m5s`.

use chrono::{DateTime, Utc};
use gantry::api::pipelinerun::{PipelineRun, RunPhase, StagePhase};
use kube::ResourceExt;

use crate::failure::one_line;
use crate::output::word;
use crate::stages::{self, StageView};
use crate::time;
use crate::tree::truncate_chars;

const MAX_MESSAGE_CHARS: usize = 160;

/// The lines for what changed from `before` to `after` (from nothing when
/// `before` is None, so the first snapshot tells where the run stands). A
/// stage changes when its phase or attempt does. The run's own line comes
/// first while it runs and last once it finished. Each line starts with
/// `clock` of when it happened: the completion time the status records for
/// what finished (so a finished run watched later tells when it ended), else `now`.
pub fn lines(
    before: Option<&PipelineRun>,
    after: &PipelineRun,
    now: DateTime<Utc>,
    clock: impl Fn(DateTime<Utc>) -> String,
) -> Vec<String> {
    let phase = |run: &PipelineRun| run.status.as_ref().and_then(|s| s.phase);
    let run_line = match phase(after) {
        Some(p) if Some(p) != before.and_then(phase) => {
            let at = after.status.as_ref().and_then(|s| s.completion_time).filter(|_| p.is_finished());
            Some(format!("{} {}", clock(at.unwrap_or(now)), run_words(after, p, now)))
        }
        _ => None,
    };
    let finished = phase(after).is_some_and(RunPhase::is_finished);
    let mut out = Vec::new();
    if !finished {
        out.extend(run_line.clone());
    }
    let old = before.map(stages::of).unwrap_or_default();
    for stage in stages::of(after) {
        let was = old.iter().find(|s| s.name() == stage.name()).map(key).unwrap_or((StagePhase::Pending, None));
        if key(&stage) != was {
            let at = stage.status.and_then(|s| s.completion_time).filter(|_| stage.phase().is_finished());
            out.push(format!("{} {}", clock(at.unwrap_or(now)), stage_words(&stage, now)));
        }
    }
    if finished {
        out.extend(run_line);
    }
    out
}

/// What makes a stage's line worth printing again: its phase and attempt.
fn key(stage: &StageView) -> (StagePhase, Option<u32>) {
    (stage.phase(), stage.status.map(|s| s.attempt).filter(|&a| a > 0))
}

/// `build Failed in 5s (attempt 3/3): exited with code 1; tests 2 passed, 1 failed, 0 skipped`.
pub fn stage_words(stage: &StageView, now: DateTime<Utc>) -> String {
    let phase = stage.phase();
    let mut text = format!("{} {}", stage.name(), stage.phase_word());
    if phase.is_finished() {
        if let Some(duration) = stage.duration(now) {
            text.push_str(&format!(" in {duration}"));
        }
    }
    if let Some(attempt) = stage.attempt() {
        text.push_str(&format!(" (attempt {attempt})"));
    }
    let explains =
        matches!(phase, StagePhase::Failed | StagePhase::Waiting | StagePhase::Cancelled | StagePhase::Skipped);
    if let Some(message) = stage.message().filter(|_| explains) {
        text.push_str(&format!(": {}", truncate_chars(&one_line(message), MAX_MESSAGE_CHARS)));
    }
    if let Some(tests) = stage.status.and_then(|s| s.tests.as_ref()).filter(|_| phase.is_finished()) {
        text.push_str(&format!("; tests {} passed, {} failed, {} skipped", tests.passed, tests.failed, tests.skipped));
    }
    text
}

/// `run nightly Failed in 1m5s: stage build failed: ...`.
fn run_words(run: &PipelineRun, phase: RunPhase, now: DateTime<Utc>) -> String {
    let status = run.status.as_ref();
    let mut text = format!("run {} {}", run.name_any(), word(Some(&phase)));
    if phase.is_finished() {
        if let Some(duration) = status.and_then(|s| time::span(s.start_time, s.completion_time, now)) {
            text.push_str(&format!(" in {duration}"));
        }
        let message = status.and_then(|s| s.message.as_deref()).filter(|m| !m.is_empty());
        if let Some(message) = message.filter(|_| phase != RunPhase::Succeeded) {
            text.push_str(&format!(": {}", truncate_chars(&one_line(message), MAX_MESSAGE_CHARS)));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::tests::{at, run_from};
    use serde_json::json;

    fn hms(t: DateTime<Utc>) -> String {
        t.format("%H:%M:%S").to_string()
    }

    fn snapshot(phase: &str, stages: serde_json::Value, extra: serde_json::Value) -> PipelineRun {
        let mut status = json!({"phase": phase, "stages": stages, "startTime": "2026-12-02T07:00:00Z"});
        status.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        run_from(
            json!({"stages": [{"name": "build", "retries": 2}, {"name": "test", "needs": ["build"], "results": "tap"}]}),
            status,
        )
    }

    #[test]
    fn the_first_snapshot_says_where_the_run_stands() {
        let now = snapshot(
            "Running",
            json!([{"name": "build", "phase": "Running", "attempt": 1, "firstAttempt": 1},
                   {"name": "test", "phase": "Pending"}]),
            json!({}),
        );
        assert_eq!(
            lines(None, &now, at(1), hms),
            ["07:00:01 run nightly Running", "07:00:01 build Running (attempt 1/3)"]
        );
    }

    #[test]
    fn a_retry_a_success_and_the_end_each_get_a_line_and_nothing_else_does() {
        let t1 = snapshot(
            "Running",
            json!([{"name": "build", "phase": "Running", "attempt": 1, "firstAttempt": 1}]),
            json!({}),
        );
        let t2 = snapshot(
            "Running",
            json!([{"name": "build", "phase": "Waiting", "attempt": 1, "firstAttempt": 1,
                    "message": "attempt 1 failed, retrying: exited with code 1"}]),
            json!({}),
        );
        let t3 = snapshot(
            "Running",
            json!([{"name": "build", "phase": "Running", "attempt": 2, "firstAttempt": 1}]),
            json!({}),
        );
        let t4 = snapshot(
            "Succeeded",
            json!([{"name": "build", "phase": "Succeeded", "attempt": 2, "firstAttempt": 1,
                    "startTime": "2026-12-02T07:00:00Z", "completionTime": "2026-12-02T07:00:20Z"},
                   {"name": "test", "phase": "Succeeded", "attempt": 1, "firstAttempt": 1,
                    "startTime": "2026-12-02T07:00:20Z", "completionTime": "2026-12-02T07:01:05Z",
                    "tests": {"passed": 3, "failed": 0, "skipped": 1}}]),
            json!({"completionTime": "2026-12-02T07:01:05Z"}),
        );
        assert_eq!(
            lines(Some(&t1), &t2, at(5), hms),
            ["07:00:05 build Waiting (attempt 1/3): attempt 1 failed, retrying: exited with code 1"]
        );
        assert_eq!(lines(Some(&t2), &t3, at(6), hms), ["07:00:06 build Running (attempt 2/3)"]);
        assert!(lines(Some(&t3), &t3, at(7), hms).is_empty(), "no change, no line");
        assert_eq!(
            lines(Some(&t3), &t4, at(70), hms),
            [
                "07:00:20 build Succeeded in 20s (attempt 2/3)",
                "07:01:05 test Succeeded in 45s (attempt 1/1); tests 3 passed, 0 failed, 1 skipped",
                "07:01:05 run nightly Succeeded in 1m5s",
            ]
        );
    }

    #[test]
    fn a_failed_run_says_why_and_when_each_part_ended() {
        let before = snapshot("Running", json!([]), json!({}));
        let after = snapshot(
            "Failed",
            json!([{"name": "build", "phase": "Failed", "attempt": 3, "firstAttempt": 1,
                    "startTime": "2026-12-02T07:00:00Z", "completionTime": "2026-12-02T07:00:30Z",
                    "message": "exited with code 1"},
                   {"name": "test", "phase": "Cancelled", "message": "stage build failed"}]),
            json!({"completionTime": "2026-12-02T07:00:30Z", "message": "stage build failed: exited with code 1"}),
        );
        assert_eq!(
            lines(Some(&before), &after, at(40), hms),
            [
                "07:00:30 build Failed in 30s (attempt 3/3): exited with code 1",
                "07:00:40 test Cancelled: stage build failed",
                "07:00:30 run nightly Failed in 30s: stage build failed: exited with code 1",
            ]
        );
    }
}

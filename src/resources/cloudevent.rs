//! CloudEvents (structured mode, JSON) for PipelineRun transitions, sent to
//! `spec.notify` endpoints such as ResultsDB. Pure.

use kube::ResourceExt;
use serde_json::{json, Value};

use crate::api::pipelinerun::PendingNotification;
use crate::api::PipelineRun;

/// The content type of a structured-mode CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// `StageSucceeded` → `dev.gantry.pipelinerun.stage.succeeded`,
/// `RunFailed` → `dev.gantry.pipelinerun.failed`, `GateMerged` →
/// `dev.gantry.gate.merged`.
pub fn event_type(reason: &str) -> String {
    let (scope, rest) = if let Some(rest) = reason.strip_prefix("Stage") {
        ("pipelinerun.stage", rest)
    } else if let Some(rest) = reason.strip_prefix("Run") {
        ("pipelinerun", rest)
    } else if let Some(rest) = reason.strip_prefix("Gate") {
        ("gate", rest)
    } else {
        ("pipelinerun", reason)
    };
    let mut words = String::new();
    for (i, c) in rest.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push('-');
        }
        words.extend(c.to_lowercase());
    }
    format!("dev.gantry.{scope}.{words}")
}

/// The event for one recorded transition of `run`. Its `id` is the same
/// for the same transition, so receivers can drop repeats (an operator
/// that restarted sends what was not acknowledged again).
pub fn pipeline_event(run: &PipelineRun, note: &PendingNotification) -> Value {
    let ns = run.namespace().unwrap_or_default();
    // A stage transition is told apart by its attempt; a run transition by
    // its place in the run's sequence (a rerun finishes the run again).
    let which = match note.job.as_deref().and_then(attempt_of) {
        Some(attempt) => attempt.to_string(),
        None => format!("s{}", note.sequence),
    };
    let id =
        format!("{}/{}/{}/{which}", run.uid().unwrap_or_default(), note.reason, note.stage.as_deref().unwrap_or("-"));
    let mut event = json!({
        "specversion": "1.0",
        "type": event_type(&note.reason),
        "source": format!("/apis/gantry.dev/v1alpha1/namespaces/{ns}/pipelineruns/{}", run.name_any()),
        "id": id,
        "time": note.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "subject": note.stage.clone().unwrap_or_else(|| run.name_any()),
        "datacontenttype": "application/json",
        "data": {
            "namespace": ns,
            "run": run.name_any(),
            "stage": note.stage,
            "job": note.job,
            "reason": note.reason,
            "message": note.message,
            "warning": note.warning,
            "source": run.spec.source,
            "params": run.spec.params,
            "progress": note.progress,
            "sequence": note.sequence,
        }
    });
    // The run's last transition carries its gating verdict, so a gating
    // system records it without reading the object.
    let verdict = run.status.as_ref().and_then(|s| s.verdict.as_ref()).filter(|_| is_final(&note.reason));
    if let Some(verdict) = verdict {
        event["data"]["verdict"] = json!(verdict);
    }
    event
}

/// Whether `reason` is a run's entry into a final phase.
fn is_final(reason: &str) -> bool {
    use crate::engine::pipelinerun::events::{RUN_CANCELLED, RUN_FAILED, RUN_SUCCEEDED};
    [RUN_SUCCEEDED, RUN_FAILED, RUN_CANCELLED].contains(&reason)
}

/// The attempt in a stage Job's name, `<run>-<stage>-<attempt>-<tag>`.
fn attempt_of(job: &str) -> Option<&str> {
    job.rsplit('-').nth(1).filter(|a| a.parse::<u32>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_reason() {
        assert_eq!(event_type("StageSucceeded"), "dev.gantry.pipelinerun.stage.succeeded");
        assert_eq!(event_type("StageRetrying"), "dev.gantry.pipelinerun.stage.retrying");
        assert_eq!(event_type("RunFailed"), "dev.gantry.pipelinerun.failed");
        assert_eq!(event_type("InvalidSpec"), "dev.gantry.pipelinerun.invalid-spec");
        assert_eq!(event_type("GateMerged"), "dev.gantry.gate.merged");
        assert_eq!(event_type("GateRejected"), "dev.gantry.gate.rejected");
        assert_eq!(event_type("GateReset"), "dev.gantry.gate.reset");
    }

    #[test]
    fn an_event_names_run_stage_and_attempt_with_a_stable_id() {
        let run: PipelineRun = serde_json::from_value(json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": "nightly", "namespace": "ci", "uid": "u1"},
            "spec": {"stages": [{"name": "kola"}], "params": [{"name": "arch", "value": "arm64"}]}
        }))
        .unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-21T15:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let note = PendingNotification {
            sequence: 4,
            warning: true,
            reason: "StageFailed".into(),
            message: "stage kola attempt 2: 1 test(s) failed".into(),
            stage: Some("kola".into()),
            job: Some(crate::engine::naming::job_name("nightly", "u1", "kola", 2)),
            time: now,
            progress: Some("1/3".into()),
        };
        let event = pipeline_event(&run, &note);
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["type"], "dev.gantry.pipelinerun.stage.failed");
        assert_eq!(event["source"], "/apis/gantry.dev/v1alpha1/namespaces/ci/pipelineruns/nightly");
        assert_eq!(event["id"], "u1/StageFailed/kola/2");
        assert_eq!(event["subject"], "kola");
        assert_eq!(event["data"]["params"][0]["value"], "arm64");
        assert_eq!(event["time"], "2026-11-21T15:00:00.000Z", "when it happened, not when it was sent");
        assert_eq!(event["data"]["progress"], "1/3");
        assert_eq!(event["data"]["sequence"], 4);
        assert_eq!(pipeline_event(&run, &note), event, "a resent event is the same event");

        let retried = PendingNotification {
            sequence: 6,
            job: Some(crate::engine::naming::job_name("nightly", "u1", "kola", 3)),
            ..note.clone()
        };
        assert_eq!(pipeline_event(&run, &retried)["id"], "u1/StageFailed/kola/3", "another attempt, another id");
        let finished = PendingNotification { reason: "RunSucceeded".into(), stage: None, job: None, ..note.clone() };
        let rerun_finished = PendingNotification { sequence: 9, ..finished.clone() };
        assert_eq!(pipeline_event(&run, &finished)["id"], "u1/RunSucceeded/-/s4");
        assert_ne!(
            pipeline_event(&run, &finished)["id"],
            pipeline_event(&run, &rerun_finished)["id"],
            "a rerun finishes again"
        );
    }

    #[test]
    fn the_final_event_carries_the_gating_verdict_and_no_other_does() {
        let run: PipelineRun = serde_json::from_value(json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": "pr-7", "namespace": "ci", "uid": "u7"},
            "spec": {"stages": [{"name": "test"}, {"name": "lint", "gating": false}]},
            "status": {"phase": "Failed", "verdict": {
                "decision": "Fail",
                "required": [{"stage": "test", "outcome": "Failed", "failedTests": ["boot"]}],
                "informational": [{"stage": "lint", "outcome": "Succeeded"}]}}
        }))
        .unwrap();
        let time = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let note =
            |reason: &str| PendingNotification { sequence: 3, reason: reason.into(), time, ..Default::default() };
        let last = pipeline_event(&run, &note("RunFailed"));
        assert_eq!(last["data"]["verdict"]["decision"], "Fail");
        assert_eq!(last["data"]["verdict"]["required"][0]["failedTests"][0], "boot");
        assert_eq!(last["data"]["verdict"]["informational"][0]["stage"], "lint");
        assert!(pipeline_event(&run, &note("StageFailed"))["data"].get("verdict").is_none());
        assert_eq!(pipeline_event(&run, &note("GateRejected"))["type"], "dev.gantry.gate.rejected");
    }
}

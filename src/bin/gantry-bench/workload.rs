//! What both phases run: N chains of S stages, and what a phase hands back.

use std::time::Duration;

use gantry::engine::naming::{LABEL_ATTEMPT, LABEL_RUN, LABEL_STAGE};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use serde_json::{json, Value};

use crate::tracker::JobSeen;

/// The bench's workload.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Chains (PipelineRuns) started at once.
    pub runs: usize,
    /// Stages per chain, each needing the one before.
    pub stages: usize,
    /// The stages' image (never pulled: nothing runs the pods).
    pub image: String,
    /// How long a phase may take before it is reported unfinished.
    pub timeout: Duration,
    /// Creates in flight at once when starting the chains.
    pub create_concurrency: usize,
}

/// The outputs every completed stage reports (its termination message).
pub const OUTPUTS: &str = "n=1\n";

/// What one phase saw; times in seconds since it started.
#[derive(Debug, Default)]
pub struct Outcome {
    pub wall_secs: f64,
    /// When each finished chain finished, in order.
    pub finished: Vec<f64>,
    /// Chains that ended well (Succeeded).
    pub succeeded: usize,
    /// Every stage Job the phase's watch saw.
    pub jobs: Vec<JobSeen>,
    /// Peak RSS of the operator (Gantry phase only).
    pub peak_rss_kib: Option<u64>,
    /// Reconciles the operator started (Gantry phase only).
    pub reconciles: Option<f64>,
    /// The requests the operator counted itself (Gantry phase only).
    pub operator_requests: Option<crate::metrics::Counts>,
    /// CPU seconds each component used during the phase ([`crate::cpu`]).
    pub cpu_seconds: std::collections::BTreeMap<String, f64>,
}

impl Workload {
    /// `s1`..`sS`.
    pub fn stage_names(&self) -> Vec<String> {
        (1..=self.stages).map(|i| format!("s{i}")).collect()
    }

    /// The name of chain `i` (0-based) with `prefix`.
    pub fn run_name(prefix: &str, i: usize) -> String {
        format!("{prefix}-{:05}", i + 1)
    }

    /// A PipelineRun of the chain `s1 → s2 → ... → sS`, each stage passing an
    /// output on to the next.
    pub fn pipeline_run(&self, name: &str) -> Value {
        let stages: Vec<Value> = self
            .stage_names()
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                let mut s = json!({"name": stage, "outputs": ["n"], "run": {"command": ["true"]}});
                if i > 0 {
                    let prev = format!("s{i}");
                    s["needs"] = json!([prev]);
                    s["run"]["args"] = json!([format!("$(stages.{prev}.outputs.n)")]);
                }
                s
            })
            .collect();
        json!({
            "apiVersion": "gantry.dev/v1alpha1",
            "kind": "PipelineRun",
            "metadata": {"name": name},
            "spec": {"defaults": {"image": self.image}, "stages": stages},
        })
    }

    /// The baseline's Job for `stage` of chain `run`: one attempt, labelled
    /// like Gantry's, with the same container name.
    pub fn baseline_job(&self, run: &str, stage: &str) -> Value {
        let labels = json!({LABEL_RUN: run, LABEL_STAGE: stage, LABEL_ATTEMPT: "1"});
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": format!("{run}-{stage}-1"), "labels": labels},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": gantry::resources::job::STAGE_CONTAINER,
                            "image": self.image,
                            "command": ["true"],
                            "terminationMessagePath": "/dev/termination-log",
                        }],
                    },
                },
            },
        })
    }

    /// A status of run `run` like Gantry's once `done` of its stages
    /// succeeded and the next one runs (all done: Succeeded); `note` goes
    /// into its message, so that writes with different notes differ.
    pub fn status(&self, run: &str, done: usize, note: usize) -> Value {
        let stage = |s: usize| {
            let name = format!("s{s}");
            let job = format!("{run}-{name}-1");
            if s <= done {
                json!({"name": name, "phase": "Succeeded", "attempt": 1, "firstAttempt": 1, "jobName": job,
                       "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:01Z",
                       "outputs": {"n": "1"},
                       "history": [{"attempt": 1, "jobName": job, "phase": "Succeeded",
                                    "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:01Z"}]})
            } else if s == done + 1 {
                json!({"name": name, "phase": "Running", "attempt": 1, "firstAttempt": 1, "jobName": job,
                       "startTime": "2026-01-01T00:00:01Z"})
            } else {
                json!({"name": name, "phase": "Pending", "attempt": 0, "firstAttempt": 0})
            }
        };
        let (phase, condition, reason) =
            if done >= self.stages { ("Succeeded", "True", "Succeeded") } else { ("Running", "Unknown", "Running") };
        json!({
            "observedGeneration": 1, "phase": phase, "progress": format!("{done}/{}", self.stages),
            "message": format!("write {note}"), "startTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "Succeeded", "status": condition, "reason": reason, "message": format!("write {note}"),
                            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}],
            "stages": (1..=self.stages).map(stage).collect::<Vec<_>>(),
        })
    }

    /// An Event about run `run` like the one Gantry publishes for a stage
    /// hand-off, the `i`th of the run.
    pub fn event(namespace: String, run: &str, i: usize) -> Event {
        Event {
            metadata: ObjectMeta {
                namespace: Some(namespace.clone()),
                name: Some(format!("{run}.{i:x}")),
                ..Default::default()
            },
            action: Some("Reconcile".into()),
            reason: Some("StageSucceeded".into()),
            note: Some(format!("stage s1 attempt 1; then StageStarted: stage s2 attempt {i}")),
            event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            regarding: Some(ObjectReference {
                api_version: Some("gantry.dev/v1alpha1".into()),
                kind: Some("PipelineRun".into()),
                name: Some(run.to_string()),
                namespace: Some(namespace),
                ..Default::default()
            }),
            reporting_controller: Some("gantry.dev/gantry".into()),
            reporting_instance: Some("gantry-bench".into()),
            type_: Some("Normal".into()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        Workload {
            runs: 2,
            stages: 3,
            image: "local/busybox:1".into(),
            timeout: Duration::from_secs(1),
            create_concurrency: 1,
        }
    }

    #[test]
    fn a_run_is_a_chain_that_passes_outputs_on() {
        let run: gantry::api::PipelineRun = serde_json::from_value(workload().pipeline_run("run-00001")).unwrap();
        let stages = &run.spec.stages;
        assert_eq!(stages.len(), 3);
        assert!(stages[0].needs.is_empty());
        assert_eq!(stages[2].needs, vec!["s2".to_string()]);
        assert_eq!(stages[2].run.as_ref().unwrap().args, vec!["$(stages.s2.outputs.n)".to_string()]);
        assert_eq!(Workload::run_name("run", 0), "run-00001");
    }

    #[test]
    fn a_status_is_a_valid_pipelinerun_status_of_the_stages_done() {
        let status = |done, note| -> gantry::api::pipelinerun::PipelineRunStatus {
            serde_json::from_value(workload().status("r", done, note)).unwrap()
        };
        let halfway = status(1, 1);
        assert_eq!(halfway.stages.len(), 3);
        let phases: Vec<_> = halfway.stages.iter().map(|s| s.phase).collect();
        use gantry::api::pipelinerun::StagePhase::*;
        assert_eq!(phases, [Succeeded, Running, Pending]);
        assert_eq!(halfway.phase, Some(gantry::api::pipelinerun::RunPhase::Running));
        assert_eq!(status(3, 1).phase, Some(gantry::api::pipelinerun::RunPhase::Succeeded));
        assert_ne!(workload().status("r", 1, 1), workload().status("r", 1, 2), "another note, another write");
    }

    #[test]
    fn a_baseline_job_is_labelled_like_gantry_s() {
        let job: k8s_openapi::api::batch::v1::Job =
            serde_json::from_value(workload().baseline_job("chain-00001", "s2")).unwrap();
        let labels = job.metadata.labels.unwrap();
        assert_eq!(labels[LABEL_RUN], "chain-00001");
        assert_eq!(labels[LABEL_STAGE], "s2");
        assert_eq!(job.metadata.name.as_deref(), Some("chain-00001-s2-1"));
    }
}

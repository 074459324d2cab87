//! What both phases run: N chains of S stages, and what a phase hands back.

use std::time::Duration;

use gantry::engine::naming::{LABEL_ATTEMPT, LABEL_RUN, LABEL_STAGE};
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
    fn a_baseline_job_is_labelled_like_gantry_s() {
        let job: k8s_openapi::api::batch::v1::Job =
            serde_json::from_value(workload().baseline_job("chain-00001", "s2")).unwrap();
        let labels = job.metadata.labels.unwrap();
        assert_eq!(labels[LABEL_RUN], "chain-00001");
        assert_eq!(labels[LABEL_STAGE], "s2");
        assert_eq!(job.metadata.name.as_deref(), Some("chain-00001-s2-1"));
    }
}

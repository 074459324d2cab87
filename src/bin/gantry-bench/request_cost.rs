//! The `requests` phase: what one request of each kind Gantry makes per
//! stage transition costs the cluster, in CPU milliseconds of the API
//! server, etcd and the controller-manager (whose garbage collector watches
//! every object). With the cluster's CPU saturated (the N = 2000 phases on
//! two cores), Gantry's throughput against the baseline is the ratio of
//! their CPU per transition, and these costs say what each write adds.
//!
//! Each kind is sent `count` times from 4 clients at once, on the bench's
//! own PipelineRuns (no operator runs), between two readings of `/proc`.

use std::collections::BTreeMap;

use futures::{stream, StreamExt};
use gantry::api::PipelineRun;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::json;

use crate::cpu;
use crate::metrics::per;
use crate::workload::Workload;

/// Clients writing at once.
const CLIENTS: usize = 4;

/// The kinds of request measured, by the apiserver's name for them.
pub const KINDS: [&str; 2] = ["APPLY pipelineruns/status", "POST events"];

/// One kind's cost.
#[derive(Debug, Serialize)]
pub struct RequestCost {
    pub requests: usize,
    /// CPU milliseconds per request, by component (API server, etcd, controller-manager).
    pub cpu_ms: BTreeMap<String, f64>,
    /// Their sum.
    pub cpu_ms_total: f64,
}

/// Measures every kind in [`KINDS`] with `count` requests in `namespace`.
pub async fn measure(
    client: &Client,
    namespace: &str,
    workload: &Workload,
    count: usize,
) -> anyhow::Result<BTreeMap<String, RequestCost>> {
    let runs = Api::<PipelineRun>::namespaced(client.clone(), namespace);
    let names: Vec<String> = (0..CLIENTS).map(|i| Workload::run_name("cost", i)).collect();
    for name in &names {
        let run: PipelineRun = serde_json::from_value(workload.pipeline_run(name))?;
        runs.create(&PostParams::default(), &run).await?;
    }
    let events = Api::<Event>::namespaced(client.clone(), namespace);
    let mut costs = BTreeMap::new();
    for kind in KINDS {
        let before = cpu::cpu_seconds();
        let sends = (0..count).map(|i| {
            let (runs, events, name) = (runs.clone(), events.clone(), names[i % CLIENTS].clone());
            let (namespace, stages) = (namespace.to_string(), workload.stages);
            async move {
                match kind {
                    "APPLY pipelineruns/status" => {
                        let patch = json!({"apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
                                           "status": status(stages, i)});
                        let params = PatchParams::apply("gantry-bench").force();
                        runs.patch_status(&name, &params, &Patch::Apply(&patch)).await.map(drop)
                    }
                    _ => events.create(&PostParams::default(), &event(namespace, &name, i)).await.map(drop),
                }
            }
        });
        let results: Vec<Result<(), kube::Error>> = stream::iter(sends).buffer_unordered(CLIENTS).collect().await;
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            anyhow::bail!("{kind}: {e}");
        }
        let mut spent = cpu::spent(&before, &cpu::cpu_seconds());
        spent.retain(|name, _| name.starts_with("kube-") || name == "etcd");
        let cpu_ms = per(&spent, count as f64 / 1000.0);
        let cpu_ms_total = cpu_ms.values().sum();
        costs.insert(kind.to_string(), RequestCost { requests: count, cpu_ms, cpu_ms_total });
    }
    Ok(costs)
}

/// A status the size of Gantry's halfway through a run of `stages` chained
/// stages (the `i`th write changes its message, so every write is one).
fn status(stages: usize, i: usize) -> serde_json::Value {
    let stage = |s: usize| {
        let name = format!("s{s}");
        let job = format!("cost-{name}-1-abcde");
        if s <= stages / 2 {
            json!({"name": name, "phase": "Succeeded", "attempt": 1, "firstAttempt": 1, "jobName": job,
                   "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:01Z",
                   "outputs": {"n": "1"},
                   "history": [{"attempt": 1, "jobName": job, "phase": "Succeeded",
                                "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:01Z"}]})
        } else {
            json!({"name": name, "phase": "Pending", "attempt": 0, "firstAttempt": 0})
        }
    };
    json!({
        "observedGeneration": 1, "phase": "Running", "progress": format!("{}/{stages}", stages / 2),
        "message": format!("write {i}"), "startTime": "2026-01-01T00:00:00Z",
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running", "message": format!("write {i}"),
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}],
        "stages": (1..=stages).map(stage).collect::<Vec<_>>(),
    })
}

/// An Event like the one Gantry publishes for a stage hand-off.
fn event(namespace: String, run: &str, i: usize) -> Event {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_written_is_a_valid_pipelinerun_status_and_changes_every_time() {
        let first: gantry::api::pipelinerun::PipelineRunStatus = serde_json::from_value(status(5, 1)).unwrap();
        assert_eq!(first.stages.len(), 5);
        assert_eq!(first.stages.iter().filter(|s| s.phase.is_finished()).count(), 2);
        assert_ne!(status(5, 1), status(5, 2));
    }
}

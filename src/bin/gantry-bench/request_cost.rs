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
use k8s_openapi::api::events::v1::Event;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::json;

use crate::cpu;
use crate::metrics::per;
use crate::workload::Workload;

/// Clients writing at once.
const CLIENTS: usize = 4;

/// The requests measured: the writes a Gantry run makes that the baseline's
/// chains do not (both create the same stage Jobs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The operator's status write.
    StatusApply,
    /// The same status sent as a JSON merge patch instead of an apply: what
    /// server-side apply's field tracking adds to a status write.
    StatusMergePatch,
    /// The operator's Event.
    Event,
    /// Creating the PipelineRun itself (the user's write, once per run).
    RunCreate,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::StatusApply, Kind::StatusMergePatch, Kind::Event, Kind::RunCreate];

    /// The apiserver's name for it (`VERB resource`), as the request counts have it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::StatusApply => "APPLY pipelineruns/status",
            Kind::StatusMergePatch => "PATCH pipelineruns/status",
            Kind::Event => "POST events",
            Kind::RunCreate => "POST pipelineruns",
        }
    }
}

/// One kind's cost.
#[derive(Debug, Serialize)]
pub struct RequestCost {
    pub requests: usize,
    /// CPU milliseconds per request, by component (API server, etcd, controller-manager).
    pub cpu_ms: BTreeMap<String, f64>,
    /// Their sum.
    pub cpu_ms_total: f64,
}

/// Measures every [`Kind`] with `count` requests in `namespace`, by name.
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
    for kind in Kind::ALL {
        let before = cpu::cpu_seconds();
        let sends = (0..count).map(|i| {
            let (runs, events, name) = (runs.clone(), events.clone(), names[i % CLIENTS].clone());
            let namespace = namespace.to_string();
            async move {
                match kind {
                    Kind::StatusApply => {
                        let patch = json!({"apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
                                           "status": workload.status("cost", workload.stages / 2, i)});
                        let params = PatchParams::apply("gantry-bench").force();
                        runs.patch_status(&name, &params, &Patch::Apply(&patch)).await.map(drop)
                    }
                    Kind::StatusMergePatch => {
                        let patch = json!({"status": workload.status("cost", workload.stages / 2, i)});
                        runs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(drop)
                    }
                    Kind::Event => {
                        events.create(&PostParams::default(), &Workload::event(namespace, &name, i)).await.map(drop)
                    }
                    Kind::RunCreate => {
                        let run = serde_json::from_value(workload.pipeline_run(&format!("{name}-{i}")))
                            .expect("the bench's PipelineRun is valid");
                        runs.create(&PostParams::default(), &run).await.map(drop)
                    }
                }
            }
        });
        let results: Vec<Result<(), kube::Error>> = stream::iter(sends).buffer_unordered(CLIENTS).collect().await;
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            anyhow::bail!("{}: {e}", kind.name());
        }
        let mut spent = cpu::spent(&before, &cpu::cpu_seconds());
        spent.retain(|name, _| name.starts_with("kube-") || name == "etcd");
        let cpu_ms = per(&spent, count as f64 / 1000.0);
        let cpu_ms_total = cpu_ms.values().sum();
        costs.insert(kind.name().to_string(), RequestCost { requests: count, cpu_ms, cpu_ms_total });
    }
    Ok(costs)
}

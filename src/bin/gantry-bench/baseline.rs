//! The no-operator phases: a minimal client that, for N chains of S Jobs,
//! creates each next Job as soon as the watch sees the previous one complete.
//!
//! - `baseline` ([`Writes::JobsOnly`]): what Gantry is compared with, the
//!   API server's and the Job controller's pace with no decisions in between.
//! - `writes` ([`Writes::RunsToo`]): the same chains, and as well the writes
//!   any operator of PipelineRuns makes for them, the way Gantry makes them:
//!   the run created, its Jobs owned by it, its status applied at every
//!   state change, an Event per hand-off and two at the end. No operator
//!   runs: this is Gantry's pace with every decision free, the most its
//!   writes leave room for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{stream, StreamExt};
use gantry::api::PipelineRun;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::metrics::Tally;
use crate::tracker::Tracker;
use crate::workload::{Outcome, Workload};

/// What the client writes besides the Jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Nothing: the `baseline` phase.
    JobsOnly,
    /// The run, its status and Events: the `writes` phase.
    RunsToo,
}

/// Runs the phase in `namespace` (made clean for it).
pub async fn run(
    client: Client,
    namespace: &str,
    workload: &Workload,
    tally: Arc<Tally>,
    writes: Writes,
) -> anyhow::Result<Outcome> {
    let stages = workload.stage_names();
    let (tx, mut completions) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    let tracker = Tracker::start(client.clone(), namespace, start, tx).await;
    let chains = Chains {
        jobs: Api::namespaced(client.clone(), namespace),
        runs: Api::namespaced(client.clone(), namespace),
        events: Api::namespaced(client, namespace),
        namespace: namespace.to_string(),
        workload: workload.clone(),
        tally,
        writes,
        owners: Arc::default(),
        finished: Arc::default(),
        start,
    };

    let firsts = (0..workload.runs).map(|i| chains.clone().start(Workload::run_name("chain", i)));
    stream::iter(firsts).buffer_unordered(workload.create_concurrency).collect::<Vec<()>>().await;

    let mut ends = Vec::new();
    let deadline = tokio::time::Instant::from_std(start + workload.timeout);
    while ends.len() < workload.runs {
        let Ok(Some((run, stage))) = tokio::time::timeout_at(deadline, completions.recv()).await else {
            eprintln!("bench: {} of {} chains finished in time", ends.len(), workload.runs);
            break;
        };
        match stages.iter().position(|s| *s == stage) {
            Some(done) if done + 1 < stages.len() => {
                tokio::spawn(chains.clone().hand_off(run, done + 1));
            }
            Some(_) => ends.push(tokio::spawn(chains.clone().finish(run))),
            None => {}
        }
    }
    futures::future::join_all(ends).await;
    let mut outcome = Outcome { wall_secs: start.elapsed().as_secs_f64(), ..Outcome::default() };
    outcome.finished = std::mem::take(&mut *chains.finished.lock().unwrap());
    outcome.finished.sort_by(f64::total_cmp);
    outcome.succeeded = outcome.finished.len();
    outcome.jobs = tracker.jobs();
    Ok(outcome)
}

/// The client's handles, shared by every chain.
#[derive(Clone)]
struct Chains {
    jobs: Api<Job>,
    runs: Api<PipelineRun>,
    events: Api<Event>,
    namespace: String,
    workload: Workload,
    tally: Arc<Tally>,
    writes: Writes,
    /// Each run's owner reference for its Jobs (`RunsToo`).
    owners: Arc<Mutex<HashMap<String, OwnerReference>>>,
    /// When each chain finished, seconds since `start`.
    finished: Arc<Mutex<Vec<f64>>>,
    start: Instant,
}

impl Chains {
    /// Starts chain `run`: (its run,) its first Job (and its status).
    async fn start(self, run: String) {
        if self.writes == Writes::RunsToo {
            let object: PipelineRun =
                serde_json::from_value(self.workload.pipeline_run(&run)).expect("the bench's PipelineRun is valid");
            self.tally.count("POST", "pipelineruns");
            match self.runs.create(&PostParams::default(), &object).await {
                Ok(created) => {
                    let owner =
                        kube::Resource::controller_owner_ref(&created, &()).expect("a created object has a uid");
                    self.owners.lock().unwrap().insert(run.clone(), owner);
                }
                Err(e) => eprintln!("bench: creating PipelineRun {run}: {e}"),
            }
        }
        self.create_job(&run, 0).await;
        self.apply_status(&run, 0).await;
    }

    /// Stage `next` (0-based) of chain `run` follows the one before it.
    async fn hand_off(self, run: String, next: usize) {
        self.create_job(&run, next).await;
        self.apply_status(&run, next).await;
        self.publish(&run, next).await;
    }

    /// The last stage of chain `run` completed.
    async fn finish(self, run: String) {
        let stages = self.workload.stages;
        self.apply_status(&run, stages).await;
        self.publish(&run, stages).await;
        self.publish(&run, stages + 1).await;
        self.finished.lock().unwrap().push(self.start.elapsed().as_secs_f64());
    }

    async fn create_job(&self, run: &str, stage: usize) {
        let stage = format!("s{}", stage + 1);
        let mut job: Job = serde_json::from_value(self.workload.baseline_job(run, &stage)).expect("a valid Job");
        if let Some(owner) = self.owners.lock().unwrap().get(run) {
            job.metadata.owner_references = Some(vec![owner.clone()]);
        }
        self.tally.count("POST", "jobs");
        if let Err(e) = self.jobs.create(&PostParams::default(), &job).await {
            eprintln!("bench: creating Job {run}-{stage}: {e}");
        }
    }

    /// Applies the status of `run` with `done` stages done (`RunsToo`).
    async fn apply_status(&self, run: &str, done: usize) {
        if self.writes == Writes::JobsOnly {
            return;
        }
        let patch = json!({"apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
                           "status": self.workload.status(run, done, done)});
        let params = PatchParams::apply("gantry-bench").force();
        self.tally.count("APPLY", "pipelineruns/status");
        if let Err(e) = self.runs.patch_status(run, &params, &Patch::Apply(&patch)).await {
            eprintln!("bench: status of {run}: {e}");
        }
    }

    /// Posts the `i`th Event of `run` (`RunsToo`).
    async fn publish(&self, run: &str, i: usize) {
        if self.writes == Writes::JobsOnly {
            return;
        }
        self.tally.count("POST", "events");
        let event = Workload::event(self.namespace.clone(), run, i);
        if let Err(e) = self.events.create(&PostParams::default(), &event).await {
            eprintln!("bench: Event of {run}: {e}");
        }
    }
}

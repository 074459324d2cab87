//! The no-operator baseline: a minimal client that, for N chains of S Jobs,
//! creates each next Job as soon as the watch sees the previous one complete.
//! What Gantry is compared with: the API server's and the Job controller's
//! pace with no decisions in between.

use std::sync::Arc;
use std::time::Instant;

use futures::{stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::metrics::Tally;
use crate::tracker::Tracker;
use crate::workload::{Outcome, Workload};

/// Runs the baseline in `namespace` (made clean for it).
pub async fn run(client: Client, namespace: &str, workload: &Workload, tally: Arc<Tally>) -> anyhow::Result<Outcome> {
    let stages = workload.stage_names();
    let (tx, mut completions) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    let tracker = Tracker::start(client.clone(), namespace, start, tx).await;
    let jobs = Api::<Job>::namespaced(client, namespace);

    let create = |run: String, stage: String| {
        let (jobs, tally) = (jobs.clone(), tally.clone());
        let job: Job = serde_json::from_value(workload.baseline_job(&run, &stage)).expect("a valid Job");
        async move {
            tally.count("POST", "jobs");
            if let Err(e) = jobs.create(&PostParams::default(), &job).await {
                eprintln!("bench: baseline: creating Job {run}-{stage}: {e}");
            }
        }
    };
    let firsts = (0..workload.runs).map(|i| create(Workload::run_name("chain", i), stages[0].clone()));
    stream::iter(firsts).buffer_unordered(workload.create_concurrency).collect::<Vec<()>>().await;

    let mut outcome = Outcome::default();
    let deadline = tokio::time::Instant::from_std(start + workload.timeout);
    while outcome.finished.len() < workload.runs {
        let Ok(Some((run, stage))) = tokio::time::timeout_at(deadline, completions.recv()).await else {
            eprintln!("bench: baseline: {} of {} chains finished in time", outcome.finished.len(), workload.runs);
            break;
        };
        match stages.iter().position(|s| *s == stage) {
            Some(i) if i + 1 < stages.len() => {
                tokio::spawn(create(run, stages[i + 1].clone()));
            }
            Some(_) => outcome.finished.push(start.elapsed().as_secs_f64()),
            None => {}
        }
    }
    outcome.wall_secs = start.elapsed().as_secs_f64();
    outcome.succeeded = outcome.finished.len();
    outcome.jobs = tracker.jobs();
    Ok(outcome)
}

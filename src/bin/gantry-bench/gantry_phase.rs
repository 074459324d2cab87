//! The Gantry phase: the operator (`gantry run`, release build) reconciling N
//! PipelineRuns of S chained stages in a clean namespace.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{stream, StreamExt};
use gantry::api::pipelinerun::RunPhase;
use gantry::api::PipelineRun;
use kube::api::PostParams;
use kube::runtime::watcher;
use kube::{Api, Client};

use crate::cluster::{counter_sum, http_get, peak_rss_kib};
use crate::metrics::Tally;
use crate::tracker::Tracker;
use crate::workload::{Outcome, Workload};

/// The operator's process, killed when dropped.
pub struct Operator {
    child: Child,
    /// Its metrics and health server.
    pub addr: std::net::SocketAddr,
}

impl Operator {
    /// Starts `BINARY run --namespace NS --controllers pipelinerun`, its log in
    /// `log`, and waits (up to 60 s) until it says it is ready.
    pub async fn start(binary: &Path, namespace: &str, log: &Path) -> anyhow::Result<Self> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(binary)
            .args(["run", "--namespace", namespace, "--controllers", "pipelinerun"])
            .args(["--http-addr", &addr.to_string()])
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let operator = Operator { child, addr };
        for _ in 0..300 {
            if http_get(addr, "/readyz").await.is_ok() {
                return Ok(operator);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("the operator did not get ready in 60 s")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the Gantry phase in `namespace` (made clean for it).
pub async fn run(
    client: Client,
    namespace: &str,
    workload: &Workload,
    operator: &Operator,
    tally: Arc<Tally>,
) -> anyhow::Result<Outcome> {
    let (tx, _completions) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    let tracker = Tracker::start(client.clone(), namespace, start, tx).await;
    let runs = Api::<PipelineRun>::namespaced(client, namespace);
    let mut finals = watch_final_phases(runs.clone()).await;

    let creates = (0..workload.runs).map(|i| {
        let (runs, tally) = (runs.clone(), tally.clone());
        let name = Workload::run_name("run", i);
        let run: PipelineRun = serde_json::from_value(workload.pipeline_run(&name)).expect("a valid PipelineRun");
        async move {
            tally.count("POST", "pipelineruns");
            if let Err(e) = runs.create(&PostParams::default(), &run).await {
                eprintln!("bench: creating PipelineRun {name}: {e}");
            }
        }
    });
    stream::iter(creates).buffer_unordered(workload.create_concurrency).collect::<Vec<()>>().await;

    let mut outcome = Outcome::default();
    let deadline = tokio::time::Instant::from_std(start + workload.timeout);
    while outcome.finished.len() < workload.runs {
        let Ok(Some(phase)) = tokio::time::timeout_at(deadline, finals.recv()).await else {
            eprintln!("bench: gantry: {} of {} runs finished in time", outcome.finished.len(), workload.runs);
            break;
        };
        outcome.finished.push(start.elapsed().as_secs_f64());
        if phase == RunPhase::Succeeded {
            outcome.succeeded += 1;
        } else {
            eprintln!("bench: gantry: a run ended {phase:?}");
        }
    }
    outcome.wall_secs = start.elapsed().as_secs_f64();
    outcome.jobs = tracker.jobs();
    outcome.peak_rss_kib = peak_rss_kib(operator.pid());
    let metrics = http_get(operator.addr, "/metrics").await;
    outcome.reconciles = metrics.as_ref().ok().map(|text| counter_sum(text, "gantry_reconciles_total"));
    outcome.operator_requests = metrics.ok().map(|text| crate::metrics::parse_operator_requests(&text));
    Ok(outcome)
}

/// Sends the final phase of each run once, as the watch first sees it.
async fn watch_final_phases(runs: Api<PipelineRun>) -> tokio::sync::mpsc::UnboundedReceiver<RunPhase> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut done: HashSet<String> = HashSet::new();
    crate::watch::each(runs, watcher::Config::default(), "PipelineRuns", move |run: PipelineRun| {
        let phase = run.status.as_ref().and_then(|s| s.phase);
        let name = run.metadata.name.clone().unwrap_or_default();
        if let Some(phase @ (RunPhase::Succeeded | RunPhase::Failed | RunPhase::Cancelled)) = phase {
            if done.insert(name) {
                let _ = tx.send(phase);
            }
        }
    })
    .await;
    rx
}

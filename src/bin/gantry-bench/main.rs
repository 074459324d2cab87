//! `gantry-bench`: how fast Gantry moves chained stages through the API
//! server, against a no-operator baseline, on a cluster without a kubelet
//! (`make bench`; see README "Performance").
//!
//! Each phase gets a clean namespace and a job-completer. The baseline
//! creates each next Job itself when the previous one completes; then Gantry
//! (the `gantry` binary beside this one, or `--gantry`) runs the same chains
//! as PipelineRuns. The apiserver's request counters are read before and
//! after each phase. Writes `bench.json`, `summary.txt` and (with the `bench`
//! feature) `bench.png` into `--out`.

mod baseline;
mod cluster;
mod completer;
mod cpu;
mod gantry_phase;
mod metrics;
#[cfg(feature = "bench")]
mod plot;
mod report;
mod request_cost;
mod tracker;
mod watch;
mod workload;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube::Client;

use baseline::Writes;
use metrics::Tally;
use report::{Phase, Report};
use workload::{Outcome, Workload, OUTPUTS};

#[derive(Parser)]
#[command(name = "gantry-bench", about = "Gantry against a no-operator baseline on a cluster without a kubelet")]
struct Cli {
    /// Chains (PipelineRuns) started at once.
    #[arg(long, short = 'n', default_value_t = 500)]
    runs: usize,
    /// Stages per chain.
    #[arg(long, short = 's', default_value_t = 5)]
    stages: usize,
    /// Where the JSON, the summary and the plot go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// The operator binary (default: `gantry` beside this program).
    #[arg(long)]
    gantry: Option<PathBuf>,
    /// Seconds a phase may take before it is reported unfinished.
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
    /// Which phases to run, in order: `baseline`, `gantry`, `writes` (the
    /// baseline's chains plus Gantry's writes, no operator) and `requests`
    /// (what one status write, Event or run create costs the cluster in CPU).
    #[arg(long, value_delimiter = ',', default_value = "baseline,gantry,writes,requests")]
    phases: Vec<String>,
    /// Requests of each kind the `requests` phase sends.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// The stages' image (never run).
    #[arg(long, default_value = "local/busybox:1")]
    image: String,
    /// Creates in flight at once when starting the chains.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.runs > 0 && cli.stages > 0, "--runs and --stages must be at least 1");
    let workload = Workload {
        runs: cli.runs,
        stages: cli.stages,
        image: cli.image.clone(),
        timeout: Duration::from_secs(cli.timeout_secs),
        create_concurrency: cli.concurrency.max(1),
    };
    let gantry = match &cli.gantry {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("gantry"),
    };
    std::fs::create_dir_all(&cli.out).with_context(|| format!("create {}", cli.out.display()))?;
    let client = Client::try_default().await.context("no cluster: set KUBECONFIG")?;
    let tally = Arc::new(Tally::default());
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();

    let (mut baseline, mut gantry_phase, mut writes, mut request_costs) = (None, None, None, None);
    for (i, phase) in cli.phases.iter().enumerate() {
        let namespace = format!("bench-{phase}-{stamp}");
        println!("bench: {phase}: {} runs x {} stages in namespace {namespace}", workload.runs, workload.stages);
        cluster::create_namespace(&client, &namespace).await?;
        let completer = completer::start(client.clone(), &namespace, OUTPUTS.into(), tally.clone()).await;
        let measured = match phase.as_str() {
            "baseline" | "writes" => {
                let kind = if phase == "writes" { Writes::RunsToo } else { Writes::JobsOnly };
                let run = baseline::run(client.clone(), &namespace, &workload, tally.clone(), kind);
                let measured = Some(measure(&client, &tally, phase, &workload, run).await?);
                match kind {
                    Writes::JobsOnly => baseline = measured,
                    Writes::RunsToo => writes = measured,
                }
                true
            }
            "gantry" => {
                let log = cli.out.join("gantry.log");
                let operator = gantry_phase::Operator::start(&gantry, &namespace, &log).await?;
                let run = gantry_phase::run(client.clone(), &namespace, &workload, &operator, tally.clone());
                let phase = measure(&client, &tally, "gantry", &workload, run).await?;
                drop(operator);
                gantry_phase = Some(phase);
                true
            }
            "requests" => {
                let costs = request_cost::measure(&client, &namespace, &workload, cli.requests.max(1)).await?;
                println!("bench: requests: {}", report::cost_line(&costs));
                request_costs = Some(costs);
                true
            }
            other => {
                eprintln!("bench: unknown phase {other} (baseline, gantry, writes, requests)");
                false
            }
        };
        completer.abort();
        // The next phase starts on a cluster without this one's objects.
        let next = i + 1 < cli.phases.len();
        cluster::delete_namespace(&client, &namespace, measured && next).await?;
    }

    let report = Report::new(baseline, gantry_phase, writes, request_costs);
    let json = cli.out.join("bench.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("write {}", json.display()))?;
    let summary = report.summary();
    std::fs::write(cli.out.join("summary.txt"), &summary)?;
    #[cfg(feature = "bench")]
    {
        let png = cli.out.join("bench.png");
        plot::draw(&report, &png)?;
        println!("bench: wrote {}", png.display());
    }
    println!("bench: wrote {}\n\n{summary}", json.display());
    Ok(())
}

/// Runs one phase between two readings of the apiserver's request counters.
async fn measure(
    client: &Client,
    tally: &Tally,
    name: &str,
    workload: &Workload,
    phase: impl Future<Output = anyhow::Result<Outcome>>,
) -> anyhow::Result<Phase> {
    let before = cluster::request_totals(client).await?;
    tally.take();
    let cpu_before = cpu::cpu_seconds();
    let mut outcome = phase.await?;
    outcome.cpu_seconds = cpu::spent(&cpu_before, &cpu::cpu_seconds());
    let bench = tally.take();
    let after = cluster::request_totals(client).await?;
    let measured = Phase::new(name, workload, outcome, &metrics::diff(&before, &after), &bench);
    println!(
        "bench: {name}: {:.1} s, {:.1} transitions/s, {} of {} runs Succeeded",
        measured.wall_secs, measured.transitions_per_sec, measured.runs_succeeded, measured.runs
    );
    Ok(measured)
}

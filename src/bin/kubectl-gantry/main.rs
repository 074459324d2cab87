//! `kubectl gantry`: the plugin people use to watch, follow, rerun and draw
//! their runs. Installed as `kubectl-gantry` on the PATH, kubectl runs it for
//! `kubectl gantry …` and passes every argument (and the environment) through.
//!
//! Exit codes: 0 done (for `watch` and `logs -f`: the run Succeeded); 1 the
//! run did not succeed; 2 bad input (unknown run or stage, a stage with no
//! attempt yet, a bad flag); 3 no cluster to talk to; 4 the API server
//! refused or failed a request; 70 a bug (one line, no backtrace).

mod attempts;
mod build_view;
mod cancel;
mod cluster;
mod describe;
mod dot;
mod failure;
mod gate_queue;
mod graph;
mod kata_view;
mod list;
mod logs;
mod output;
mod pod_log;
mod progress;
mod repro;
mod rerun;
mod resubmit;
mod runs;
mod stages;
mod time;
mod transitions;
mod tree;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cluster::TargetArgs;
use crate::failure::CliError;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl gantry",
    version,
    about = "Watch, follow, rerun and draw Gantry's PipelineRuns",
    after_help = "RUN may be `@latest`: the newest run in the namespace.\n\
                  Exit codes: 0 done (watch, logs -f: the run Succeeded), 1 the run did not succeed, \
                  2 bad input, 3 no cluster, 4 API error."
)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs with phase, progress, current stage, duration and age; `list --gate GROUP`: a Gate queue
    /// in order; or `list builds`, `list kata`.
    List(list::ListArgs),
    /// One screen about a run: its stages as a tree with phases, attempts, durations, outputs and
    /// tests; or `describe build NAME`, `describe kata NAME`.
    Describe(describe::DescribeArgs),
    /// Follow a run until it finishes (exit 0 when it Succeeded): a live tree on a terminal, else
    /// one line per transition.
    Watch(watch::WatchArgs),
    /// The stage DAG as Graphviz DOT, or as SVG drawn by Graphviz's `dot`.
    Graph(graph::GraphArgs),
    /// A stage's log (or every stage's, prefixed); `--attempt N`, `--failed`, `-f` to follow the run.
    Logs(logs::LogsArgs),
    /// Run a stage of a finished run again, with the stages that need it.
    Rerun(rerun::RerunArgs),
    /// Stop a run: it ends Cancelled.
    Cancel(cancel::CancelArgs),
    /// A new run with the same spec under a fresh name.
    Resubmit(resubmit::ResubmitArgs),
    /// Print a Job manifest that runs one attempt of a stage again exactly as it ran.
    Repro(repro::ReproArgs),
}

fn main() -> ExitCode {
    failure::quiet_panics();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return CliError::internal(format!("cannot start the async runtime: {e}")).report(),
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => e.report(),
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    let target = cluster::connect(&cli.target).await?;
    match cli.command {
        Command::List(args) => list::run(&target, args).await,
        Command::Describe(args) => describe::run(&target, args).await,
        Command::Watch(args) => watch::run(&target, args).await,
        Command::Graph(args) => graph::run(&target, args).await,
        Command::Logs(args) => logs::run(&target, args).await,
        Command::Rerun(args) => rerun::run(&target, args).await,
        Command::Cancel(args) => cancel::run(&target, args).await,
        Command::Resubmit(args) => resubmit::run(&target, args).await,
        Command::Repro(args) => repro::run(&target, args).await,
    }
}

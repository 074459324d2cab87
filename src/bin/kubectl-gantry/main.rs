//! `kubectl gantry`: the plugin people use to watch, follow, rerun and draw
//! their runs. Installed as `kubectl-gantry` on the PATH, kubectl runs it for
//! `kubectl gantry …` and passes every argument (and the environment) through.
//!
//! Exit codes: 0 done (for `watch` and `logs -f`: the run Succeeded); 1 the
//! run did not succeed; 2 bad input (unknown run or stage, a stage with no
//! attempt yet, a bad flag); 3 no cluster to talk to; 4 the API server
//! refused or failed a request; 70 a bug (one line, no backtrace).

mod attempts;
mod cancel;
mod cluster;
mod failure;
mod list;
mod logs;
mod output;
mod pod_log;
mod repro;
mod rerun;
mod resubmit;
mod runs;
mod time;

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
    /// Runs with phase, progress, current stage, duration and age; or `list builds`, `list kata`.
    List(list::ListArgs),
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
        Command::Logs(args) => logs::run(&target, args).await,
        Command::Rerun(args) => rerun::run(&target, args).await,
        Command::Cancel(args) => cancel::run(&target, args).await,
        Command::Resubmit(args) => resubmit::run(&target, args).await,
        Command::Repro(args) => repro::run(&target, args).await,
    }
}

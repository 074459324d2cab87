//! `logs RUN [STAGE]`: a stage's log (or every stage's, each line prefixed
//! `[stage] `), a chosen or the last failed attempt, or `-f`: follow the
//! stages as they start until the run finishes, exiting 0 only if it
//! Succeeded (like `tkn pr logs -f -E`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures::channel::oneshot;
use futures::stream::{BoxStream, SelectAll, StreamExt};
use gantry::api::pipelinerun::{PipelineRun, RunPhase};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;

use crate::attempts::{self, Attempt, Which};
use crate::cluster::Target;
use crate::failure::{CliError, EXIT_RUN_FAILED};
use crate::output::Style;
use crate::pod_log::{LogEvent, Logs};
use crate::runs;

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The run (`@latest`: the newest in the namespace).
    run: String,
    /// The stage; without it, every stage's log, each line prefixed `[stage] `.
    stage: Option<String>,
    /// That attempt of the stage (see `describe`) instead of the current one.
    #[arg(long, value_name = "N", requires = "stage", conflicts_with_all = ["failed", "follow"])]
    attempt: Option<u32>,
    /// The last failed attempt (of the stage, or of every stage that has one).
    #[arg(long, conflicts_with = "follow")]
    failed: bool,
    /// Follow the stages as they start until the run finishes; exit 0 if it Succeeded, 1 otherwise.
    #[arg(short = 'f', long)]
    follow: bool,
}

/// How long, once the run has finished, the logs still being read may take
/// to end (the kubelet ends a followed log when its container exits).
const DRAIN: Duration = Duration::from_secs(30);

pub async fn run(target: &Target, args: LogsArgs) -> Result<ExitCode, CliError> {
    let run = runs::get(target, &args.run).await?;
    let which = match (args.attempt, args.failed) {
        (Some(n), _) => Which::Number(n),
        (None, true) => Which::LastFailed,
        (None, false) => Which::Current,
    };
    let logs = Logs { client: target.client.clone(), namespace: target.namespace.clone() };
    let mut out = Out { prefixed: args.stage.is_none(), style: Style::detect() };
    if args.follow {
        if let Some(stage) = &args.stage {
            check_followable(&run, stage)?;
        }
        return follow(target, &logs, run, args.stage.as_deref(), &mut out).await;
    }
    let picked = match &args.stage {
        Some(stage) => vec![attempts::pick(&run, runs::stage(&run, stage)?, which)?],
        None => {
            let all = attempts::of_every_stage(&run, which);
            if all.is_empty() {
                let what = if which == Which::LastFailed { "has a failed attempt" } else { "has started yet" };
                return Err(CliError::bad_input(format!("no stage of pipelinerun \"{}\" {what}", run.name_any())));
            }
            all
        }
    };
    let single = args.stage.is_some();
    let never = Arc::new(AtomicBool::new(false));
    for attempt in picked {
        let mut events = logs.stream(attempt, false, never.clone());
        while let Some(event) = events.next().await {
            match event? {
                // Asked for one stage, and it has no log: that is the answer.
                LogEvent::Notice(text) if single => return Err(CliError::bad_input(text)),
                event => {
                    if out.show(&event).is_err() {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The stage named for `-f` exists and runs a Job (it may not have started yet).
fn check_followable(run: &PipelineRun, stage: &str) -> Result<(), CliError> {
    let Some(spec) = run.spec.stages.iter().find(|s| s.name == stage) else {
        // Not in the spec: `runs::stage` says so, naming the stages there are.
        return runs::stage(run, stage).map(|_| ());
    };
    match attempts::waits_for(spec) {
        Some(what) => Err(CliError::bad_input(format!(
            "stage \"{stage}\" of pipelinerun \"{}\" waits for {what}: it runs no Job",
            run.name_any()
        ))),
        None => Ok(()),
    }
}

/// Streams every attempt of the run (or of `only`) from the current one on,
/// starting each as the status names its Job, until the run finishes.
async fn follow(
    target: &Target,
    logs: &Logs,
    run: PipelineRun,
    only: Option<&str>,
    out: &mut Out,
) -> Result<ExitCode, CliError> {
    let name = run.name_any();
    let mut follower = Follower::new(logs.clone(), only, &run);
    follower.update(&run, out);
    let mut phase = finished_phase(&run);

    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut changes = watcher(runs::api(target), config).default_backoff().boxed();
    while phase.is_none() {
        tokio::select! {
            change = changes.next() => match change {
                Some(Ok(watcher::Event::Apply(r) | watcher::Event::InitApply(r))) => {
                    follower.update(&r, out);
                    phase = finished_phase(&r);
                }
                Some(Ok(watcher::Event::Delete(_))) => {
                    eprintln!("pipelinerun/{name} was deleted");
                    return Ok(ExitCode::from(EXIT_RUN_FAILED));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => eprintln!("watching pipelinerun/{name}: {e}; watching again"),
                None => return Err(CliError::internal(format!("the watch of pipelinerun/{name} ended"))),
            },
            Some(event) = follower.streams.next(), if !follower.streams.is_empty() => {
                if out.show(&event?).is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
    // Finished: what is still being read ends as its container exits.
    follower.run_over.store(true, Ordering::SeqCst);
    let drained = tokio::time::timeout(DRAIN, async {
        while let Some(event) = follower.streams.next().await {
            if out.show(&event?).is_err() {
                break;
            }
        }
        Ok::<(), CliError>(())
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => eprintln!("some logs were still open {}s after the run finished; stopped reading", DRAIN.as_secs()),
    }
    let phase = phase.unwrap_or(RunPhase::Failed);
    eprintln!("pipelinerun/{name} {}", crate::output::word(Some(&phase)));
    Ok(if phase == RunPhase::Succeeded { ExitCode::SUCCESS } else { ExitCode::from(EXIT_RUN_FAILED) })
}

/// The attempts being followed: one log stream each, started when the
/// status names the attempt's Job and stopped when the attempt is cancelled
/// (its Job is being deleted; a pod that ignores SIGTERM would otherwise
/// hold the stream for its whole grace period).
struct Follower {
    logs: Logs,
    only: Option<String>,
    run_over: Arc<AtomicBool>,
    seen: BTreeSet<Attempt>,
    stoppers: BTreeMap<(String, u32), oneshot::Sender<()>>,
    streams: SelectAll<BoxStream<'static, Result<LogEvent, CliError>>>,
}

impl Follower {
    /// Earlier attempts of a stage already past them are not replayed.
    fn new(logs: Logs, only: Option<&str>, run: &PipelineRun) -> Self {
        let current = attempts::of_every_stage(run, Which::Current);
        let seen = attempts::started(run, only)
            .into_iter()
            .filter(|a| current.iter().any(|c| c.stage == a.stage && c.number > a.number))
            .collect();
        Self {
            logs,
            only: only.map(str::to_string),
            run_over: Arc::new(AtomicBool::new(false)),
            seen,
            stoppers: BTreeMap::new(),
            streams: SelectAll::new(),
        }
    }

    /// Starts the attempts `run` names for the first time; stops those it says were cancelled.
    fn update(&mut self, run: &PipelineRun, out: &mut Out) {
        for attempt in attempts::started(run, self.only.as_deref()) {
            if self.seen.insert(attempt.clone()) {
                let (stop, stopped) = oneshot::channel();
                self.stoppers.insert((attempt.stage.clone(), attempt.number), stop);
                let stream = self.logs.stream(attempt, true, self.run_over.clone());
                self.streams.push(stream.take_until(stopped).boxed());
            }
        }
        for (stage, number) in attempts::cancelled(run) {
            if let Some(stop) = self.stoppers.remove(&(stage.clone(), number)) {
                let _ = stop.send(());
                let text = format!("stage {stage} attempt {number}: cancelled; its Job is deleted, its log ends here");
                let _ = out.show(&LogEvent::Notice(text));
            }
        }
    }
}

fn finished_phase(run: &PipelineRun) -> Option<RunPhase> {
    run.status.as_ref().and_then(|s| s.phase).filter(|p| p.is_finished())
}

/// Writes log lines to stdout and notices to stderr.
struct Out {
    prefixed: bool,
    style: Style,
}

impl Out {
    /// Err when stdout is closed (`| head`): nothing more to do.
    fn show(&mut self, event: &LogEvent) -> std::io::Result<()> {
        match event {
            LogEvent::Line { stage, text } => {
                let line = if self.prefixed { prefixed(stage, text, &self.style) } else { text.clone() };
                writeln!(std::io::stdout().lock(), "{line}")
            }
            LogEvent::Notice(text) => {
                eprintln!("{text}");
                Ok(())
            }
        }
    }
}

/// `[stage] text`, the prefix in bold on a terminal.
pub fn prefixed(stage: &str, text: &str, style: &Style) -> String {
    format!("{} {text}", style.bold(&format!("[{stage}]")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_their_stage() {
        assert_eq!(prefixed("test", "ok 1 - boot", &Style::plain()), "[test] ok 1 - boot");
        assert_eq!(prefixed("test", "", &Style::plain()), "[test] ");
        assert_eq!(prefixed("a", "x", &Style { color: true }), "\x1b[1m[a]\x1b[0m x");
    }
}

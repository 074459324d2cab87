//! `watch RUN`: follows one run until it finishes, from a watch on that
//! object alone (`metadata.name=RUN`), never by polling. On a terminal the
//! `describe` screen is redrawn in place with a progress line; otherwise one
//! line per transition. Exit 0 when the run Succeeded, 1 otherwise.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use clap::Args;
use futures::StreamExt;
use gantry::api::pipelinerun::{PipelineRun, RunPhase};
use kube::api::ListParams;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::ResourceExt;

use crate::cluster::Target;
use crate::failure::{CliError, EXIT_RUN_FAILED};
use crate::output::{self, Style};
use crate::{describe, progress, runs, transitions};

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The run (or `@latest`).
    run: String,
}

/// How long the watch may keep failing (the API server gone, say) before
/// the command gives up; the watcher retries with backoff meanwhile.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

pub async fn run(target: &Target, args: WatchArgs) -> Result<ExitCode, CliError> {
    let first = runs::get(target, &args.run).await?;
    let live = std::io::stdout().is_terminal();
    let previous = if live { previous_duration(target, &first).await } else { None };
    let mut screen = Screen { live, style: Style::detect(), previous, last: None };
    screen.show(first.clone());
    if let Some(code) = outcome(&first) {
        return Ok(code);
    }

    let name = first.name_any();
    let gone = || CliError::run_failed(format!("pipelinerun \"{name}\" was deleted before it finished"));
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher::watcher(runs::api(target), config).default_backoff());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut listed = false;
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            event = events.next() => match event {
                None => return Err(CliError::internal("the watch of the run ended by itself")),
                Some(Ok(event)) => {
                    failing_since = None;
                    match event {
                        Event::Init => listed = false,
                        Event::InitDone if !listed => return Err(gone()),
                        Event::InitDone => {}
                        Event::Delete(_) => return Err(gone()),
                        Event::Apply(run) | Event::InitApply(run) => {
                            // The same name made again is another run.
                            if run.uid() != first.uid() {
                                return Err(gone());
                            }
                            listed = true;
                            let code = outcome(&run);
                            screen.show(run);
                            if let Some(code) = code {
                                return Ok(code);
                            }
                        }
                    }
                }
                Some(Err(error)) => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if lasting(&error) || since.elapsed() > GIVE_UP_AFTER {
                        return Err(watch_error(&name, target, error));
                    }
                }
            },
            _ = tick.tick(), if live => screen.redraw(),
        }
    }
}

/// What the screen last showed, and how.
struct Screen {
    live: bool,
    style: Style,
    previous: Option<i64>,
    last: Option<PipelineRun>,
}

impl Screen {
    fn show(&mut self, run: PipelineRun) {
        if self.live {
            self.last = Some(run);
            self.redraw();
        } else {
            let clock = |t: DateTime<Utc>| t.with_timezone(&Local).format("%H:%M:%S").to_string();
            for line in transitions::lines(self.last.as_ref(), &run, Utc::now(), clock) {
                output::emit(&format!("{line}\n"));
            }
            self.last = Some(run);
        }
    }

    /// Clears the terminal and draws the run again (the elapsed time moves on).
    fn redraw(&self) {
        let Some(run) = &self.last else { return };
        let now = Utc::now();
        let screen = describe::run_screen(run, &self.style, now);
        let line = progress::line(run, self.previous, &self.style, now);
        output::emit(&format!("\x1b[H\x1b[2J{screen}\n{line}\n"));
    }
}

/// The exit code once the run has finished: 0 when it Succeeded.
fn outcome(run: &PipelineRun) -> Option<ExitCode> {
    match run.status.as_ref().and_then(|s| s.phase)? {
        RunPhase::Succeeded => Some(ExitCode::SUCCESS),
        phase if phase.is_finished() => Some(ExitCode::from(EXIT_RUN_FAILED)),
        _ => None,
    }
}

/// How long the latest earlier successful run of the same concurrency group
/// took. Only an estimate: when the runs cannot be listed there is none.
async fn previous_duration(target: &Target, run: &PipelineRun) -> Option<i64> {
    run.spec.concurrency.as_ref()?;
    let others = runs::api(target).list(&ListParams::default()).await.ok()?;
    progress::previous_duration(run, &others.items)
}

/// Errors retrying will not mend: refused or unknown requests.
fn lasting(error: &watcher::Error) -> bool {
    let status = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s.code,
        _ => return false,
    };
    matches!(status, 401 | 403 | 404)
}

fn watch_error(name: &str, target: &Target, error: watcher::Error) -> CliError {
    let what = format!("watching pipelinerun \"{name}\" in namespace \"{}\"", target.namespace);
    match error {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            CliError::api(&what, e)
        }
        other => CliError::api(&what, kube::Error::Api(Box::new(status_of(other)))),
    }
}

/// A watch error that carries no request error, as an API status for [`CliError::api`].
fn status_of(error: watcher::Error) -> kube::core::Status {
    match error {
        watcher::Error::WatchError(status) => *status,
        other => kube::core::Status { message: other.to_string(), code: 500, ..Default::default() },
    }
}

//! `describe RUN`, `describe build NAME`, `describe kata NAME`: one screen
//! about one object (`-o json|yaml`: the object itself).

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use gantry::api::imagebuild::ImageBuild;
use gantry::api::katainstall::KataInstall;
use gantry::api::pipelinerun::PipelineRun;
use gantry::engine::conditions::from_k8s_time;
use kube::{Api, ResourceExt};

use crate::cluster::Target;
use crate::failure::{CliError, EXIT_BAD_INPUT};
use crate::output::{self, word, Format, Style};
use crate::{build_view, kata_view, runs, time, tree};

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// The run (or `@latest`); or `build` or `kata` and the object's name.
    #[arg(value_name = "RUN | build NAME | kata NAME")]
    what: String,
    /// The ImageBuild's or KataInstall's name, after `build` or `kata`.
    #[arg(value_name = "NAME")]
    name: Option<String>,
    /// Print the object as JSON or YAML instead.
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
}

/// What `describe`'s arguments ask for.
#[derive(Debug, PartialEq, Eq)]
enum Subject<'a> {
    Run(&'a str),
    Build(&'a str),
    Kata(&'a str),
}

/// `build NAME` and `kata NAME` name another kind; a single word is a run
/// (so a run called `build` is still `describe build`).
fn subject(args: &DescribeArgs) -> Result<Subject<'_>, CliError> {
    match (args.what.as_str(), args.name.as_deref()) {
        (run, None) => Ok(Subject::Run(run)),
        ("build" | "builds" | "imagebuild", Some(name)) => Ok(Subject::Build(name)),
        ("kata" | "katainstall", Some(name)) => Ok(Subject::Kata(name)),
        (other, Some(name)) => {
            Err(CliError::bad_input(format!("describe takes RUN, build NAME or kata NAME, not \"{other} {name}\"")))
        }
    }
}

pub async fn run(target: &Target, args: DescribeArgs) -> Result<ExitCode, CliError> {
    let style = Style::detect();
    let now = Utc::now();
    let text = match subject(&args)? {
        Subject::Run(name) => {
            let run = runs::get(target, name).await.map_err(|e| hint_other_kinds(e, name))?;
            if let Some(format) = args.output {
                return printed(format, &run);
            }
            run_screen(&run, &style, now)
        }
        Subject::Build(name) => {
            let api: Api<ImageBuild> = Api::namespaced(target.client.clone(), &target.namespace);
            let what = format!("imagebuild \"{name}\" in namespace \"{}\"", target.namespace);
            let build = api.get(name).await.map_err(|e| CliError::api(&what, e))?;
            if let Some(format) = args.output {
                return printed(format, &build);
            }
            build_view::render(&build, &style, now)
        }
        Subject::Kata(name) => {
            let api: Api<KataInstall> = Api::all(target.client.clone());
            let install = api.get(name).await.map_err(|e| CliError::api(&format!("katainstall \"{name}\""), e))?;
            if let Some(format) = args.output {
                return printed(format, &install);
            }
            kata_view::render(&install, &style, now)
        }
    };
    output::emit(&text);
    Ok(ExitCode::SUCCESS)
}

fn printed<T: serde::Serialize>(format: Format, object: &T) -> Result<ExitCode, CliError> {
    output::print_as(format, object)?;
    Ok(ExitCode::SUCCESS)
}

/// `describe build` with no name looks for a run called `build`; when there
/// is none, say how to describe an ImageBuild.
fn hint_other_kinds(error: CliError, name: &str) -> CliError {
    match name {
        "build" | "kata" if error.code() == EXIT_BAD_INPUT => {
            CliError::bad_input(format!("{error} (to describe a {name}: describe {name} NAME)"))
        }
        _ => error,
    }
}

/// The whole `describe RUN` screen: the header, then the stage tree.
pub fn run_screen(run: &PipelineRun, style: &Style, now: DateTime<Utc>) -> String {
    format!("{}\n{}", run_header(run, style, now), tree::render(run, style, now))
}

/// Name, namespace, phase, progress, duration, age, source, concurrency
/// group and message, one per line (lines with nothing to say left out).
pub fn run_header(run: &PipelineRun, style: &Style, now: DateTime<Utc>) -> String {
    let status = run.status.as_ref();
    let phase = word(status.and_then(|s| s.phase.as_ref()));
    let mut pairs = vec![
        ("Name", style.bold(&run.name_any())),
        ("Namespace", run.namespace().unwrap_or_default()),
        ("Phase", style.phase(&phase)),
        ("Progress", status.and_then(|s| s.progress.clone()).unwrap_or_else(|| "-".into())),
        (
            "Duration",
            status.and_then(|s| time::span(s.start_time, s.completion_time, now)).unwrap_or_else(|| "-".into()),
        ),
    ];
    if let Some(created) = run.metadata.creation_timestamp.as_ref().map(from_k8s_time) {
        pairs.push(("Created", format!("{} ago", time::short((now - created).num_seconds()))));
    }
    if let Some(source) = run.spec.source.as_ref() {
        let text = match (source.repo.as_deref(), source.revision.as_deref()) {
            (Some(repo), Some(revision)) => format!("{repo} @ {revision}"),
            (Some(repo), None) => repo.to_string(),
            (None, Some(revision)) => format!("revision {revision}"),
            (None, None) => String::new(),
        };
        if !text.is_empty() {
            pairs.push(("Source", text));
        }
    }
    if let Some(concurrency) = run.spec.concurrency.as_ref() {
        pairs.push(("Concurrency", format!("{} ({})", concurrency.group, word(Some(&concurrency.policy)))));
    }
    if let Some(message) = status.and_then(|s| s.message.as_deref()).filter(|m| !m.is_empty()) {
        pairs.push(("Message", crate::failure::one_line(message)));
    }
    fields(&pairs)
}

/// `Label:   value` lines, the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    // The longest label, its colon and two spaces.
    let width = pairs.iter().map(|(label, _)| label.chars().count()).max().unwrap_or(0) + 3;
    pairs
        .iter()
        .map(|(label, value)| format!("{}\n", format!("{:<width$}{value}", format!("{label}:")).trim_end()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::tests::{at, run_from};
    use serde_json::json;

    fn args(what: &str, name: Option<&str>) -> DescribeArgs {
        DescribeArgs { what: what.into(), name: name.map(Into::into), output: None }
    }

    #[test]
    fn build_and_kata_with_a_name_describe_those_kinds_and_one_word_is_a_run() {
        assert_eq!(subject(&args("nightly", None)).unwrap(), Subject::Run("nightly"));
        assert_eq!(subject(&args("build", None)).unwrap(), Subject::Run("build"));
        assert_eq!(subject(&args("build", Some("sdk"))).unwrap(), Subject::Build("sdk"));
        assert_eq!(subject(&args("kata", Some("kata"))).unwrap(), Subject::Kata("kata"));
        let e = subject(&args("nightly", Some("extra"))).unwrap_err();
        assert_eq!(e.to_string(), "describe takes RUN, build NAME or kata NAME, not \"nightly extra\"");
    }

    #[test]
    fn a_missing_run_called_build_says_how_to_describe_a_build() {
        let e = hint_other_kinds(CliError::bad_input("pipelinerun \"build\" in namespace \"ci\" not found"), "build");
        assert_eq!(
            e.to_string(),
            "pipelinerun \"build\" in namespace \"ci\" not found (to describe a build: describe build NAME)"
        );
        let e = hint_other_kinds(CliError::bad_input("pipelinerun \"x\" not found"), "x");
        assert_eq!(e.to_string(), "pipelinerun \"x\" not found");
    }

    #[test]
    fn the_header_says_phase_progress_duration_source_and_message() {
        let run = run_from(
            json!({"source": {"repo": "https://github.com/flatcar/scripts", "revision": "main"},
                   "concurrency": {"group": "nightly", "policy": "Queue"},
                   "stages": [{"name": "a"}]}),
            json!({"phase": "Failed", "progress": "1/1", "message": "stage a failed:\n exited with code 1",
                   "startTime": "2026-12-02T07:00:05Z", "completionTime": "2026-12-02T07:01:10Z"}),
        );
        let text = run_header(&run, &Style::plain(), at(3600));
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "Name:         nightly",
                "Namespace:    ci",
                "Phase:        Failed",
                "Progress:     1/1",
                "Duration:     1m5s",
                "Created:      1h ago",
                "Source:       https://github.com/flatcar/scripts @ main",
                "Concurrency:  nightly (Queue)",
                "Message:      stage a failed: exited with code 1",
            ]
        );
    }

    #[test]
    fn a_new_run_has_dashes_and_no_optional_lines() {
        let run = run_from(json!({"stages": [{"name": "a"}]}), json!(null));
        let text = run_header(&run, &Style::plain(), at(5));
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "Name:       nightly",
                "Namespace:  ci",
                "Phase:      -",
                "Progress:   -",
                "Duration:   -",
                "Created:    5s ago"
            ]
        );
    }
}

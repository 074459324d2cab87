//! `list`: runs (or builds, or Kata installs) one line each, newest last.

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use gantry::api::imagebuild::ImageBuild;
use gantry::api::katainstall::KataInstall;
use gantry::api::pipelinerun::PipelineRun;
use gantry::engine::conditions::from_k8s_time;
use kube::api::ListParams;
use kube::{Api, Resource, ResourceExt};
use std::process::ExitCode;

use crate::cluster::Target;
use crate::failure::CliError;
use crate::gate_queue;
use crate::output::{self, word, Format, Style};
use crate::time;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// What to list.
    #[arg(value_enum, default_value = "runs")]
    what: What,
    /// Only these phases (comma-separated, e.g. `Running,Failed`).
    #[arg(long, value_delimiter = ',')]
    phase: Vec<String>,
    /// Only objects whose labels match this selector, e.g. `project=fuel`.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Only objects created within this long, e.g. `2h`, `30m`, `7d`.
    #[arg(long, value_name = "DURATION")]
    newer_than: Option<String>,
    /// Only objects created longer ago than this.
    #[arg(long, value_name = "DURATION")]
    older_than: Option<String>,
    /// One `Gate` queue: the runs of this concurrency group in queue order,
    /// with position, verdict, try and what each is tested on.
    #[arg(long, value_name = "GROUP")]
    gate: Option<String>,
    /// Print the objects as JSON or YAML instead of a table.
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    Runs,
    Builds,
    Kata,
}

/// Which objects to keep, from the filter flags.
struct Filter {
    phases: Vec<String>,
    created_after: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
}

impl Filter {
    fn from(args: &ListArgs, now: DateTime<Utc>) -> Result<Self, CliError> {
        let ago = |flag: &str, text: &Option<String>| -> Result<Option<DateTime<Utc>>, CliError> {
            text.as_deref()
                .map(|t| {
                    let d = gantry::engine::duration::parse_duration(t)
                        .map_err(|e| CliError::bad_input(format!("--{flag}: {e}")))?;
                    let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
                    Ok(now.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC))
                })
                .transpose()
        };
        Ok(Self {
            phases: args.phase.iter().map(|p| p.to_ascii_lowercase()).collect(),
            created_after: ago("newer-than", &args.newer_than)?,
            created_before: ago("older-than", &args.older_than)?,
        })
    }

    fn keeps(&self, phase: &str, created: Option<DateTime<Utc>>) -> bool {
        let phase_ok = self.phases.is_empty() || self.phases.contains(&phase.to_ascii_lowercase());
        let after_ok = self.created_after.is_none_or(|t| created.is_some_and(|c| c >= t));
        let before_ok = self.created_before.is_none_or(|t| created.is_some_and(|c| c < t));
        phase_ok && after_ok && before_ok
    }
}

pub async fn run(target: &Target, args: ListArgs) -> Result<ExitCode, CliError> {
    let now = Utc::now();
    let filter = Filter::from(&args, now)?;
    let params = match &args.selector {
        Some(selector) => ListParams::default().labels(selector),
        None => ListParams::default(),
    };
    let style = Style::detect();
    if let Some(group) = &args.gate {
        return gate_queue(target, &args, group, &params, &filter, &style, now).await;
    }
    let text = match args.what {
        What::Runs => {
            let runs = fetch::<PipelineRun>(target, &params, "pipelineruns").await?;
            let runs = kept(runs, &filter, |r| word(r.status.as_ref().and_then(|s| s.phase.as_ref())));
            if let Some(format) = args.output {
                return printed(format, &runs);
            }
            runs_table(&runs, target.all_namespaces, &style, now)
        }
        What::Builds => {
            let builds = fetch::<ImageBuild>(target, &params, "imagebuilds").await?;
            let builds = kept(builds, &filter, |b| word(b.status.as_ref().and_then(|s| s.phase.as_ref())));
            if let Some(format) = args.output {
                return printed(format, &builds);
            }
            builds_table(&builds, target.all_namespaces, &style, now)
        }
        What::Kata => {
            // Cluster-scoped: `-n` and `-A` do not apply.
            let api = Api::<KataInstall>::all(target.client.clone());
            let installs = api.list(&params).await.map_err(|e| CliError::api("katainstalls", e))?.items;
            let installs = kept(installs, &filter, |k| word(k.status.as_ref().and_then(|s| s.phase.as_ref())));
            if let Some(format) = args.output {
                return printed(format, &installs);
            }
            kata_table(&installs, &style, now)
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `list --gate GROUP`: the queue, numbered before the filters drop any.
async fn gate_queue(
    target: &Target,
    args: &ListArgs,
    group: &str,
    params: &ListParams,
    filter: &Filter,
    style: &Style,
    now: DateTime<Utc>,
) -> Result<ExitCode, CliError> {
    if args.what != What::Runs {
        return Err(CliError::bad_input("--gate lists runs: drop `builds` or `kata`"));
    }
    if target.all_namespaces {
        return Err(CliError::bad_input("--gate: a queue is one namespace's; use -n instead of -A"));
    }
    let runs = fetch::<PipelineRun>(target, params, "pipelineruns").await?;
    let mut queue = gate_queue::queue_of(runs, group);
    queue.retain(|q| filter.keeps(&word(q.run.status.as_ref().and_then(|s| s.phase.as_ref())), created(&q.run)));
    if let Some(format) = args.output {
        let runs: Vec<&PipelineRun> = queue.iter().map(|q| &q.run).collect();
        return printed(format, &runs);
    }
    if queue.is_empty() {
        eprintln!("no Gate runs of group {group:?} in namespace {:?}", target.namespace);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", gate_queue::queue_table(&queue, style, now));
    Ok(ExitCode::SUCCESS)
}

fn printed<T: serde::Serialize>(format: Format, items: &[T]) -> Result<ExitCode, CliError> {
    output::print_as(format, &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}))?;
    Ok(ExitCode::SUCCESS)
}

/// The namespaced objects of kind `K` in the target's namespace (or all).
async fn fetch<K>(target: &Target, params: &ListParams, plural: &str) -> Result<Vec<K>, CliError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = if target.all_namespaces {
        Api::all(target.client.clone())
    } else {
        Api::namespaced(target.client.clone(), &target.namespace)
    };
    let where_ = if target.all_namespaces { plural.to_string() } else { crate::runs::in_namespace(plural, target) };
    let list = api.list(params).await.map_err(|e| CliError::api(&where_, e))?;
    Ok(list.items)
}

/// The objects the filter keeps, oldest first.
fn kept<K: Resource>(mut items: Vec<K>, filter: &Filter, phase: impl Fn(&K) -> String) -> Vec<K> {
    items.retain(|item| filter.keeps(&phase(item), created(item)));
    items.sort_by_key(|item| (created(item), item.meta().name.clone()));
    items
}

fn created<K: Resource>(item: &K) -> Option<DateTime<Utc>> {
    item.meta().creation_timestamp.as_ref().map(from_k8s_time)
}

fn age<K: Resource>(item: &K, now: DateTime<Utc>) -> String {
    created(item).map(|c| time::short((now - c).num_seconds())).unwrap_or_else(|| "-".into())
}

/// Leads each row with the namespace when listing every namespace.
fn with_namespace<K: Resource>(all: bool, item: &K, mut row: Vec<String>) -> Vec<String> {
    if all {
        row.insert(0, item.meta().namespace.clone().unwrap_or_default());
    }
    row
}

fn headers<'a>(all: bool, rest: &[&'a str]) -> Vec<&'a str> {
    let mut headers = if all { vec!["NAMESPACE"] } else { vec![] };
    headers.extend_from_slice(rest);
    headers
}

fn runs_table(runs: &[PipelineRun], all: bool, style: &Style, now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            let status = run.status.as_ref();
            let phase = word(status.and_then(|s| s.phase.as_ref()));
            let progress = status.and_then(|s| s.progress.clone()).unwrap_or_else(|| "-".into());
            let stage =
                status.and_then(|s| s.current_stage.clone()).filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into());
            let duration =
                status.and_then(|s| time::span(s.start_time, s.completion_time, now)).unwrap_or_else(|| "-".into());
            with_namespace(
                all,
                run,
                vec![run.name_any(), style.phase(&phase), progress, stage, duration, age(run, now)],
            )
        })
        .collect();
    output::table(&headers(all, &["NAME", "PHASE", "PROGRESS", "STAGE", "DURATION", "AGE"]), &rows)
}

fn builds_table(builds: &[ImageBuild], all: bool, style: &Style, now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = builds
        .iter()
        .map(|build| {
            let status = build.status.as_ref();
            let phase = word(status.and_then(|s| s.phase.as_ref()));
            let image = status.and_then(|s| s.latest_image.clone()).unwrap_or_else(|| "-".into());
            let lifecycle = word(status.and_then(|s| s.lifecycle.as_ref()));
            let builds = status.map(|s| s.builds.len()).unwrap_or(0).to_string();
            with_namespace(
                all,
                build,
                vec![build.name_any(), style.phase(&phase), image, lifecycle, builds, age(build, now)],
            )
        })
        .collect();
    output::table(&headers(all, &["NAME", "PHASE", "IMAGE", "LIFECYCLE", "BUILDS", "AGE"]), &rows)
}

fn kata_table(installs: &[KataInstall], style: &Style, now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = installs
        .iter()
        .map(|install| {
            let status = install.status.as_ref();
            let phase = word(status.and_then(|s| s.phase.as_ref()));
            let nodes =
                status.map(|s| format!("{}/{}", s.nodes_installed, s.nodes_desired)).unwrap_or_else(|| "-".into());
            let smoke = word(status.and_then(|s| s.smoke.as_ref()).map(|s| &s.result));
            vec![install.name_any(), style.phase(&phase), nodes, style.phase(&smoke), age(install, now)]
        })
        .collect();
    output::table(&["NAME", "PHASE", "NODES", "SMOKE", "AGE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::tests::{at, run_from};
    use serde_json::json;

    fn args(extra: &[&str]) -> ListArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            list: ListArgs,
        }
        let argv = std::iter::once("list").chain(extra.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().list
    }

    fn run(name: &str, created: i64, status: serde_json::Value) -> PipelineRun {
        let mut run = run_from(json!({"stages": [{"name": "a"}, {"name": "b"}]}), status);
        run.metadata.name = Some(name.into());
        run.metadata.creation_timestamp = Some(gantry::engine::conditions::to_k8s_time(at(created)));
        run
    }

    #[test]
    fn phases_match_whatever_their_case_and_ages_bound_the_creation_time() {
        let now = at(3600);
        let filter = Filter::from(&args(&["--phase", "failed,Running", "--newer-than", "30m"]), now).unwrap();
        assert!(filter.keeps("Failed", Some(at(3000))));
        assert!(filter.keeps("Running", Some(at(1800))), "exactly 30m old is still newer than 30m");
        assert!(!filter.keeps("Succeeded", Some(at(3000))), "another phase");
        assert!(!filter.keeps("Failed", Some(at(1000))), "too old");
        assert!(!filter.keeps("Failed", None), "an age filter needs a creation time");
        let older = Filter::from(&args(&["--older-than", "1h"]), now).unwrap();
        assert!(older.keeps("Succeeded", Some(at(-1))) && !older.keeps("Succeeded", Some(at(0))));
        assert!(Filter::from(&args(&[]), now).unwrap().keeps("-", None), "no flags keep everything");
    }

    #[test]
    fn gate_takes_a_group() {
        assert_eq!(args(&["--gate", "fuel-7.0"]).gate.as_deref(), Some("fuel-7.0"));
        assert_eq!(args(&[]).gate, None);
    }

    #[test]
    fn a_bad_age_is_bad_input_naming_the_flag() {
        let e = Filter::from(&args(&["--newer-than", "soon"]), at(0)).err().unwrap();
        assert_eq!(e.code(), crate::failure::EXIT_BAD_INPUT);
        assert!(e.to_string().starts_with("--newer-than: "), "{e}");
    }

    #[test]
    fn kept_runs_are_filtered_and_oldest_first() {
        let filter = Filter::from(&args(&["--phase", "Succeeded"]), at(100)).unwrap();
        let runs = vec![
            run("new", 50, json!({"phase": "Succeeded"})),
            run("failed", 10, json!({"phase": "Failed"})),
            run("old", 5, json!({"phase": "Succeeded"})),
        ];
        let kept = kept(runs, &filter, |r| word(r.status.as_ref().and_then(|s| s.phase.as_ref())));
        let names: Vec<String> = kept.iter().map(|r| r.name_any()).collect();
        assert_eq!(names, ["old", "new"]);
    }

    #[test]
    fn the_runs_table_shows_phase_progress_stage_duration_and_age() {
        let runs = vec![
            run(
                "done",
                0,
                json!({"phase": "Succeeded", "progress": "2/2",
                "startTime": "2026-12-02T07:00:01Z", "completionTime": "2026-12-02T07:01:06Z"}),
            ),
            run(
                "going",
                60,
                json!({"phase": "Running", "progress": "1/2", "currentStage": "b",
                "startTime": "2026-12-02T07:01:00Z"}),
            ),
            run("new", 110, json!(null)),
        ];
        let text = runs_table(&runs, false, &Style::plain(), at(120));
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "NAME    PHASE       PROGRESS   STAGE   DURATION   AGE",
                "done    Succeeded   2/2        -       1m5s       2m",
                "going   Running     1/2        b       1m         1m",
                "new     -           -          -       -          10s",
            ]
        );
        let all = runs_table(&runs[..1], true, &Style::plain(), at(120));
        assert_eq!(all.lines().nth(1).unwrap().split_whitespace().next(), Some("ci"), "-A leads with the namespace");
    }

    #[test]
    fn the_kata_table_counts_nodes_and_shows_the_smoke_result() {
        let install: KataInstall = serde_json::from_value(json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "KataInstall",
            "metadata": {"name": "kata", "creationTimestamp": "2026-12-02T07:00:00Z"},
            "spec": {"installerImage": "i", "shims": ["qemu"]},
            "status": {"phase": "Installed", "nodesDesired": 2, "nodesInstalled": 2,
                       "smoke": {"key": "k", "result": "Passed"}},
        }))
        .unwrap();
        let text = kata_table(&[install], &Style::plain(), at(30));
        assert_eq!(
            text.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>(),
            ["kata", "Installed", "2/2", "Passed", "30s"]
        );
    }
}

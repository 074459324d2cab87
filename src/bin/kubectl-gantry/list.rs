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

//! `repro RUN STAGE [--attempt N]`: a Job manifest that runs one attempt of
//! a stage again exactly as it ran (image, command, args, env with the
//! outputs it received, workspace, service account, resources), for
//! `kubectl create -f -`. Made from the attempt's Job when it still exists,
//! else rebuilt with the operator's own builders from the run's spec and
//! the outputs in its status.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Args;
use gantry::api::pipelinerun::PipelineRun;
use gantry::engine::naming::LABEL_MANAGED_BY;
use gantry::engine::pipelinerun::dag::Graph;
use gantry::engine::pipelinerun::launch::launch;
use gantry::engine::settings::Settings;
use gantry::resources::controller_ref;
use gantry::resources::job::stage_job;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Api, ResourceExt};

use crate::attempts::{self, Attempt, Which};
use crate::cluster::Target;
use crate::failure::{one_line, CliError};
use crate::output::{self, Format};
use crate::runs;

#[derive(Args, Debug)]
pub struct ReproArgs {
    /// The run (`@latest`: the newest in the namespace).
    run: String,
    /// The stage to reproduce.
    stage: String,
    /// That attempt instead of the current one.
    #[arg(long, value_name = "N")]
    attempt: Option<u32>,
    /// The manifest's format.
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    output: Format,
}

/// Appended to the Job's name.
const REPRO_SUFFIX: &str = "-repro";
/// Longest Job name (the Job controller labels its pods `job-name=<name>`).
const MAX_JOB_NAME: usize = 63;

pub async fn run(target: &Target, args: ReproArgs) -> Result<ExitCode, CliError> {
    let run = runs::get(target, &args.run).await?;
    let which = args.attempt.map(Which::Number).unwrap_or(Which::Current);
    let attempt = attempts::pick(&run, runs::stage(&run, &args.stage)?, which)?;
    let jobs: Api<Job> = Api::namespaced(target.client.clone(), &target.namespace);
    let job = match jobs.get_opt(&attempt.job).await.map_err(|e| CliError::api(&format!("Job {}", attempt.job), e))? {
        Some(job) => job,
        None => {
            let job = rebuild(&run, &attempt)?;
            eprintln!(
                "{}: Job {} is gone; rebuilt from the run's spec and the outputs in its status \
                 (without the operator's config: its default stage timeout and nested-virt placement)",
                attempt.label(),
                attempt.job
            );
            job
        }
    };
    output::print_as(args.output, &reproduction(&job))?;
    Ok(ExitCode::SUCCESS)
}

/// The attempt's Job as the operator would build it now: its launch from
/// the spec and the status' recorded outputs, through `resources::job`.
fn rebuild(run: &PipelineRun, attempt: &Attempt) -> Result<Job, CliError> {
    let cannot = |why: String| {
        CliError::bad_input(format!("{}: Job {} is gone and cannot be rebuilt: {why}", attempt.label(), attempt.job))
    };
    let index =
        run.spec.stages.iter().position(|s| s.name == attempt.stage).ok_or_else(|| cannot("no such stage".into()))?;
    let graph = Graph::build(&run.spec.stages).map_err(|e| cannot(format!("{e:?}")))?;
    let status = run.status.clone().unwrap_or_default();
    let uid = run.uid().unwrap_or_default();
    let launched =
        launch(&run.name_any(), &uid, &Settings::default(), &run.spec, &graph, &status, index, attempt.number)
            .map_err(|e| cannot(one_line(&e.to_string())))?;
    let owner = controller_ref(run).ok_or_else(|| cannot("the run has no uid".into()))?;
    Ok(stage_job(&launched, &run.namespace().unwrap_or_default(), owner))
}

/// `job` made runnable by hand: renamed `<job>-repro`, without what the
/// cluster assigned (uid, resourceVersion, status, managedFields, the
/// selector and the `controller-uid`/`job-name` labels it goes with), without
/// the owner (deleting the run leaves it) and without Gantry's labels (so
/// the operator never takes it for one of its attempts).
pub fn reproduction(job: &Job) -> Job {
    let mut spec = job.spec.clone().unwrap_or_default();
    spec.selector = None;
    spec.manual_selector = None;
    spec.template.metadata = spec
        .template
        .metadata
        .map(|meta| ObjectMeta {
            labels: user_labels(meta.labels.as_ref()),
            annotations: meta.annotations.filter(|a| !a.is_empty()),
            ..Default::default()
        })
        .filter(|meta| meta.labels.is_some() || meta.annotations.is_some());
    Job {
        metadata: ObjectMeta {
            name: Some(repro_name(&job.name_any())),
            namespace: job.metadata.namespace.clone(),
            labels: user_labels(job.metadata.labels.as_ref()),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The labels that are neither Gantry's nor the Job controller's.
fn user_labels(labels: Option<&BTreeMap<String, String>>) -> Option<BTreeMap<String, String>> {
    let kept: BTreeMap<String, String> = labels?
        .iter()
        .filter(|(k, v)| !is_gantrys_or_the_job_controllers(k, v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// `gantry.dev/*` and `managed-by: gantry` (the operator lists its Jobs by
/// them); `controller-uid`, `job-name`, `batch.kubernetes.io/*` (the Job
/// controller sets them from the Job's uid, so a copy must not carry them).
fn is_gantrys_or_the_job_controllers(key: &str, value: &str) -> bool {
    key.starts_with("gantry.dev/")
        || key.starts_with("batch.kubernetes.io/")
        || ["controller-uid", "job-name"].contains(&key)
        || (key == LABEL_MANAGED_BY && value == "gantry")
}

/// `<job>-repro`, the Job's name cut so the whole fits 63 characters.
pub fn repro_name(job: &str) -> String {
    let keep = MAX_JOB_NAME - REPRO_SUFFIX.len();
    let base: String = job.chars().take(keep).collect();
    format!("{}{REPRO_SUFFIX}", base.trim_end_matches(['-', '.']))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage Job as the API server returns it.
    fn served_job() -> Job {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": "nightly-test-2-k3x9q", "namespace": "ci", "uid": "j-1", "resourceVersion": "42",
                "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1,
                "labels": {"gantry.dev/run": "nightly", "gantry.dev/stage": "test", "gantry.dev/attempt": "2",
                           "gantry.dev/shard": "7", "app.kubernetes.io/managed-by": "gantry", "team": "os"},
                "ownerReferences": [{"apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "name": "nightly",
                                     "uid": "r-1", "controller": true}],
                "managedFields": [{"manager": "gantry", "operation": "Update"}],
            },
            "spec": {
                "backoffLimit": 0, "activeDeadlineSeconds": 600,
                "selector": {"matchLabels": {"controller-uid": "j-1"}},
                "template": {
                    "metadata": {"labels": {"controller-uid": "j-1", "job-name": "nightly-test-2-k3x9q",
                                            "gantry.dev/run": "nightly", "gantry.dev/stage": "test"}},
                    "spec": {"restartPolicy": "Never", "serviceAccountName": "builder",
                             "containers": [{"name": "stage", "image": "local/busybox:1",
                                             "command": ["sh", "-c", "echo $GANTRY_OUTPUT_SDK_VERSION"],
                                             "env": [{"name": "GANTRY_OUTPUT_SDK_VERSION", "value": "3145.0.0"}]}]}
                }
            },
            "status": {"failed": 1}
        }))
        .unwrap()
    }

    #[test]
    fn the_repro_keeps_what_ran_and_drops_what_the_cluster_assigned() {
        let repro = reproduction(&served_job());
        let value = serde_json::to_value(&repro).unwrap();
        assert_eq!(value["apiVersion"], "batch/v1");
        assert_eq!(value["kind"], "Job");
        assert_eq!(
            value["metadata"],
            serde_json::json!({"name": "nightly-test-2-k3x9q-repro", "namespace": "ci", "labels": {"team": "os"}})
        );
        assert!(value.get("status").is_none());
        let spec = &value["spec"];
        assert!(spec.get("selector").is_none());
        assert_eq!(spec["activeDeadlineSeconds"], 600);
        assert!(spec["template"].get("metadata").is_none(), "{}", spec["template"]);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "builder");
        assert_eq!(pod["containers"][0]["env"][0]["value"], "3145.0.0");
        assert_eq!(pod["containers"][0]["command"][2], "echo $GANTRY_OUTPUT_SDK_VERSION");
    }

    #[test]
    fn repro_names_fit_a_label_value() {
        assert_eq!(repro_name("nightly-test-2-k3x9q"), "nightly-test-2-k3x9q-repro");
        let long = format!("{}-3-{}", "a".repeat(50), "b".repeat(10));
        let name = repro_name(&long);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("-repro"));
        assert_eq!(repro_name(&format!("{}-{}", "a".repeat(56), "tail")), format!("{}-repro", "a".repeat(56)));
    }

    #[test]
    fn a_rebuilt_job_is_the_operators_own_build_of_the_attempt() {
        let run: PipelineRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": "nightly", "namespace": "ci", "uid": "r-1"},
            "spec": {"stages": [
                {"name": "sdk", "outputs": ["version"], "run": {"image": "local/busybox:1"}},
                {"name": "test", "needs": ["sdk"], "run": {"image": "local/busybox:1",
                 "args": ["$(stages.sdk.outputs.version)"]}},
            ]},
            "status": {"stages": [
                {"name": "sdk", "phase": "Succeeded", "attempt": 1, "outputs": {"version": "3145.0.0"}},
                {"name": "test", "phase": "Failed", "attempt": 2},
            ]},
        }))
        .unwrap();
        let attempt = Attempt {
            stage: "test".into(),
            number: 2,
            job: gantry::engine::naming::job_name("nightly", "r-1", "test", 2),
        };
        let job = rebuild(&run, &attempt).unwrap();
        assert_eq!(job.name_any(), attempt.job);
        let repro = reproduction(&job);
        let container = &repro.spec.unwrap().template.spec.unwrap().containers[0];
        assert_eq!(container.args.as_deref(), Some(&["3145.0.0".to_string()][..]));
        let env: BTreeMap<String, String> =
            container.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect();
        assert_eq!(env["GANTRY_ATTEMPT"], "2");
        assert_eq!(env["GANTRY_OUTPUT_SDK_VERSION"], "3145.0.0");
        assert!(repro.metadata.owner_references.is_none() && repro.metadata.labels.is_none());
    }
}

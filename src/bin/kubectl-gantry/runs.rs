//! Finding the run (and stage) a command is about: by name, or `@latest`.

use gantry::api::pipelinerun::{PipelineRun, StageStatus};
use gantry::engine::conditions::from_k8s_time;
use kube::api::{ListParams, PatchParams, PostParams};
use kube::{Api, ResourceExt};

use crate::cluster::Target;
use crate::failure::CliError;

/// The name that stands for the newest run in the namespace.
pub const LATEST: &str = "@latest";

/// The field manager the plugin's writes (cancel, rerun, resubmit) name, as
/// `kubectl edit` names `kubectl-edit`: the user's change, not the operator's.
pub const FIELD_MANAGER: &str = "kubectl-gantry";

pub fn patch_params() -> PatchParams {
    PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() }
}

pub fn create_params() -> PostParams {
    PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() }
}

pub fn api(target: &Target) -> Api<PipelineRun> {
    Api::namespaced(target.client.clone(), &target.namespace)
}

/// The run `name` in the target's namespace (`@latest`: the newest one).
pub async fn get(target: &Target, name: &str) -> Result<PipelineRun, CliError> {
    let api = api(target);
    if name == LATEST {
        let runs = api
            .list(&ListParams::default())
            .await
            .map_err(|e| CliError::api(&in_namespace("pipelineruns", target), e))?;
        return newest(runs.items).ok_or_else(|| {
            CliError::bad_input(format!("no pipelinerun in namespace \"{}\" for {LATEST}", target.namespace))
        });
    }
    api.get(name)
        .await
        .map_err(|e| CliError::api(&format!("pipelinerun \"{name}\" in namespace \"{}\"", target.namespace), e))
}

/// The newest run: the latest creation time, the greater name on a tie (names
/// made with `generateName` are as good a tiebreak as any, and it is stable).
pub fn newest(runs: Vec<PipelineRun>) -> Option<PipelineRun> {
    runs.into_iter().max_by_key(|run| (run.metadata.creation_timestamp.as_ref().map(from_k8s_time), run.name_any()))
}

/// The status of stage `stage` of `run`, or an error that names the stages there are.
pub fn stage<'a>(run: &'a PipelineRun, stage: &str) -> Result<&'a StageStatus, CliError> {
    if !run.spec.stages.iter().any(|s| s.name == stage) {
        let known: Vec<&str> = run.spec.stages.iter().map(|s| s.name.as_str()).collect();
        return Err(CliError::bad_input(format!(
            "pipelinerun \"{}\" has no stage \"{stage}\" (its stages: {})",
            run.name_any(),
            known.join(", ")
        )));
    }
    run.status.as_ref().and_then(|status| status.stages.iter().find(|s| s.name == stage)).ok_or_else(|| {
        CliError::bad_input(format!("stage \"{stage}\" of pipelinerun \"{}\" has not started", run.name_any()))
    })
}

/// `what` in the target's namespace, for messages.
pub fn in_namespace(what: &str, target: &Target) -> String {
    format!("{what} in namespace \"{}\"", target.namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry::engine::conditions::to_k8s_time;

    fn run(name: &str, created_second: u32, stages: &[&str]) -> PipelineRun {
        let mut run: PipelineRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": name, "namespace": "ci"},
            "spec": {"stages": stages.iter().map(|s| serde_json::json!({"name": s, "run": {"image": "busybox"}})).collect::<Vec<_>>()},
        }))
        .unwrap();
        let created = chrono::DateTime::from_timestamp(1_790_000_000 + i64::from(created_second), 0).unwrap();
        run.metadata.creation_timestamp = Some(to_k8s_time(created));
        run
    }

    #[test]
    fn latest_is_the_newest_by_creation_time() {
        let runs = vec![run("b", 1, &[]), run("a", 3, &[]), run("c", 2, &[])];
        assert_eq!(newest(runs).unwrap().name_any(), "a");
        assert!(newest(vec![]).is_none());
    }

    #[test]
    fn an_unknown_stage_names_the_stages_there_are() {
        let r = run("nightly", 0, &["build", "test"]);
        let e = stage(&r, "deploy").unwrap_err();
        assert_eq!(e.to_string(), "pipelinerun \"nightly\" has no stage \"deploy\" (its stages: build, test)");
        let e = stage(&r, "test").unwrap_err();
        assert_eq!(e.to_string(), "stage \"test\" of pipelinerun \"nightly\" has not started");
    }
}

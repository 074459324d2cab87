//! `rerun RUN STAGE`: what `kubectl annotate pipelinerun RUN
//! gantry.dev/rerun=STAGE` does, after checking the stage exists and the run
//! has finished (the operator ignores a rerun of a running run, with a
//! `RerunIgnored` Warning, and drops the request).

use std::process::ExitCode;

use clap::Args;
use gantry::api::pipelinerun::PipelineRunSpec;
use gantry::engine::naming::ANNOTATION_RERUN;
use gantry::engine::pipelinerun::dag::Graph;
use kube::api::Patch;
use kube::ResourceExt;

use crate::cluster::Target;
use crate::failure::CliError;
use crate::output::word;
use crate::runs;

#[derive(Args, Debug)]
pub struct RerunArgs {
    /// The finished run (`@latest`: the newest in the namespace).
    run: String,
    /// The stage to run again; the stages that need it and the finally stages run again too.
    stage: String,
}

pub async fn run(target: &Target, args: RerunArgs) -> Result<ExitCode, CliError> {
    let run = runs::get(target, &args.run).await?;
    let name = run.name_any();
    let scope = rerun_scope(&run.spec, &args.stage).ok_or_else(|| {
        let known: Vec<&str> = run.spec.stages.iter().map(|s| s.name.as_str()).collect();
        CliError::bad_input(format!(
            "pipelinerun \"{name}\" has no stage \"{}\" (its stages: {})",
            args.stage,
            known.join(", ")
        ))
    })?;
    let phase = run.status.as_ref().and_then(|s| s.phase);
    if !phase.is_some_and(|p| p.is_finished()) {
        return Err(CliError::bad_input(format!(
            "pipelinerun/{name} has not finished ({}): the operator reruns a stage only of a finished run \
             (it would ignore this request with a RerunIgnored Warning); wait for it, or cancel it first",
            phase.map(|p| word(Some(&p))).unwrap_or_else(|| "no status yet".into())
        )));
    }
    let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION_RERUN: args.stage}}});
    runs::api(target)
        .patch(&name, &runs::patch_params(), &Patch::Merge(&patch))
        .await
        .map_err(|e| CliError::api(&format!("pipelinerun \"{name}\""), e))?;
    println!("pipelinerun/{name}: {}", scope.describe(&args.stage));
    Ok(ExitCode::SUCCESS)
}

/// What a rerun of one stage runs again besides it.
#[derive(Debug, PartialEq, Eq)]
pub struct RerunScope {
    /// The stages that need it, directly or not, in spec order.
    pub downstream: Vec<String>,
    /// The finally stages (other than those above and the stage itself).
    pub finally: Vec<String>,
}

impl RerunScope {
    /// `rerun of stage b requested (and the stages that need it: c; finally: report)`.
    pub fn describe(&self, stage: &str) -> String {
        let mut also = Vec::new();
        if !self.downstream.is_empty() {
            also.push(format!("the stages that need it: {}", self.downstream.join(", ")));
        }
        if !self.finally.is_empty() {
            also.push(format!("finally: {}", self.finally.join(", ")));
        }
        let also = if also.is_empty() { String::new() } else { format!(" (and {})", also.join("; ")) };
        format!("rerun of stage {stage} requested{also}")
    }
}

/// The stages a rerun of `stage` resets, as `engine::pipelinerun::plan::rerun`
/// does: the stage, its descendants and the finally stages. `None` for an unknown stage.
pub fn rerun_scope(spec: &PipelineRunSpec, stage: &str) -> Option<RerunScope> {
    let index = spec.stages.iter().position(|s| s.name == stage)?;
    // A spec whose graph does not build (unknown need) failed InvalidSpec;
    // its rerun fails the same way, and there is nothing downstream to name.
    let downstream = Graph::build(&spec.stages).map(|g| g.descendants(index)).unwrap_or_default();
    let name = |i: usize| spec.stages[i].name.clone();
    let finally = (0..spec.stages.len())
        .filter(|&i| spec.stages[i].finally && i != index && !downstream.contains(&i))
        .map(name)
        .collect();
    Some(RerunScope { downstream: downstream.into_iter().map(name).collect(), finally })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PipelineRunSpec {
        serde_json::from_value(serde_json::json!({"stages": [
            {"name": "a"},
            {"name": "b", "needs": ["a"]},
            {"name": "c", "needs": ["b"]},
            {"name": "x", "needs": ["a"]},
            {"name": "report", "finally": true},
        ]}))
        .unwrap()
    }

    #[test]
    fn a_rerun_takes_downstream_stages_and_finally_along() {
        let scope = rerun_scope(&spec(), "b").unwrap();
        assert_eq!(scope, RerunScope { downstream: vec!["c".into()], finally: vec!["report".into()] });
        assert_eq!(scope.describe("b"), "rerun of stage b requested (and the stages that need it: c; finally: report)");
        let scope = rerun_scope(&spec(), "a").unwrap();
        assert_eq!(scope.downstream, ["b", "c", "x"]);
    }

    #[test]
    fn a_rerun_of_a_finally_stage_is_that_stage_alone() {
        let scope = rerun_scope(&spec(), "report").unwrap();
        assert_eq!(scope.describe("report"), "rerun of stage report requested");
    }

    #[test]
    fn an_unknown_stage_has_no_scope() {
        assert!(rerun_scope(&spec(), "deploy").is_none());
    }
}

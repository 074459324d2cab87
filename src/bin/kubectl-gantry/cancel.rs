//! `cancel RUN`: sets `spec.cancel: true` (a merge patch). The operator then
//! stops every unfinished stage (finally stages included), deletes their
//! Jobs, and the run ends Cancelled.

use std::process::ExitCode;

use clap::Args;
use gantry::api::pipelinerun::PipelineRun;
use kube::api::Patch;
use kube::ResourceExt;

use crate::cluster::Target;
use crate::failure::CliError;
use crate::output::word;
use crate::runs;

#[derive(Args, Debug)]
pub struct CancelArgs {
    /// The run to stop (`@latest`: the newest in the namespace).
    run: String,
}

/// What `cancel` does to a run.
#[derive(Debug, PartialEq, Eq)]
pub enum Cancel {
    /// Nothing: the run is over.
    AlreadyFinished(String),
    /// Nothing: `spec.cancel` is already set and the operator is stopping it.
    AlreadyRequested,
    /// Set `spec.cancel`.
    Request(String),
}

/// What to do with `run`, and the phase it is in.
pub fn decide(run: &PipelineRun) -> Cancel {
    let phase = run.status.as_ref().and_then(|s| s.phase);
    match phase {
        Some(p) if p.is_finished() => Cancel::AlreadyFinished(word(Some(&p))),
        _ if run.spec.cancel => Cancel::AlreadyRequested,
        Some(p) => Cancel::Request(word(Some(&p))),
        None => Cancel::Request("not started".into()),
    }
}

pub async fn run(target: &Target, args: CancelArgs) -> Result<ExitCode, CliError> {
    let run = runs::get(target, &args.run).await?;
    let name = run.name_any();
    match decide(&run) {
        Cancel::AlreadyFinished(phase) => println!("pipelinerun/{name} already finished ({phase}): nothing to cancel"),
        Cancel::AlreadyRequested => {
            println!("pipelinerun/{name}: cancel already requested; the operator is stopping it")
        }
        Cancel::Request(phase) => {
            let patch = serde_json::json!({"spec": {"cancel": true}});
            runs::api(target)
                .patch(&name, &runs::patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(|e| CliError::api(&format!("pipelinerun \"{name}\""), e))?;
            println!(
                "pipelinerun/{name}: cancel requested (it was {phase}): its unfinished stages stop, \
                 their Jobs are deleted, and it ends Cancelled"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(phase: Option<&str>, cancel: bool) -> PipelineRun {
        let status = phase.map(|p| serde_json::json!({"phase": p})).unwrap_or(serde_json::Value::Null);
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": "x"},
            "spec": {"cancel": cancel, "stages": []}, "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_finished_run_is_left_alone() {
        assert_eq!(decide(&run(Some("Succeeded"), false)), Cancel::AlreadyFinished("Succeeded".into()));
        assert_eq!(decide(&run(Some("Cancelled"), true)), Cancel::AlreadyFinished("Cancelled".into()));
    }

    #[test]
    fn an_unfinished_run_is_cancelled_once() {
        assert_eq!(decide(&run(Some("Running"), false)), Cancel::Request("Running".into()));
        assert_eq!(decide(&run(None, false)), Cancel::Request("not started".into()));
        assert_eq!(decide(&run(Some("Running"), true)), Cancel::AlreadyRequested);
    }
}

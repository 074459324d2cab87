//! Validation of a PipelineRun spec. An invalid spec never creates a Job:
//! the run goes Failed with reason `InvalidSpec` and the message of the
//! first problem found, which names the stage and field. The checks run in
//! this order: the run's own fields and limits (`limits.rs`), `spec.notify`
//! (`notify.rs`), stage names and the needs graph (`names.rs`), each stage's
//! fields by kind (`stages.rs`), then `spec.skip` (`names.rs`) and every
//! `$(...)` reference (`substitutions.rs`); in between, `Gate` runs' window and
//! merge stages (`gate.rs`).

mod gate;
mod limits;
mod names;
mod notify;
mod stages;
mod substitutions;

pub use limits::{
    MAX_ENV, MAX_OUTPUTS, MAX_PARAMS, MAX_RETRIES, MAX_RETRY_DELAY_SECONDS, MAX_SERVICE_REPLICAS, MAX_STAGES,
    MAX_STAGE_TEXT_BYTES, MAX_TTL_SECONDS,
};

use super::dag::Graph;
use super::destinations::DestinationPolicy;
use crate::api::pipelinerun::{PipelineRunSpec, Stage};
use crate::engine::spec_error::SpecError;

/// Checks the whole spec; `Ok` means the planner may create Jobs for it.
/// `nested_virt_allowed`: whether the operator's policy lets this run's
/// namespace ask for nested virtualization; `destinations`: where
/// `spec.notify` may point.
pub fn validate(
    spec: &PipelineRunSpec,
    nested_virt_allowed: bool,
    destinations: &DestinationPolicy,
) -> Result<Graph, SpecError> {
    limits::check_run_fields(spec)?;
    notify::check_notify(spec, destinations)?;
    names::check_stage_names(spec)?;
    let graph = names::stage_graph(spec)?;
    for (i, stage) in spec.stages.iter().enumerate() {
        stages::check_stage(spec, stage, nested_virt_allowed)?;
        names::check_finally_order(spec, &graph, i)?;
    }
    names::check_skip_list(spec)?;
    gate::check_gate(spec)?;
    substitutions::check_references(spec, &graph)?;
    Ok(graph)
}

pub(super) fn stage_field(stage: &Stage, field: &str) -> String {
    if field.is_empty() {
        format!("spec.stages[{}]", stage.name)
    } else {
        format!("spec.stages[{}].{field}", stage.name)
    }
}

pub(super) fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

#[cfg(test)]
mod tests;

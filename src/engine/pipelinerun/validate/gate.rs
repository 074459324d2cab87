//! `Gate` runs: the window's range, and merge stages (only in gated runs,
//! plain Job stages, not finally, needed by no other stage: they run last).

use super::stage_field;
use crate::api::pipelinerun::PipelineRunSpec;
use crate::engine::pipelinerun::gate::MAX_WINDOW;
use crate::engine::pipelinerun::stage_kind::{stage_kind, StageKind};
use crate::engine::spec_error::SpecError;

pub(super) fn check_gate(spec: &PipelineRunSpec) -> Result<(), SpecError> {
    let gated = spec.gate().is_some();
    if let Some(window) = spec.concurrency.as_ref().and_then(|c| c.window) {
        if !gated {
            return Err(SpecError::at("spec.concurrency.window", "only for policy Gate"));
        }
        if !(1..=MAX_WINDOW).contains(&window) {
            return Err(SpecError::at("spec.concurrency.window", format!("must be 1 to {MAX_WINDOW}, not {window}")));
        }
    }
    for stage in spec.stages.iter().filter(|s| s.merge) {
        let field = stage_field(stage, "merge");
        if !gated {
            return Err(SpecError::at(&field, "only for runs with concurrency.policy Gate"));
        }
        if stage.finally {
            return Err(SpecError::at(&field, "a merge stage cannot be a finally stage"));
        }
        if stage_kind(stage) != StageKind::Job {
            return Err(SpecError::at(&field, "a merge stage runs a container (run), not a service or a reference"));
        }
    }
    for stage in spec.stages.iter().filter(|s| !s.merge) {
        let needed_merge = stage.needs.iter().find(|n| spec.stages.iter().any(|s| s.merge && &s.name == *n));
        if let Some(merge) = needed_merge {
            return Err(SpecError::at(
                stage_field(stage, "needs"),
                format!("\"{merge}\" is a merge stage: merge stages run last, only other merge stages may need them"),
            ));
        }
    }
    Ok(())
}

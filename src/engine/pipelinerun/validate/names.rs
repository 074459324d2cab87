//! Stage names and the needs graph: names are unique DNS labels, needs
//! name stages of the run and form no cycle, only finally stages need
//! finally stages, and `spec.skip` lists stages of the run.

use std::collections::HashSet;

use super::stage_field;
use crate::api::pipelinerun::PipelineRunSpec;
use crate::engine::naming::is_dns_label;
use crate::engine::pipelinerun::dag::{Graph, GraphError};
use crate::engine::spec_error::SpecError;

/// Every stage name is a DNS label, and no two are the same.
pub(super) fn check_stage_names(spec: &PipelineRunSpec) -> Result<(), SpecError> {
    let mut seen = HashSet::new();
    for stage in &spec.stages {
        if !is_dns_label(&stage.name) {
            return Err(SpecError::at(
                format!("spec.stages[{}].name", stage.name),
                "must be a DNS label: lowercase letters, digits and '-', at most 63 characters",
            ));
        }
        if !seen.insert(stage.name.as_str()) {
            return Err(SpecError::at(stage_field(stage, "name"), "duplicate stage name"));
        }
    }
    Ok(())
}

/// The needs graph, when every need names a stage and there is no cycle.
pub(super) fn stage_graph(spec: &PipelineRunSpec) -> Result<Graph, SpecError> {
    let graph = Graph::build(&spec.stages).map_err(|e| match e {
        GraphError::UnknownNeed { stage, missing } => {
            SpecError::at(format!("spec.stages[{stage}].needs"), format!("\"{missing}\" is not a stage of this run"))
        }
        GraphError::Cycle { .. } => unreachable!("build does not detect cycles"),
    })?;
    graph.topological_order(&spec.stages).map_err(|e| match e {
        GraphError::Cycle { stages } => SpecError::at(
            format!("spec.stages[{}].needs", stages[0]),
            format!("stages need each other in a cycle: {} -> {}", stages.join(" -> "), stages[0]),
        ),
        GraphError::UnknownNeed { .. } => unreachable!("needs were resolved above"),
    })?;
    Ok(graph)
}

/// A non-finally stage must not need a finally stage (finally stages run last).
pub(super) fn check_finally_order(spec: &PipelineRunSpec, graph: &Graph, i: usize) -> Result<(), SpecError> {
    let stage = &spec.stages[i];
    if stage.finally {
        return Ok(());
    }
    match graph.needs[i].iter().find(|&&n| spec.stages[n].finally) {
        Some(&n) => Err(SpecError::at(
            stage_field(stage, "needs"),
            format!("\"{}\" is a finally stage; only finally stages may need it", spec.stages[n].name),
        )),
        None => Ok(()),
    }
}

pub(super) fn check_skip_list(spec: &PipelineRunSpec) -> Result<(), SpecError> {
    let names: HashSet<&str> = spec.stages.iter().map(|s| s.name.as_str()).collect();
    match spec.skip.iter().find(|s| !names.contains(s.as_str())) {
        Some(s) => Err(SpecError::at("spec.skip", format!("\"{s}\" is not a stage of this run"))),
        None => Ok(()),
    }
}

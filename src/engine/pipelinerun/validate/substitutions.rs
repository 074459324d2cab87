//! `$(params.NAME)` and `$(stages.STAGE.outputs.NAME)` references: params
//! must be declared; outputs must come from a stage this one needs
//! (directly or not) that provides them and is not listed in `spec.skip`.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::stage_field;
use crate::api::pipelinerun::{PipelineRunSpec, Stage};
use crate::engine::pipelinerun::dag::Graph;
use crate::engine::pipelinerun::stage_kind::{provides_output, stage_kind};
use crate::engine::pipelinerun::substitute::{references, Reference};
use crate::engine::spec_error::SpecError;

/// Every template of a stage, with the field it sits in.
pub(super) fn templates(spec: &PipelineRunSpec, stage: &Stage) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if stage_kind(stage).is_reference() {
        return out;
    }
    let run = stage.run.clone().unwrap_or_default();
    if let Some(image) = run.image.or_else(|| spec.defaults.image.clone()) {
        out.push(("run.image".to_string(), image));
    }
    out.extend(run.command.iter().enumerate().map(|(i, c)| (format!("run.command[{i}]"), c.clone())));
    out.extend(run.args.iter().enumerate().map(|(i, a)| (format!("run.args[{i}]"), a.clone())));
    for env in spec.defaults.env.iter().chain(&run.env) {
        if let Some(v) = &env.value {
            out.push((format!("run.env[{}]", env.name), v.clone()));
        }
    }
    out
}

/// Params must be declared; outputs must come from a stage this one needs
/// (directly or not) that declares them and is not listed in `spec.skip`.
pub(super) fn check_references(spec: &PipelineRunSpec, graph: &Graph) -> Result<(), SpecError> {
    let params: HashSet<&str> = spec.params.iter().map(|p| p.name.as_str()).collect();
    let index: HashMap<&str, usize> = spec.stages.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let skipped: BTreeSet<&str> = spec.skip.iter().map(String::as_str).collect();
    for (i, stage) in spec.stages.iter().enumerate() {
        let ancestors = graph.ancestors(i);
        for (field, template) in templates(spec, stage) {
            let field = stage_field(stage, &field);
            for reference in references(&template).map_err(|e| SpecError::at(&field, e.to_string()))? {
                match &reference {
                    Reference::Param(p) if !params.contains(p.as_str()) => {
                        return Err(SpecError::at(&field, format!("{reference}: no param \"{p}\" in spec.params")));
                    }
                    Reference::Param(_) => {}
                    Reference::GateAhead if spec.gate().is_none() => {
                        return Err(SpecError::at(&field, format!("{reference}: only for concurrency.policy Gate")));
                    }
                    Reference::GateAhead => {}
                    Reference::Output { stage: from, output } => {
                        let Some(&j) = index.get(from.as_str()) else {
                            return Err(SpecError::at(
                                &field,
                                format!("{reference}: \"{from}\" is not a stage of this run"),
                            ));
                        };
                        if !ancestors.contains(&j) {
                            return Err(SpecError::at(
                                &field,
                                format!("{reference}: add \"{from}\" to needs (directly or through another stage)"),
                            ));
                        }
                        if !provides_output(&spec.stages[j], output) {
                            return Err(SpecError::at(
                                &field,
                                format!("{reference}: stage \"{from}\" does not declare output \"{output}\""),
                            ));
                        }
                        if skipped.contains(from.as_str()) && !skipped.contains(stage.name.as_str()) {
                            return Err(SpecError::at(
                                &field,
                                format!("{reference}: stage \"{from}\" is in spec.skip, so it writes no outputs"),
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

//! Each stage's own fields, by kind: a run stage needs an image and keeps
//! its retries, outputs, env and text within limits; a service stage has
//! replicas and none of what only a finishing stage has; a reference stage
//! (`imageBuild`, `kataInstall`) names an object and sets nothing about pods.

use std::collections::HashSet;

use super::limits::{
    check_duration, check_retries, check_retry_delay, MAX_ENV, MAX_OUTPUTS, MAX_SERVICE_REPLICAS, MAX_STAGE_TEXT_BYTES,
};
use super::substitutions::templates;
use super::{is_identifier, stage_field};
use crate::api::pipelinerun::{PipelineRunSpec, Stage};
use crate::engine::naming::is_dns_label;
use crate::engine::pipelinerun::stage_kind::{
    stage_kind, StageKind, IMAGE_BUILD_OUTPUTS, KATA_INSTALL_OUTPUTS, SERVICE_OUTPUTS,
};
use crate::engine::spec_error::SpecError;

pub(super) fn check_stage(spec: &PipelineRunSpec, stage: &Stage, nested_virt_allowed: bool) -> Result<(), SpecError> {
    if stage_kind(stage).is_reference() {
        return check_reference_stage(stage);
    }
    check_service_stage(stage)?;
    if stage.nested_virt && !nested_virt_allowed {
        return Err(SpecError::at(
            stage_field(stage, "nestedVirt"),
            "nested virtualization is not allowed in this namespace (the operator's nestedVirt.allowedNamespaces)",
        ));
    }
    let run = stage.run.clone().unwrap_or_default();
    if run.image.as_deref().or(spec.defaults.image.as_deref()).is_none_or(str::is_empty) {
        return Err(SpecError::at(stage_field(stage, "run.image"), "no image: set it here or in spec.defaults.image"));
    }
    check_retries(&stage_field(stage, "retries"), stage.retries)?;
    check_retry_delay(&stage_field(stage, "retryDelaySeconds"), stage.retry_delay_seconds)?;
    check_duration(&stage_field(stage, "timeout"), stage.timeout.as_deref())?;
    if stage.outputs.len() > MAX_OUTPUTS {
        return Err(SpecError::at(stage_field(stage, "outputs"), format!("at most {MAX_OUTPUTS} outputs are allowed")));
    }
    let mut outputs = HashSet::new();
    for o in &stage.outputs {
        if !is_identifier(o) {
            return Err(SpecError::at(
                stage_field(stage, "outputs"),
                format!("\"{o}\" must be letters, digits, '_' or '-'"),
            ));
        }
        if !outputs.insert(o) {
            return Err(SpecError::at(stage_field(stage, "outputs"), format!("\"{o}\" is declared twice")));
        }
    }
    if run.env.len() + spec.defaults.env.len() > MAX_ENV {
        return Err(SpecError::at(stage_field(stage, "run.env"), format!("at most {MAX_ENV} variables are allowed")));
    }
    let text_bytes: usize = templates(spec, stage).iter().map(|(_, t)| t.len()).sum();
    if text_bytes > MAX_STAGE_TEXT_BYTES {
        return Err(SpecError::at(
            stage_field(stage, "run"),
            format!("image, command, args and env add up to {text_bytes} bytes; at most {MAX_STAGE_TEXT_BYTES}"),
        ));
    }
    Ok(())
}

pub(super) fn check_service_stage(stage: &Stage) -> Result<(), SpecError> {
    let Some(service) = &stage.service else { return Ok(()) };
    if service.replicas == 0 || service.replicas > MAX_SERVICE_REPLICAS {
        return Err(SpecError::at(
            stage_field(stage, "service.replicas"),
            format!("must be 1 to {MAX_SERVICE_REPLICAS}"),
        ));
    }
    for (field, set) in
        [("results", stage.results.is_some()), ("finally", stage.finally), ("outputs", !stage.outputs.is_empty())]
    {
        if set {
            return Err(SpecError::at(
                stage_field(stage, field),
                format!(
                    "not for a service stage (it stays up until its dependents finish; its outputs are fixed: {})",
                    SERVICE_OUTPUTS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// `imageBuild` and `kataInstall` stages run nothing themselves: they take
/// a name, and fields about pods make no sense on them.
pub(super) fn check_reference_stage(stage: &Stage) -> Result<(), SpecError> {
    let (field, name) = match stage_kind(stage) {
        StageKind::ImageBuild { name } => ("imageBuild", name),
        StageKind::KataInstall { name } => ("kataInstall", name),
        _ => return Ok(()),
    };
    let set = [
        ("run", stage.run.is_some()),
        ("service", stage.service.is_some()),
        ("imageBuild", field != "imageBuild" && stage.image_build.is_some()),
        ("kataInstall", field != "kataInstall" && stage.kata_install.is_some()),
        ("outputs", !stage.outputs.is_empty()),
        ("results", stage.results.is_some()),
        ("nestedVirt", stage.nested_virt),
        ("retries", stage.retries.is_some()),
    ];
    if let Some((other, _)) = set.iter().find(|(_, set)| *set) {
        let fixed = match field {
            "imageBuild" => IMAGE_BUILD_OUTPUTS.join(", "),
            _ => KATA_INSTALL_OUTPUTS.join(", "),
        };
        return Err(SpecError::at(
            stage_field(stage, other),
            format!("a {field} stage runs nothing itself: remove {other} (its outputs are fixed: {fixed})"),
        ));
    }
    if !is_dns_subdomain(name) {
        return Err(SpecError::at(
            stage_field(stage, &format!("{field}.name")),
            format!("\"{name}\" is not a valid object name"),
        ));
    }
    check_duration(&stage_field(stage, "timeout"), stage.timeout.as_deref())
}

/// A DNS-1123 subdomain (the names of Kubernetes objects).
pub(super) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

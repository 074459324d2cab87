//! The rules an ImageBuild spec must follow; the first one broken names its
//! field, and nothing is built.

use super::MAX_KEEP_LAST;
use crate::api::imagebuild::ImageBuildSpec;
use crate::engine::duration::{parse_duration_at_most, MAX_RETENTION, MAX_TIMEOUT};
use crate::engine::spec_error::SpecError;

/// Checks an ImageBuild spec; the message names the field.
pub fn validate(spec: &ImageBuildSpec, nested_virt_allowed: bool) -> Result<(), SpecError> {
    let last = spec.output.rsplit('/').next().unwrap_or("");
    if spec.output.is_empty() || spec.output.contains('@') || last.contains(':') {
        return Err(SpecError::at(
            "spec.output",
            "must be a repository without tag or digest, e.g. registry:5000/fedora-cache",
        ));
    }
    if spec.builder.image.as_deref().is_none_or(str::is_empty) {
        return Err(SpecError::at("spec.builder.image", "the builder needs an image"));
    }
    let prefix_ok = spec.suffix_prefix.len() <= 8
        && spec.suffix_prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !prefix_ok {
        return Err(SpecError::at("spec.suffixPrefix", "at most 8 lowercase letters or digits, e.g. c or b"));
    }
    for (field, value, limit) in [
        ("spec.timeout", spec.timeout.as_deref(), MAX_TIMEOUT),
        ("spec.retention.obsoleteAfter", spec.retention.obsolete_after.as_deref(), MAX_RETENTION),
        ("spec.retention.pruneAfter", spec.retention.prune_after.as_deref(), MAX_RETENTION),
    ] {
        if let Some(v) = value {
            parse_duration_at_most(v, limit).map_err(|e| SpecError::at(field, e))?;
        }
    }
    let retention = &spec.retention;
    if retention.prune_after.is_some() && retention.obsolete_after.is_none() {
        return Err(SpecError::at("spec.retention.pruneAfter", "counts from obsolescence: set obsoleteAfter too"));
    }
    match &retention.pruner {
        None if retention.prune_after.is_some() => {
            return Err(SpecError::at(
                "spec.retention.pruner",
                "pruneAfter needs a pruner container that deletes the image",
            ))
        }
        Some(p) if p.image.as_deref().is_none_or(str::is_empty) => {
            return Err(SpecError::at("spec.retention.pruner.image", "the pruner needs an image"))
        }
        _ => {}
    }
    if spec.retention.keep_last.is_some_and(|k| k == 0 || k > MAX_KEEP_LAST) {
        return Err(SpecError::at("spec.retention.keepLast", format!("must be 1 to {MAX_KEEP_LAST}")));
    }
    if spec.nested_virt && !nested_virt_allowed {
        return Err(SpecError::at(
            "spec.nestedVirt",
            "nested virtualization is not allowed in this namespace (the operator's nestedVirt.allowedNamespaces)",
        ));
    }
    Ok(())
}

//! The run's own fields and the limits that keep a run (and its status)
//! bounded: counts, durations, retries, the TTL, the workspace size.

use std::collections::HashSet;

use super::is_identifier;
use crate::api::pipelinerun::PipelineRunSpec;
use crate::engine::duration::{format_duration, parse_duration_at_most, MAX_TIMEOUT};
use crate::engine::spec_error::SpecError;

/// Most stages a run may have (status stays bounded, see `MAX_HISTORY`).
pub const MAX_STAGES: usize = 64;
/// Most params a run may have.
pub const MAX_PARAMS: usize = 64;
/// Most retries a stage may ask for.
pub const MAX_RETRIES: u32 = 10;
/// Most pods a service stage may run.
pub const MAX_SERVICE_REPLICAS: u32 = 16;
/// Most outputs a stage may declare.
pub const MAX_OUTPUTS: usize = 16;
/// Most env entries a stage may set (its own plus defaults).
pub const MAX_ENV: usize = 100;
/// Most bytes of image, command, args and env values per stage.
pub const MAX_STAGE_TEXT_BYTES: usize = 64 * 1024;
/// Longest `ttlSecondsAfterFinished`: a year.
pub const MAX_TTL_SECONDS: i64 = 365 * 24 * 60 * 60;
/// Longest base delay before a retry (`retryDelaySeconds`); the doubling
/// delay is capped at the same value.
pub const MAX_RETRY_DELAY_SECONDS: u32 = 600;

pub(super) fn check_run_fields(spec: &PipelineRunSpec) -> Result<(), SpecError> {
    if spec.stages.is_empty() {
        return Err(SpecError::at("spec.stages", "a run needs at least one stage"));
    }
    if spec.stages.len() > MAX_STAGES {
        return Err(SpecError::at(
            "spec.stages",
            format!("{} stages; at most {MAX_STAGES} are allowed", spec.stages.len()),
        ));
    }
    if spec.params.len() > MAX_PARAMS {
        return Err(SpecError::at(
            "spec.params",
            format!("{} params; at most {MAX_PARAMS} are allowed", spec.params.len()),
        ));
    }
    let mut params = HashSet::new();
    for p in &spec.params {
        if !is_identifier(&p.name) {
            return Err(SpecError::at(format!("spec.params[{}].name", p.name), "must be letters, digits, '_' or '-'"));
        }
        if !params.insert(&p.name) {
            return Err(SpecError::at(format!("spec.params[{}].name", p.name), "duplicate param name"));
        }
    }
    check_duration("spec.timeout", spec.timeout.as_deref())?;
    check_duration("spec.defaults.timeout", spec.defaults.timeout.as_deref())?;
    check_retries("spec.defaults.retries", spec.defaults.retries)?;
    check_retry_delay("spec.defaults.retryDelaySeconds", spec.defaults.retry_delay_seconds)?;
    if let Some(ttl) = spec.ttl_seconds_after_finished {
        if !(0..=MAX_TTL_SECONDS).contains(&ttl) {
            let most = format_duration(std::time::Duration::from_secs(MAX_TTL_SECONDS.unsigned_abs()));
            return Err(SpecError::at(
                "spec.ttlSecondsAfterFinished",
                format!("must be 0 to {MAX_TTL_SECONDS} ({most})"),
            ));
        }
    }
    if let Some(ws) = &spec.workspace {
        if !is_quantity(&ws.size) {
            return Err(SpecError::at(
                "spec.workspace.size",
                format!("\"{}\" is not a size like 20Gi or 500Mi", ws.size),
            ));
        }
    }
    if let Some(c) = &spec.concurrency {
        // Dots too: a group is often a release branch, `fuel-7.0`.
        let valid = c.group.len() <= 63 && is_identifier(&c.group.replace('.', "_"));
        if !valid {
            return Err(SpecError::at("spec.concurrency.group", "must be 1-63 letters, digits, '_', '-' or '.'"));
        }
    }
    Ok(())
}

/// A storage quantity: a decimal number with an optional binary or decimal suffix.
pub(super) fn is_quantity(s: &str) -> bool {
    const SUFFIXES: [&str; 13] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", ""];
    SUFFIXES.iter().any(|suffix| {
        s.strip_suffix(suffix).is_some_and(|num| {
            let mut parts = num.splitn(2, '.');
            let whole = parts.next().unwrap_or("");
            let frac = parts.next();
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
        })
    })
}

pub(super) fn check_duration(field: &str, value: Option<&str>) -> Result<(), SpecError> {
    match value {
        Some(v) => parse_duration_at_most(v, MAX_TIMEOUT).map(|_| ()).map_err(|e| SpecError::at(field, e)),
        None => Ok(()),
    }
}

pub(super) fn check_retries(field: &str, retries: Option<u32>) -> Result<(), SpecError> {
    match retries {
        Some(r) if r > MAX_RETRIES => {
            Err(SpecError::at(field, format!("{r} retries; at most {MAX_RETRIES} are allowed")))
        }
        _ => Ok(()),
    }
}

pub(super) fn check_retry_delay(field: &str, seconds: Option<u32>) -> Result<(), SpecError> {
    match seconds {
        Some(s) if s > MAX_RETRY_DELAY_SECONDS => {
            Err(SpecError::at(field, format!("{s} seconds; at most {MAX_RETRY_DELAY_SECONDS} are allowed")))
        }
        _ => Ok(()),
    }
}

//! `spec.notify`: where a run's CloudEvents may go, as the admin's
//! destination policy allows.

use crate::api::pipelinerun::PipelineRunSpec;
use crate::engine::pipelinerun::destinations::DestinationPolicy;
use crate::engine::spec_error::SpecError;

/// At most the admin's number of targets, each an http(s) URL the
/// destination policy allows (IP literals are checked here, names again
/// when they are resolved).
pub(super) fn check_notify(spec: &PipelineRunSpec, destinations: &DestinationPolicy) -> Result<(), SpecError> {
    if spec.notify.len() > destinations.max_targets {
        return Err(SpecError::at(
            "spec.notify",
            format!(
                "{} targets; at most {} are allowed (the operator's notify policy)",
                spec.notify.len(),
                destinations.max_targets
            ),
        ));
    }
    for (i, target) in spec.notify.iter().enumerate() {
        destinations.check_url(&target.url).map_err(|e| SpecError::at(format!("spec.notify[{i}].url"), e))?;
    }
    Ok(())
}

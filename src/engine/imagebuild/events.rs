//! The reasons of the Events an ImageBuild publishes (see `plan/notes.rs`
//! for when each is published).

use crate::api::imagebuild::Lifecycle;

pub use crate::engine::spec_error::REASON_INVALID_SPEC as INVALID_SPEC;

/// A build Job was created (or adopted).
pub const BUILD_STARTED: &str = "BuildStarted";
/// A build pushed its image and reported its digest.
pub const BUILD_SUCCEEDED: &str = "BuildSucceeded";
/// A build failed (Warning).
pub const BUILD_FAILED: &str = "BuildFailed";
/// A prune Job was created (or adopted).
pub const PRUNE_STARTED: &str = "PruneStarted";
/// A prune Job deleted its image.
pub const PRUNE_SUCCEEDED: &str = "PruneSucceeded";
/// A prune Job failed (Warning).
pub const PRUNE_FAILED: &str = "PruneFailed";
/// The latest image is in use.
pub const USED: &str = "Used";
/// The latest image was not used for `retention.obsoleteAfter`.
pub const OBSOLETE: &str = "Obsolete";
/// The latest image was deleted from its registry.
pub const PRUNED: &str = "Pruned";
/// The latest image is kept forever.
pub const PERMANENT: &str = "Permanent";

/// The reason of the Event announcing that the latest image entered `lifecycle`.
pub fn lifecycle_reason(lifecycle: Lifecycle) -> &'static str {
    match lifecycle {
        Lifecycle::Used => USED,
        Lifecycle::Obsolete => OBSOLETE,
        Lifecycle::Pruned => PRUNED,
        Lifecycle::Permanent => PERMANENT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_reasons_are_the_lifecycles_names() {
        for l in [Lifecycle::Used, Lifecycle::Obsolete, Lifecycle::Pruned, Lifecycle::Permanent] {
            assert_eq!(lifecycle_reason(l), format!("{l:?}"));
        }
    }
}

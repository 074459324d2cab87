//! The ImageBuild engine: spec, last status and the build and prune Jobs
//! in; the next status, the Jobs to create or delete and the Events out.
//! Pure.
//!
//! - [`view`]: what the planner reads ([`View`], the observed [`BuildJob`]s)
//!   and the Jobs it launches.
//! - [`validate`](mod@validate): the spec's rules.
//! - [`plan`](mod@plan): one reconcile, pass by pass (its `mod.rs` states the order).
//! - [`suffix`], [`lifecycle`]: a build's unique suffix and the retention clock.
//! - [`replan`](mod@replan): planning again after the API server refused a Job.
//! - [`events`]: the reasons of the Events published.

pub mod events;
pub mod lifecycle;
pub mod plan;
pub mod replan;
pub mod suffix;
pub mod validate;
pub mod view;

#[cfg(test)]
mod tests;

pub use plan::{plan, Action, Plan};
pub use replan::{record_applied, replan};
pub use validate::validate;
pub use view::{BuildJob, BuildLaunch, Observed, PruneLaunch, View};

/// Builds kept in status when `retention.keepLast` is unset.
pub const DEFAULT_KEEP_LAST: u32 = 5;
/// Most builds `retention.keepLast` may keep.
pub const MAX_KEEP_LAST: u32 = 50;
/// Outputs a builder may report.
pub const BUILD_OUTPUTS: [&str; 2] = ["digest", "manifest"];

/// The condition types of an ImageBuild's status.
pub mod conditions {
    /// Whether an image is there to use (`latestImage`).
    pub const READY: &str = "Ready";
    /// Whether a build is running.
    pub const BUILDING: &str = "Building";
}

/// The reasons of the `Ready` and `Building` conditions.
pub mod reasons {
    pub use crate::engine::spec_error::REASON_INVALID_SPEC as INVALID_SPEC;

    /// Ready: the latest image was built.
    pub const BUILT: &str = "Built";
    /// Ready: an older image is usable, the latest build failed.
    pub const LATEST_BUILD_FAILED: &str = "LatestBuildFailed";
    /// Not Ready: the only builds failed.
    pub const BUILD_FAILED: &str = "BuildFailed";
    /// Not Ready: nothing built yet.
    pub const NOT_BUILT: &str = "NotBuilt";
    /// Not Ready: the prune Job deleted the image.
    pub const PRUNED: &str = "Pruned";
    /// Building: a build runs.
    pub const BUILDING: &str = "Building";
    /// Not Building: no build runs.
    pub const IDLE: &str = "Idle";
}

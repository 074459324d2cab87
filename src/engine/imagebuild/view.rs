//! What the ImageBuild planner reads: the object ([`View`]) and its build
//! and prune Jobs as observed ([`BuildJob`]); and the Jobs it launches.

use std::time::Duration;

use crate::api::imagebuild::{ImageBuildSpec, ImageBuildStatus};
use crate::engine::job::JobOutcome;
use crate::engine::nested_virt::NestedVirtPlacement;
use crate::engine::settings::Settings;

/// The ImageBuild being planned.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.generation`.
    pub generation: i64,
    /// The desired state.
    pub spec: &'a ImageBuildSpec,
    /// The status as last written.
    pub status: &'a ImageBuildStatus,
    /// The `gantry.dev/rebuild` annotation, when set.
    pub rebuild: Option<&'a str>,
    /// The admin's settings for this namespace.
    pub settings: &'a Settings,
}

/// A build or prune Job as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildJob {
    /// The build's suffix (its label).
    pub suffix: String,
    /// The generation it builds (its label).
    pub generation: i64,
    /// The Job's outcome; `outputs` is what the builder reported.
    pub outcome: JobOutcome,
    /// A prune Job (true) or a build Job.
    pub prune: bool,
    /// The `gantry.dev/rebuild` request this build answered (its annotation).
    pub rebuild_request: Option<String>,
    /// The reference it builds (its `gantry.dev/image` annotation).
    pub image: Option<String>,
}

/// What the planner observed: the build and prune Jobs the ImageBuild
/// controls.
pub type Observed = [BuildJob];

/// One build to start.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildLaunch {
    /// The ImageBuild's name.
    pub build: String,
    /// The Job's name.
    pub job_name: String,
    /// The unique suffix.
    pub suffix: String,
    /// The generation built.
    pub generation: i64,
    /// The full reference to push: `output:suffix`.
    pub image: String,
    /// Deadline of the build, Pending time included.
    pub timeout: Option<Duration>,
    /// Virtualization for the builder, when asked for and allowed.
    pub nested_virt: Option<NestedVirtPlacement>,
    /// The `gantry.dev/rebuild` request this build answers, recorded on the
    /// Job so that adopting it also marks the request handled.
    pub rebuild_request: Option<String>,
}

/// The prune Job of an obsolete image.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneLaunch {
    /// The ImageBuild's name.
    pub build: String,
    /// The Job's name.
    pub job_name: String,
    /// The suffix of the build whose image is deleted.
    pub suffix: String,
    /// The reference to delete.
    pub image: String,
    /// Its digest.
    pub digest: Option<String>,
}

//! The custom resources Gantry reconciles, API group `gantry.dev/v1alpha1`.
//!
//! Doc comments on these types become the `kubectl explain` text of the CRDs,
//! so they are written for the user who reads them there.

pub mod common;
pub mod imagebuild;
pub mod katainstall;
pub mod pipelinerun;

pub use imagebuild::{ImageBuild, ImageBuildSpec, ImageBuildStatus};
pub use katainstall::{KataInstall, KataInstallSpec, KataInstallStatus};
pub use pipelinerun::{PipelineRun, PipelineRunSpec, PipelineRunStatus};

/// The API group of every Gantry kind.
pub const GROUP: &str = "gantry.dev";
/// Prefix for Gantry's labels and annotations.
pub const LABEL_PREFIX: &str = "gantry.dev/";
/// The one field manager Gantry uses for server-side apply.
pub const FIELD_MANAGER: &str = "gantry";

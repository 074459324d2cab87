//! Old paths of what moved into [`super::pipelinerun`] or the shared kit,
//! kept while the ImageBuild and KataInstall code still uses them (issue
//! 10). Each re-export names its new home; delete this file once nothing
//! imports from `engine::{planner, observed, validate, launch}`.

/// Was the PipelineRun planner.
pub mod planner {
    pub use crate::engine::job::TIMEOUT_GRACE;
    pub use crate::engine::note::Note;
}

/// Was the PipelineRun view and the Job outcomes.
pub mod observed {
    pub use crate::engine::job::{JobOutcome, JobState};
    pub use crate::engine::refusal::Refusal;
    pub use crate::engine::settings::Settings;
}

/// Was the PipelineRun validation.
pub mod validate {
    pub use crate::engine::naming::is_dns_label;
    pub use crate::engine::spec_error::SpecError;
}

/// Was the PipelineRun stage launch.
pub mod launch {
    pub use crate::engine::nested_virt::NestedVirtPlacement;
    pub use crate::engine::outputs::OUTPUTS_PATH;
}

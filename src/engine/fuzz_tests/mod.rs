//! Arbitrary specs, statuses and observations through validation and the
//! three planners (PipelineRun, ImageBuild, KataInstall): no panic, no Job
//! for an invalid spec, and a status that stays far below etcd's object
//! limit whatever a user (or a stage) wrote.

mod imagebuild;
mod pipelinerun;

//! What a stage does: run a Job, keep a service up, or wait for another
//! Gantry object; and the outputs each kind provides.

use crate::api::pipelinerun::Stage;

/// The outputs of an `imageBuild` stage.
pub const IMAGE_BUILD_OUTPUTS: [&str; 2] = ["image", "digest"];
/// The outputs of a `service` stage.
pub const SERVICE_OUTPUTS: [&str; 1] = ["addresses"];
/// The outputs of a `kataInstall` stage.
pub const KATA_INSTALL_OUTPUTS: [&str; 1] = ["runtimeClass"];

/// The kinds of stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind<'a> {
    /// A Job that runs to completion.
    Job,
    /// Pods that stay up while the stages that need them run.
    Service { replicas: u32 },
    /// Waits for an ImageBuild (same namespace) to be Ready.
    ImageBuild { name: &'a str },
    /// Waits for a KataInstall to be Installed and Verified.
    KataInstall { name: &'a str },
}

impl StageKind<'_> {
    /// Whether the stage waits for another object instead of running pods.
    pub fn is_reference(self) -> bool {
        matches!(self, StageKind::ImageBuild { .. } | StageKind::KataInstall { .. })
    }
}

/// The kind of `stage` (validation rejects stages that set more than one).
pub fn stage_kind(stage: &Stage) -> StageKind<'_> {
    if let Some(build) = &stage.image_build {
        StageKind::ImageBuild { name: &build.name }
    } else if let Some(install) = &stage.kata_install {
        StageKind::KataInstall { name: &install.name }
    } else if let Some(service) = &stage.service {
        StageKind::Service { replicas: service.replicas }
    } else {
        StageKind::Job
    }
}

/// Whether `stage` provides the output `name` to later stages: the declared
/// ones for Job stages, fixed ones for the other kinds.
pub fn provides_output(stage: &Stage, name: &str) -> bool {
    match stage_kind(stage) {
        StageKind::Job => stage.outputs.iter().any(|o| o == name),
        StageKind::Service { .. } => SERVICE_OUTPUTS.contains(&name),
        StageKind::ImageBuild { .. } => IMAGE_BUILD_OUTPUTS.contains(&name),
        StageKind::KataInstall { .. } => KATA_INSTALL_OUTPUTS.contains(&name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::pipelinerun::{ObjectRef, ServiceStage};

    #[test]
    fn each_kind_provides_its_own_outputs() {
        let mut job = Stage { name: "sdk".into(), outputs: vec!["image".into()], ..Default::default() };
        assert_eq!(stage_kind(&job), StageKind::Job);
        assert!(provides_output(&job, "image") && !provides_output(&job, "digest"));
        job.image_build = Some(ObjectRef { name: "sdk-image".into() });
        assert_eq!(stage_kind(&job), StageKind::ImageBuild { name: "sdk-image" });
        assert!(provides_output(&job, "digest"));
        let service = Stage {
            name: "cluster".into(),
            service: Some(ServiceStage { replicas: 3, readiness_probe: None }),
            ..Default::default()
        };
        assert_eq!(stage_kind(&service), StageKind::Service { replicas: 3 });
        assert!(provides_output(&service, "addresses") && !provides_output(&service, "image"));
        let kata =
            Stage { name: "kata".into(), kata_install: Some(ObjectRef { name: "k".into() }), ..Default::default() };
        assert!(stage_kind(&kata).is_reference());
        assert!(provides_output(&kata, "runtimeClass"));
    }
}

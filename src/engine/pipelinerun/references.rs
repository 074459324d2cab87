//! How a PipelineRun stage sees the Gantry object it waits for: ready (with
//! the outputs it hands on), failed, or not yet. Pure.

use std::collections::BTreeMap;

use crate::api::imagebuild::{BuildPhase, Lifecycle};
use crate::api::{ImageBuild, KataInstall};

/// Where a referenced object stands for the stage that waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Referenced {
    /// Not ready yet; why.
    Waiting(String),
    /// Ready; the stage's outputs.
    Ready(BTreeMap<String, String>),
    /// It failed; the stage fails with this message.
    Failed(String),
}

fn condition<'a>(
    conditions: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// An ImageBuild is ready when its current spec built successfully: a
/// stage never gets the image of an older spec while a rebuild runs.
pub fn image_build_state(build: &ImageBuild) -> Referenced {
    let name = build.metadata.name.as_deref().unwrap_or_default();
    let Some(status) = &build.status else { return Referenced::Waiting(format!("ImageBuild {name} has not started")) };
    let current = status.observed_generation == build.metadata.generation;
    let latest = status.builds.last();
    let latest_is_current = latest.is_some_and(|b| b.generation == build.metadata.generation);
    match (status.phase, &status.latest_image) {
        _ if !current => Referenced::Waiting(format!("ImageBuild {name} has not seen its latest spec yet")),
        _ if status.lifecycle == Some(Lifecycle::Pruned) => {
            Referenced::Failed(format!("the image of ImageBuild {name} was pruned; annotate gantry.dev/rebuild"))
        }
        (Some(BuildPhase::Ready), Some(image)) if latest_is_current => {
            let mut outputs = BTreeMap::from([("image".to_string(), image.clone())]);
            outputs.insert("digest".into(), status.digest.clone().unwrap_or_default());
            Referenced::Ready(outputs)
        }
        (Some(BuildPhase::Failed), _) if latest_is_current || status.builds.is_empty() => {
            let why = condition(&status.conditions, "Ready")
                .filter(|c| c.reason == "InvalidSpec")
                .map(|c| c.message.clone())
                .or_else(|| latest.and_then(|b| b.message.clone()))
                .unwrap_or_else(|| "failed".into());
            Referenced::Failed(format!("ImageBuild {name} failed: {why}"))
        }
        (phase, _) => {
            let phase = phase.map_or("Pending".to_string(), |p| format!("{p:?}"));
            Referenced::Waiting(format!("waiting for ImageBuild {name} ({phase})"))
        }
    }
}

/// A KataInstall is ready when it is Installed and Verified for its
/// current spec; a failed smoke test fails the stage.
pub fn kata_install_state(install: &KataInstall) -> Referenced {
    let name = install.metadata.name.as_deref().unwrap_or_default();
    let Some(status) = &install.status else {
        return Referenced::Waiting(format!("KataInstall {name} has not started"));
    };
    if status.observed_generation != install.metadata.generation {
        return Referenced::Waiting(format!("KataInstall {name} has not seen its latest spec yet"));
    }
    let installed = condition(&status.conditions, crate::engine::katainstall::CONDITION_INSTALLED);
    let verified = condition(&status.conditions, crate::engine::katainstall::CONDITION_VERIFIED);
    match (installed.map(|c| c.status.as_str()), verified.map(|c| c.status.as_str())) {
        (Some("True"), Some("True")) => {
            let shim = install.spec.default_shim.clone().or_else(|| install.spec.shims.first().cloned());
            let class = shim.map(|s| format!("kata-{s}")).unwrap_or_default();
            Referenced::Ready(BTreeMap::from([("runtimeClass".to_string(), class)]))
        }
        (_, Some("False")) => Referenced::Failed(format!(
            "KataInstall {name} is not verified: {}",
            verified.map(|c| c.message.as_str()).unwrap_or_default()
        )),
        _ => {
            let phase = status.phase.map_or("Pending".to_string(), |p| format!("{p:?}"));
            Referenced::Waiting(format!("waiting for KataInstall {name} ({phase})"))
        }
    }
}

/// The ImageBuilds whose latest image is `image`: a stage that runs it
/// uses them.
pub fn builds_with_image<'a>(builds: &'a [ImageBuild], image: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    builds.iter().filter_map(move |b| {
        let latest = b.status.as_ref()?.latest_image.as_deref()?;
        (latest == image).then_some(b.metadata.name.as_deref()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::imagebuild::{BuildRecord, BuildRecordPhase, ImageBuildStatus};

    fn build(generation: i64, status: ImageBuildStatus) -> ImageBuild {
        let mut b = ImageBuild::new("sdk", Default::default());
        b.metadata.generation = Some(generation);
        b.status = Some(status);
        b
    }

    fn record(phase: BuildRecordPhase, generation: i64) -> BuildRecord {
        BuildRecord { suffix: "c1".into(), phase, generation: Some(generation), ..Default::default() }
    }

    #[test]
    fn a_ready_build_of_the_current_spec_hands_on_image_and_digest() {
        let status = ImageBuildStatus {
            observed_generation: Some(2),
            phase: Some(BuildPhase::Ready),
            latest_image: Some("reg/sdk:c1".into()),
            digest: Some("sha256:ab".into()),
            builds: vec![record(BuildRecordPhase::Ready, 2)],
            ..Default::default()
        };
        let Referenced::Ready(outputs) = image_build_state(&build(2, status.clone())) else { panic!() };
        assert_eq!(outputs["image"], "reg/sdk:c1");
        assert_eq!(outputs["digest"], "sha256:ab");
        // The spec changed and the controller has not caught up: wait.
        assert!(matches!(image_build_state(&build(3, status)), Referenced::Waiting(_)));
    }

    #[test]
    fn a_rebuild_in_progress_waits_and_a_failed_one_fails() {
        let building = ImageBuildStatus {
            observed_generation: Some(2),
            phase: Some(BuildPhase::Building),
            latest_image: Some("reg/sdk:c0".into()),
            builds: vec![record(BuildRecordPhase::Ready, 1), record(BuildRecordPhase::Building, 2)],
            ..Default::default()
        };
        let Referenced::Waiting(why) = image_build_state(&build(2, building)) else { panic!() };
        assert!(why.contains("Building"), "{why}");
        let mut failed = record(BuildRecordPhase::Failed, 2);
        failed.message = Some("container build in pod p exited with code 1".into());
        let status = ImageBuildStatus {
            observed_generation: Some(2),
            phase: Some(BuildPhase::Failed),
            builds: vec![failed],
            ..Default::default()
        };
        let Referenced::Failed(why) = image_build_state(&build(2, status)) else { panic!() };
        assert!(why.contains("pod p"), "{why}");
    }

    #[test]
    fn a_stage_running_the_latest_image_uses_its_build() {
        let with = |name: &str, image: &str| {
            let mut b = build(1, ImageBuildStatus { latest_image: Some(image.into()), ..Default::default() });
            b.metadata.name = Some(name.into());
            b
        };
        let builds = [with("sdk", "reg/sdk:c1"), with("tools", "reg/tools:c9"), build(1, Default::default())];
        assert_eq!(builds_with_image(&builds, "reg/sdk:c1").collect::<Vec<_>>(), ["sdk"]);
        assert_eq!(builds_with_image(&builds, "reg/sdk:c0").count(), 0, "an older image is not the latest");
    }

    #[test]
    fn a_kata_install_is_ready_when_installed_and_verified() {
        let mut install = KataInstall::new("kata", Default::default());
        install.spec.shims = vec!["qemu".into()];
        install.metadata.generation = Some(1);
        let c = |type_: &str, status: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "R".into(),
            message: "smoke failed".into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
            observed_generation: Some(1),
        };
        install.status = Some(crate::api::katainstall::KataInstallStatus {
            observed_generation: Some(1),
            conditions: vec![c("Installed", "True"), c("Verified", "Unknown")],
            ..Default::default()
        });
        assert!(matches!(kata_install_state(&install), Referenced::Waiting(_)));
        install.status.as_mut().unwrap().conditions[1] = c("Verified", "True");
        let Referenced::Ready(outputs) = kata_install_state(&install) else { panic!() };
        assert_eq!(outputs["runtimeClass"], "kata-qemu");
        install.status.as_mut().unwrap().conditions[1] = c("Verified", "False");
        assert!(matches!(kata_install_state(&install), Referenced::Failed(m) if m.contains("smoke failed")));
    }
}

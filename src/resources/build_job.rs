//! The Job of one build of an ImageBuild.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::job::{place_nested_virt, single_attempt_job};
use crate::api::imagebuild::ImageBuildSpec;
use crate::engine::imagebuild::{BuildLaunch, PruneLaunch};
use crate::engine::naming::{
    run_label, ANNOTATION_IMAGE, ANNOTATION_REBUILD, LABEL_GENERATION, LABEL_IMAGE_BUILD, LABEL_MANAGED_BY,
    LABEL_PRUNE, LABEL_SUFFIX,
};
use crate::engine::outputs::OUTPUTS_PATH;

/// Name of the builder's container.
pub const BUILD_CONTAINER: &str = "build";
/// Name of the pruner's container.
pub const PRUNE_CONTAINER: &str = "prune";

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

/// Builds the Job: the builder container with `GANTRY_IMAGE`,
/// `GANTRY_IMAGE_SUFFIX`, `GANTRY_OUTPUTS` and the source in its environment;
/// it reports `digest=sha256:...` (and `manifest=...`) to `$GANTRY_OUTPUTS`.
pub fn build_job(launch: &BuildLaunch, spec: &ImageBuildSpec, namespace: &str, owner: OwnerReference) -> Job {
    let labels = BTreeMap::from([
        (LABEL_IMAGE_BUILD.to_string(), run_label(&launch.build)),
        (LABEL_SUFFIX.to_string(), launch.suffix.clone()),
        (LABEL_GENERATION.to_string(), launch.generation.to_string()),
        (LABEL_MANAGED_BY.to_string(), "gantry".to_string()),
    ]);
    let source = spec.source.clone().unwrap_or_default();
    let mut vars = vec![
        env("GANTRY_IMAGE", &launch.image),
        env("GANTRY_IMAGE_SUFFIX", &launch.suffix),
        env("GANTRY_IMAGE_KIND", format!("{:?}", spec.image_kind).to_lowercase()),
        env("GANTRY_OUTPUTS", OUTPUTS_PATH),
        env("GANTRY_SOURCE_REPO", source.repo.unwrap_or_default()),
        env("GANTRY_SOURCE_REVISION", source.revision.unwrap_or_default()),
        env("GANTRY_SOURCE_CONTEXT_DIR", source.context_dir.unwrap_or_default()),
    ];
    vars.extend(spec.builder.env.iter().cloned());
    let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
    let mut resources = spec.builder.resources.clone();
    let node_selector =
        launch.nested_virt.as_ref().map(|virt| place_nested_virt(virt, &mut resources, &mut volumes, &mut mounts));
    let builder = &spec.builder;
    let pod = PodSpec {
        service_account_name: spec.service_account_name.clone(),
        node_selector,
        volumes: (!volumes.is_empty()).then_some(volumes),
        containers: vec![Container {
            name: BUILD_CONTAINER.into(),
            image: builder.image.clone(),
            command: (!builder.command.is_empty()).then(|| builder.command.clone()),
            args: (!builder.args.is_empty()).then(|| builder.args.clone()),
            env: Some(vars),
            working_dir: builder.working_dir.clone(),
            resources,
            volume_mounts: (!mounts.is_empty()).then_some(mounts),
            termination_message_path: Some(OUTPUTS_PATH.into()),
            termination_message_policy: Some("File".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut job = single_attempt_job(&launch.job_name, namespace, labels, owner, launch.timeout, pod);
    let mut annotations = BTreeMap::from([(ANNOTATION_IMAGE.to_string(), launch.image.clone())]);
    if let Some(request) = &launch.rebuild_request {
        annotations.insert(ANNOTATION_REBUILD.to_string(), request.clone());
    }
    job.metadata.annotations = Some(annotations);
    job
}

/// Builds the prune Job: `spec.retention.pruner` with `GANTRY_IMAGE` (the
/// reference to delete) and `GANTRY_IMAGE_DIGEST`, as the builder's
/// ServiceAccount. Validation guarantees the pruner is set.
pub fn prune_job(launch: &PruneLaunch, spec: &ImageBuildSpec, namespace: &str, owner: OwnerReference) -> Job {
    let labels = BTreeMap::from([
        (LABEL_IMAGE_BUILD.to_string(), run_label(&launch.build)),
        (LABEL_SUFFIX.to_string(), launch.suffix.clone()),
        (LABEL_PRUNE.to_string(), "true".to_string()),
        (LABEL_MANAGED_BY.to_string(), "gantry".to_string()),
    ]);
    let pruner = spec.retention.pruner.clone().unwrap_or_default();
    let mut vars =
        vec![env("GANTRY_IMAGE", &launch.image), env("GANTRY_IMAGE_DIGEST", launch.digest.clone().unwrap_or_default())];
    vars.extend(pruner.env.iter().cloned());
    let pod = PodSpec {
        service_account_name: spec.service_account_name.clone(),
        containers: vec![Container {
            name: PRUNE_CONTAINER.into(),
            image: pruner.image.clone(),
            command: (!pruner.command.is_empty()).then(|| pruner.command.clone()),
            args: (!pruner.args.is_empty()).then(|| pruner.args.clone()),
            env: Some(vars),
            working_dir: pruner.working_dir.clone(),
            resources: pruner.resources.clone(),
            termination_message_policy: Some("FallbackToLogsOnError".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    single_attempt_job(&launch.job_name, namespace, labels, owner, None, pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::ContainerRun;

    #[test]
    fn the_builder_gets_its_reference_suffix_and_output_file() {
        let spec = ImageBuildSpec {
            builder: ContainerRun { image: Some("builder:1".into()), ..Default::default() },
            output: "reg:5000/app".into(),
            service_account_name: Some("builder".into()),
            ..Default::default()
        };
        let launch = BuildLaunch {
            build: "app".into(),
            job_name: "app-c20261121t150000z".into(),
            suffix: "c20261121t150000z".into(),
            generation: 3,
            image: "reg:5000/app:c20261121t150000z".into(),
            timeout: None,
            nested_virt: None,
            rebuild_request: Some("weekly-1".into()),
        };
        let owner = OwnerReference { name: "app".into(), uid: "u".into(), ..Default::default() };
        let job = build_job(&launch, &spec, "ci", owner);
        assert_eq!(job.spec.as_ref().unwrap().backoff_limit, Some(0), "one attempt per Job");
        let labels = job.metadata.labels.clone().unwrap();
        assert_eq!(labels[LABEL_GENERATION], "3");
        assert_eq!(labels[LABEL_SUFFIX], "c20261121t150000z");
        let annotations = job.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[ANNOTATION_REBUILD], "weekly-1", "the request it answers, for adoption");
        assert_eq!(annotations[ANNOTATION_IMAGE], "reg:5000/app:c20261121t150000z");
        let pod = job.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.service_account_name.as_deref(), Some("builder"));
        let env = pod.containers[0].env.clone().unwrap();
        let get = |n: &str| env.iter().find(|e| e.name == n).and_then(|e| e.value.clone());
        assert_eq!(get("GANTRY_IMAGE").as_deref(), Some("reg:5000/app:c20261121t150000z"));
        assert_eq!(get("GANTRY_IMAGE_KIND").as_deref(), Some("container"));
        assert_eq!(pod.containers[0].termination_message_path.as_deref(), Some(OUTPUTS_PATH));
    }

    #[test]
    fn the_pruner_gets_the_reference_and_digest_to_delete() {
        let spec = ImageBuildSpec {
            output: "reg:5000/app".into(),
            retention: crate::api::imagebuild::Retention {
                pruner: Some(ContainerRun {
                    image: Some("pruner:1".into()),
                    command: vec!["gantry-prune-image".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let launch = PruneLaunch {
            build: "app".into(),
            job_name: "app-prune-c1".into(),
            suffix: "c1".into(),
            image: "reg:5000/app:c1".into(),
            digest: Some("sha256:ab".into()),
        };
        let owner = OwnerReference { name: "app".into(), uid: "u".into(), ..Default::default() };
        let job = prune_job(&launch, &spec, "ci", owner);
        assert_eq!(job.metadata.labels.as_ref().unwrap()[LABEL_PRUNE], "true");
        let pod = job.spec.unwrap().template.spec.unwrap();
        let container = &pod.containers[0];
        assert_eq!(container.name, PRUNE_CONTAINER);
        assert_eq!(container.image.as_deref(), Some("pruner:1"));
        let env = container.env.clone().unwrap();
        assert!(env.iter().any(|e| e.name == "GANTRY_IMAGE" && e.value.as_deref() == Some("reg:5000/app:c1")));
        assert!(env.iter().any(|e| e.name == "GANTRY_IMAGE_DIGEST" && e.value.as_deref() == Some("sha256:ab")));
    }
}

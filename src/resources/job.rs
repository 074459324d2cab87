//! The Job for one attempt of one PipelineRun stage.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, HostPathVolumeSource, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use k8s_openapi::api::core::v1::ResourceRequirements;

use crate::engine::naming::{run_label, LABEL_ATTEMPT, LABEL_MANAGED_BY, LABEL_RUN, LABEL_STAGE};
use crate::engine::nested_virt::NestedVirtPlacement;
use crate::engine::outputs::OUTPUTS_PATH;
use crate::engine::pipelinerun::launch::StageLaunch;

/// Name of the stage's container in its pod.
pub const STAGE_CONTAINER: &str = "stage";
/// Where the run's workspace is mounted in every stage.
pub const WORKSPACE_MOUNT: &str = "/workspace";
/// The KVM device, for nested virtualization in hostPath mode.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// Labels on a stage Job and its pods.
pub fn stage_labels(launch: &StageLaunch) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_RUN.to_string(), run_label(&launch.run)),
        (LABEL_STAGE.to_string(), launch.stage.clone()),
        (LABEL_ATTEMPT.to_string(), launch.attempt.to_string()),
        (LABEL_MANAGED_BY.to_string(), "gantry".to_string()),
    ])
}

/// Gives a pod virtualization the way the operator's policy says: one unit
/// of the device-plugin resource, or the node's `/dev/kvm` as a char-device
/// hostPath (never `privileged`). Returns the node selector to use.
pub fn place_nested_virt(
    virt: &NestedVirtPlacement,
    resources: &mut Option<ResourceRequirements>,
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
) -> BTreeMap<String, String> {
    match &virt.device_resource {
        Some(resource) => {
            let r = resources.get_or_insert_with(Default::default);
            r.limits.get_or_insert_with(Default::default).insert(resource.clone(), Quantity("1".into()));
        }
        None => {
            volumes.push(Volume {
                name: "kvm".into(),
                host_path: Some(HostPathVolumeSource { path: KVM_DEVICE.into(), type_: Some("CharDevice".into()) }),
                ..Default::default()
            });
            mounts.push(VolumeMount { name: "kvm".into(), mount_path: KVM_DEVICE.into(), ..Default::default() });
        }
    }
    virt.node_selector.clone()
}

/// Builds the Job. Gantry retries by creating a new Job per attempt, so the
/// Job itself never retries (`backoffLimit: 0`) and every attempt keeps its
/// own pod and log.
pub fn stage_job(launch: &StageLaunch, namespace: &str, owner: OwnerReference) -> Job {
    let labels = stage_labels(launch);
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let Some(claim) = &launch.workspace_claim {
        volumes.push(Volume {
            name: "workspace".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount { name: "workspace".into(), mount_path: WORKSPACE_MOUNT.into(), ..Default::default() });
    }
    let mut resources = launch.resources.clone();
    let node_selector =
        launch.nested_virt.as_ref().map(|virt| place_nested_virt(virt, &mut resources, &mut volumes, &mut mounts));
    let (volumes, mounts) = ((!volumes.is_empty()).then_some(volumes), (!mounts.is_empty()).then_some(mounts));
    let container = Container {
        name: STAGE_CONTAINER.into(),
        image: Some(launch.image.clone()),
        command: (!launch.command.is_empty()).then(|| launch.command.clone()),
        args: (!launch.args.is_empty()).then(|| launch.args.clone()),
        env: Some(launch.env.clone()),
        working_dir: launch.working_dir.clone(),
        resources,
        termination_message_path: Some(OUTPUTS_PATH.into()),
        termination_message_policy: Some("File".into()),
        volume_mounts: mounts,
        readiness_probe: launch.service.as_ref().and_then(|s| s.readiness_probe.clone()),
        ..Default::default()
    };
    let pod = PodSpec {
        service_account_name: launch.service_account_name.clone(),
        containers: vec![container],
        volumes,
        node_selector,
        ..Default::default()
    };
    let mut job = single_attempt_job(&launch.job_name, namespace, labels, owner, launch.timeout, pod);
    if let (Some(service), Some(spec)) = (&launch.service, job.spec.as_mut()) {
        // N pods at once; the stage tears them down by deleting the Job.
        let replicas = service.replicas as i32;
        (spec.parallelism, spec.completions) = (Some(replicas), Some(replicas));
    }
    job
}

/// A Job that runs `pod` once: no Job-level retries (`backoffLimit: 0`,
/// `restartPolicy: Never`; Gantry retries with new Jobs), an optional
/// deadline, the labels on the Job and its pods, and `owner` as controller.
pub fn single_attempt_job(
    name: &str,
    namespace: &str,
    labels: BTreeMap<String, String>,
    owner: OwnerReference,
    timeout: Option<std::time::Duration>,
    pod: PodSpec,
) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: timeout.map(|t| t.as_secs().max(1) as i64),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec { restart_policy: Some("Never".into()), ..pod }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use k8s_openapi::api::core::v1::EnvVar;

    fn launch() -> StageLaunch {
        StageLaunch {
            run: "nightly".into(),
            stage: "sdk".into(),
            attempt: 2,
            job_name: "nightly-sdk-2".into(),
            image: "local/busybox:1".into(),
            command: vec!["sh".into(), "-c".into()],
            args: vec!["echo hi".into()],
            env: vec![EnvVar { name: "GANTRY_RUN".into(), value: Some("nightly".into()), value_from: None }],
            working_dir: None,
            resources: None,
            service_account_name: Some("builder".into()),
            timeout: Some(Duration::from_secs(90)),
            workspace_claim: Some("nightly-workspace".into()),
            nested_virt: None,
            service: None,
        }
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "gantry.dev/v1alpha1".into(),
            kind: "PipelineRun".into(),
            name: "nightly".into(),
            uid: "u-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn the_job_runs_the_stage_once_as_its_service_account() {
        let job = stage_job(&launch(), "ci", owner());
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(90));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.service_account_name.as_deref(), Some("builder"));
        let c = &pod.containers[0];
        assert_eq!(c.termination_message_path.as_deref(), Some(OUTPUTS_PATH));
        assert!(c.security_context.is_none(), "nothing privileged is asked for");
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].mount_path, WORKSPACE_MOUNT);
        assert_eq!(pod.volumes.unwrap()[0].persistent_volume_claim.as_ref().unwrap().claim_name, "nightly-workspace");
    }

    #[test]
    fn a_service_stage_runs_its_replicas_at_once_with_its_readiness_probe() {
        let mut l = launch();
        let probe = k8s_openapi::api::core::v1::Probe { period_seconds: Some(2), ..Default::default() };
        l.service = Some(crate::api::pipelinerun::ServiceStage { replicas: 3, readiness_probe: Some(probe.clone()) });
        let spec = stage_job(&l, "ci", owner()).spec.unwrap();
        assert_eq!((spec.parallelism, spec.completions), (Some(3), Some(3)));
        assert_eq!(spec.template.spec.unwrap().containers[0].readiness_probe, Some(probe));
        let plain = stage_job(&launch(), "ci", owner()).spec.unwrap();
        assert_eq!((plain.parallelism, plain.completions), (None, None));
    }

    #[test]
    fn nested_virt_uses_the_policys_node_selector_and_device_never_privilege() {
        use crate::engine::nested_virt::NestedVirtPlacement;
        let selector = std::collections::BTreeMap::from([("kvm".to_string(), "true".to_string())]);
        let mut l = launch();
        l.nested_virt = Some(NestedVirtPlacement {
            node_selector: selector.clone(),
            device_resource: Some("devices.kubevirt.io/kvm".into()),
        });
        let pod = stage_job(&l, "ci", owner()).spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.node_selector, Some(selector.clone()));
        let limits = pod.containers[0].resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["devices.kubevirt.io/kvm"], Quantity("1".into()));
        assert!(pod.volumes.unwrap().iter().all(|v| v.host_path.is_none()), "device-plugin mode mounts no host path");

        l.nested_virt = Some(NestedVirtPlacement { node_selector: selector, device_resource: None });
        let pod = stage_job(&l, "ci", owner()).spec.unwrap().template.spec.unwrap();
        let kvm = pod.volumes.unwrap().into_iter().find(|v| v.name == "kvm").unwrap().host_path.unwrap();
        assert_eq!((kvm.path.as_str(), kvm.type_.as_deref()), ("/dev/kvm", Some("CharDevice")));
        assert!(pod.containers[0].security_context.is_none(), "no privileged container");
    }

    #[test]
    fn the_job_and_its_pods_carry_run_stage_and_attempt_labels_and_the_owner() {
        let job = stage_job(&launch(), "ci", owner());
        let labels = job.metadata.labels.unwrap();
        assert_eq!(labels[LABEL_RUN], "nightly");
        assert_eq!(labels[LABEL_STAGE], "sdk");
        assert_eq!(labels[LABEL_ATTEMPT], "2");
        let pod_labels = job.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        assert_eq!(pod_labels, labels);
        assert_eq!(job.metadata.owner_references.unwrap()[0].uid, "u-1");
        assert_eq!(job.metadata.namespace.as_deref(), Some("ci"));
    }
}

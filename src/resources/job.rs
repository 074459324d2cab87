//! The Job for one attempt of one PipelineRun stage.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::engine::launch::{StageLaunch, OUTPUTS_PATH};
use crate::engine::naming::{run_label, LABEL_ATTEMPT, LABEL_MANAGED_BY, LABEL_RUN, LABEL_STAGE};

/// Name of the stage's container in its pod.
pub const STAGE_CONTAINER: &str = "stage";
/// Where the run's workspace is mounted in every stage.
pub const WORKSPACE_MOUNT: &str = "/workspace";

/// Labels on a stage Job and its pods.
pub fn stage_labels(launch: &StageLaunch) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_RUN.to_string(), run_label(&launch.run)),
        (LABEL_STAGE.to_string(), launch.stage.clone()),
        (LABEL_ATTEMPT.to_string(), launch.attempt.to_string()),
        (LABEL_MANAGED_BY.to_string(), "gantry".to_string()),
    ])
}

/// Builds the Job. Gantry retries by creating a new Job per attempt, so the
/// Job itself never retries (`backoffLimit: 0`) and every attempt keeps its
/// own pod and log.
pub fn stage_job(launch: &StageLaunch, namespace: &str, owner: OwnerReference) -> Job {
    let labels = stage_labels(launch);
    let (volumes, mounts) = match &launch.workspace_claim {
        Some(claim) => (
            Some(vec![Volume {
                name: "workspace".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: None,
                }),
                ..Default::default()
            }]),
            Some(vec![VolumeMount {
                name: "workspace".into(),
                mount_path: WORKSPACE_MOUNT.into(),
                ..Default::default()
            }]),
        ),
        None => (None, None),
    };
    let container = Container {
        name: STAGE_CONTAINER.into(),
        image: Some(launch.image.clone()),
        command: (!launch.command.is_empty()).then(|| launch.command.clone()),
        args: (!launch.args.is_empty()).then(|| launch.args.clone()),
        env: Some(launch.env.clone()),
        working_dir: launch.working_dir.clone(),
        resources: launch.resources.clone(),
        termination_message_path: Some(OUTPUTS_PATH.into()),
        termination_message_policy: Some("File".into()),
        volume_mounts: mounts,
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(launch.job_name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: launch.timeout.map(|t| t.as_secs().max(1) as i64),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: launch.service_account_name.clone(),
                    containers: vec![container],
                    volumes,
                    ..Default::default()
                }),
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

//! What the caches keep of an object: only what a reconcile reads. At 2000
//! runs the operator caches some 10 000 Jobs and as many pods; their specs
//! (pod templates, env, volumes) and server-side apply's `managedFields`
//! are most of each object and never read from the cache.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use kube::Resource;

use crate::engine::naming::LABEL_RUN;

/// The prefix of the labels Gantry sets and reads.
const GANTRY_LABELS: &str = "gantry.dev/";

/// The annotation `kubectl apply` keeps a copy of the whole object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops server-side apply's bookkeeping, often the larger part of an
/// object, and the copy of the object that client-side `kubectl apply`
/// keeps in an annotation (as large as the spec again): neither is read by
/// a reconcile.
pub fn without_bookkeeping<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// A stage Job as the PipelineRun reconcile reads it: metadata (Gantry's
/// labels, owner, creation) and status; the spec stays on the API server.
pub fn lean_job(job: &mut Job) {
    without_bookkeeping(job);
    job.spec = None;
    if let Some(labels) = job.metadata.labels.as_mut() {
        labels.retain(|key, _| key.starts_with(GANTRY_LABELS));
    }
}

/// A stage pod as the PipelineRun reconcile reads it: name, owner (its Job,
/// by UID) and the run label it is grouped by; its phase, IP, Ready
/// condition and its containers' states (the termination message carries
/// the stage's outputs).
pub fn lean_pod(pod: &mut Pod) {
    without_bookkeeping(pod);
    let meta = &mut pod.metadata;
    meta.annotations = None;
    meta.generate_name = None;
    meta.resource_version = None;
    if let Some(labels) = meta.labels.as_mut() {
        labels.retain(|key, _| key == LABEL_RUN);
    }
    pod.spec = None;
    let Some(status) = pod.status.take() else { return };
    let ready = status.conditions.map(|c| c.into_iter().filter(|c| c.type_ == "Ready").collect());
    pod.status = Some(PodStatus {
        phase: status.phase,
        pod_ip: status.pod_ip,
        conditions: ready,
        container_statuses: status.container_statuses.map(|c| c.into_iter().map(lean_container).collect()),
        ..Default::default()
    });
}

fn lean_container(status: ContainerStatus) -> ContainerStatus {
    ContainerStatus { name: status.name, state: status.state, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::jobs::observe_jobs;

    fn job() -> Job {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r-test-1", "uid": "job-uid", "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"gantry.dev/run": "r", "gantry.dev/stage": "test", "gantry.dev/attempt": "1",
                                    "controller-uid": "job-uid", "job-name": "r-test-1"},
                         "managedFields": [{"manager": "gantry", "operation": "Update"}]},
            "spec": {"template": {"spec": {"containers": [{"name": "stage", "image": "busybox",
                                                          "env": [{"name": "A", "value": "x".repeat(2000)}]}]}}},
            "status": {"succeeded": 1, "completionTime": "2026-01-01T00:01:00Z",
                       "conditions": [{"type": "Complete", "status": "True"}]}
        }))
        .unwrap()
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r-test-1-abcde", "uid": "pod-uid",
                         "labels": {"gantry.dev/run": "r", "gantry.dev/stage": "test", "job-name": "r-test-1"},
                         "annotations": {"big": "y".repeat(2000)},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "r-test-1",
                                              "uid": "job-uid", "controller": true}]},
            "spec": {"containers": [{"name": "stage", "image": "busybox"}]},
            "status": {"phase": "Succeeded", "podIP": "10.88.0.7", "hostIP": "192.0.2.2",
                       "conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
                       "containerStatuses": [{"name": "stage", "ready": false, "restartCount": 0,
                                              "image": "busybox", "imageID": "sha256:abc",
                                              "state": {"terminated": {"exitCode": 0, "message": "version=1\n"}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_lean_job_and_pod_are_small_and_read_the_same() {
        let (mut lean_j, mut lean_p) = (job(), pod());
        lean_job(&mut lean_j);
        lean_pod(&mut lean_p);
        let lean_p_labels = lean_p.metadata.labels.clone().unwrap();
        assert!(json_len(&lean_j) < json_len(&job()) / 4, "the Job's spec is dropped");
        assert!(json_len(&lean_p) < json_len(&pod()) / 4, "the pod's spec and annotations are dropped");
        let (full_jobs, lean_jobs) = ([job()], [lean_j]);
        let full = observe_jobs(&full_jobs, &[pod()], "stage");
        let lean = observe_jobs(&lean_jobs, &[lean_p], "stage");
        assert_eq!(format!("{:?}", full[0].1), format!("{:?}", lean[0].1), "the same outcome from either");
        assert_eq!(lean[0].1.outputs.as_deref(), Some("version=1\n"));
        let job_labels: Vec<&String> = lean_jobs[0].metadata.labels.as_ref().unwrap().keys().collect();
        assert_eq!(job_labels, ["gantry.dev/attempt", "gantry.dev/run", "gantry.dev/stage"], "Gantry's labels only");
        let pod_labels: Vec<&String> = lean_p_labels.keys().collect();
        assert_eq!(pod_labels, ["gantry.dev/run"], "the label pods are grouped by");
    }

    fn json_len(object: &impl serde::Serialize) -> usize {
        serde_json::to_vec(object).map(|v| v.len()).unwrap_or(0)
    }
}

//! Maps a run's Jobs to the planner's stage observations. A Job is the
//! run's when the run is its controller (by UID); then its stage and
//! attempt labels say which attempt it is. Jobs that carry the run's
//! labels but another controller are only reported by name. Pure.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::controllers::jobs::observe_jobs;
use crate::controllers::ownership::split_by_owner;
use crate::engine::naming::{LABEL_ATTEMPT, LABEL_STAGE};
use crate::engine::pipelinerun::view::JobObservation;
use crate::resources::job::STAGE_CONTAINER;

/// The run's stage Jobs, one observation each (owned Jobs without stage
/// and attempt labels are ignored), and the names of the listed Jobs it
/// does not own.
pub fn observe_stage_jobs(jobs: Vec<Job>, pods: &[Pod], run_uid: &str) -> (Vec<JobObservation>, BTreeSet<String>) {
    let (owned, foreign) = split_by_owner(jobs, run_uid);
    let observations = observe_jobs(&owned, pods, STAGE_CONTAINER)
        .into_iter()
        .filter_map(|(job, o)| {
            let labels = job.labels();
            Some(JobObservation {
                stage: labels.get(LABEL_STAGE)?.clone(),
                attempt: labels.get(LABEL_ATTEMPT)?.parse().ok()?,
                outcome: o,
            })
        })
        .collect();
    (observations, foreign)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, job_uid: &str, run_uid: Option<&str>) -> Job {
        let refs = run_uid.map(|uid| {
            serde_json::json!([{"apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "name": "nightly",
                                "uid": uid, "controller": true}])
        });
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "uid": job_uid, "ownerReferences": refs,
                         "labels": {"gantry.dev/run": "nightly", "gantry.dev/stage": "sdk", "gantry.dev/attempt": "1"}},
            "status": {"conditions": [{"type": "Complete", "status": "True"}]}
        }))
        .unwrap()
    }

    fn pod(job: &str, job_uid: &str, message: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{job}-abcde"), "labels": {"job-name": job},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job,
                                              "uid": job_uid, "controller": true}]},
            "status": {"containerStatuses": [{
                "name": "stage", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"terminated": {"exitCode": 0, "message": message}}
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn a_job_with_the_runs_labels_but_another_owner_is_not_the_stages() {
        // The orphan of an earlier run named "nightly" (the garbage collector
        // removed its owner reference) and a Job of another object.
        let jobs = vec![
            job("nightly-sdk-1-old00", "job-old", None),
            job("nightly-sdk-1-other", "job-other", Some("uid-someone-else")),
            job("nightly-sdk-1-new00", "job-new", Some("uid-new")),
        ];
        let pods = [
            pod("nightly-sdk-1-old00", "job-old", "version=1\n"),
            pod("nightly-sdk-1-new00", "job-new", "version=2\n"),
        ];
        let (observed, foreign) = observe_stage_jobs(jobs, &pods, "uid-new");
        assert_eq!(observed.len(), 1);
        assert_eq!(observed[0].outcome.name, "nightly-sdk-1-new00");
        assert_eq!(observed[0].outcome.outputs.as_deref(), Some("version=2\n"), "its own pod's outputs");
        assert_eq!(foreign, BTreeSet::from(["nightly-sdk-1-old00".to_string(), "nightly-sdk-1-other".to_string()]));
    }

    #[test]
    fn a_new_run_of_an_orphaned_name_observes_nothing_yet() {
        let (observed, foreign) = observe_stage_jobs(vec![job("nightly-sdk-1-old00", "job-old", None)], &[], "uid-new");
        assert!(observed.is_empty(), "the orphan's success is not the new run's");
        assert_eq!(foreign.len(), 1);
    }
}

//! Maps a run's Jobs to the planner's stage observations (by the stage and
//! attempt labels). Pure.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::controllers::jobs::observe_jobs;
use crate::engine::naming::{LABEL_ATTEMPT, LABEL_STAGE};
use crate::engine::observed::JobObservation;
use crate::resources::job::STAGE_CONTAINER;

/// One observation per stage Job; Jobs without stage and attempt labels are ignored.
pub fn observe_stage_jobs(jobs: &[Job], pods: &[Pod]) -> Vec<JobObservation> {
    observe_jobs(jobs, pods, STAGE_CONTAINER)
        .into_iter()
        .filter_map(|(job, o)| {
            let labels = job.labels();
            Some(JobObservation {
                stage: labels.get(LABEL_STAGE)?.clone(),
                attempt: labels.get(LABEL_ATTEMPT)?.parse().ok()?,
                outcome: o,
            })
        })
        .collect()
}

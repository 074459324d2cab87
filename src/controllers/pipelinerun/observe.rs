//! What a PipelineRun's planner reads, gathered from the cluster: the run
//! itself ([`view`]) and everything around it ([`observe`]): its stage Jobs
//! and their pods, from the watch caches; the ImageBuilds and
//! KataInstalls its stages wait for; the other runs of its concurrency group
//! (from the cache); the last pod Event of failures whose pods are gone; and
//! the logs of finished TAP stages. A Job is the run's when the run is its
//! controller (by UID); then its stage and attempt labels say which attempt
//! it is. Jobs that carry the run's labels but another controller are only
//! reported by name.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use tracing::{debug, warn};

use crate::api::pipelinerun::PipelineRunStatus;
use crate::api::{ImageBuild, KataInstall, PipelineRun};
use crate::controllers::cache::ChildCache;
use crate::controllers::expectations::Expectations;
use crate::controllers::jobs::{finished_but_observed_active, last_pod_warning, observe_jobs};
use crate::controllers::lean::{lean_job, lean_pod};
use crate::controllers::logs::read_log_tail;
use crate::controllers::ownership::split_by_owner;
use crate::controllers::{describe, Error, KubeResultExt};
use crate::engine::conditions::from_k8s_time;
use crate::engine::naming::{
    run_label, ANNOTATION_RERUN, ANNOTATION_SUPERSEDED_BY, LABEL_ATTEMPT, LABEL_RUN, LABEL_STAGE,
};
use crate::engine::pipelinerun::done_jobs::expects_done_job;
use crate::engine::pipelinerun::references::{image_build_state, kata_install_state, Referenced};
use crate::engine::pipelinerun::stage_kind::{stage_kind, StageKind};
use crate::engine::pipelinerun::view::{failures_to_explain, logs_wanted, GroupMember, JobObservation};
use crate::engine::pipelinerun::{Observed, View};
use crate::engine::settings::Settings;
use crate::resources::job::STAGE_CONTAINER;

/// The run as its planner sees it: `name` and `uid` are the run's,
/// `status` its last written status (default for a new run).
pub fn view<'a>(
    run: &'a PipelineRun,
    name: &'a str,
    uid: &'a str,
    status: &'a PipelineRunStatus,
    settings: &'a Settings,
) -> View<'a> {
    let annotations = run.annotations();
    View {
        name,
        uid,
        generation: run.metadata.generation,
        created: run.metadata.creation_timestamp.as_ref().map(from_k8s_time).unwrap_or_else(Utc::now),
        spec: &run.spec,
        status,
        rerun: annotations.get(ANNOTATION_RERUN).map(String::as_str),
        superseded_by: annotations.get(ANNOTATION_SUPERSEDED_BY).map(String::as_str),
        settings,
    }
}

/// The watch caches of stage Jobs and their pods (grouped by the run
/// label), and what reconciles created or deleted that the caches may not
/// show yet.
pub struct Children {
    /// Stage Jobs, by `gantry.dev/run`.
    pub jobs: std::sync::Arc<ChildCache<Job>>,
    /// Their pods, by the same label (the Job template carries it).
    pub pods: std::sync::Arc<ChildCache<Pod>>,
    /// Jobs created or deleted and not yet seen so by the cache.
    pub expectations: Expectations,
}

impl Children {
    /// Stops caching the stage Jobs `done` of `run` and their pods: the
    /// status just written records what they said.
    pub fn forget(&self, namespace: &str, run: &str, done: &[String]) {
        let label = run_label(run);
        self.jobs.forget(namespace, &label, done);
        self.pods.forget(namespace, &label, done);
    }

    /// Whether the caches keep the run's Jobs and pods: not while it is
    /// finished and not asked to rerun (it reads none of them then).
    pub fn keep_children(&self, namespace: &str, run: &str, keep: bool) {
        let label = run_label(run);
        if keep {
            self.jobs.unretire(namespace, &label);
            self.pods.unretire(namespace, &label);
        } else {
            self.jobs.retire(namespace, &label);
            self.pods.retire(namespace, &label);
        }
    }
}

/// Everything the planner needs from the cluster for `view`'s run, or
/// `None` while the caches have not caught up with the operator's own
/// writes (a Job it created that the cache does not show yet, a Job that
/// completed before the cache saw its pod finish): then the run is looked
/// at again shortly, and the Job's watch event wakes it sooner. The label
/// narrows what is read; the owner UID decides what is the run's.
pub async fn observe(
    client: &Client,
    ns: &str,
    run: &PipelineRun,
    view: &View<'_>,
    runs: &Store<PipelineRun>,
    children: &Children,
) -> Result<Option<Observed>, Error> {
    let name = view.name;
    children.jobs.ready().await;
    children.pods.ready().await;
    let label = run_label(name);
    let forgotten = children.jobs.forgotten(ns, &label);
    if !forgotten.is_empty() && expects_done_job(view, |job| forgotten.contains(job)) {
        warn!(run = %name, "the status expects a stage Job the cache dropped (it went back?): reading the run's Jobs again");
        recall(client, ns, &label, children).await?;
    }
    let jobs: Vec<Job> = children.jobs.group(ns, &label);
    let cached: BTreeSet<String> = jobs.iter().map(|job| job.name_any()).collect();
    let unmet = children.expectations.unmet(view.uid, &cached, Instant::now());
    if !unmet.created.is_empty() {
        debug!(run = %name, jobs = ?unmet.created, "the Job cache has not seen the Jobs just created; waiting for it");
        return Ok(None);
    }
    let jobs: Vec<Job> = jobs.into_iter().filter(|job| !unmet.deleted.contains(&job.name_any())).collect();
    let pods: Vec<Pod> = children.pods.group(ns, &label);
    if finished_but_observed_active(&jobs, &pods, STAGE_CONTAINER) {
        debug!(run = %name, "a Job finished before the pod cache saw its pod finish; waiting for it");
        return Ok(None);
    }
    let (image_builds, kata_installs) = observe_references(client, ns, run).await?;
    let (stage_jobs, foreign_jobs) = observe_stage_jobs(jobs, &pods, view.uid);
    let mut observed = Observed {
        jobs: stage_jobs,
        group: group_members(runs, run),
        logs: Default::default(),
        logs_cut: Default::default(),
        image_builds,
        kata_installs,
        foreign_jobs,
        refused: Default::default(),
    };
    explain_failures(client, ns, view, &mut observed).await;
    read_logs(&Api::<Pod>::namespaced(client.clone(), ns), view, &mut observed).await;
    Ok(Some(observed))
}

/// Reads the run's Jobs and pods (label `label`) from the API server into
/// the caches, the ones they were told to drop included.
async fn recall(client: &Client, ns: &str, label: &str, children: &Children) -> Result<(), Error> {
    let selected = ListParams::default().labels(&format!("{LABEL_RUN}={label}"));
    let jobs = Api::<Job>::namespaced(client.clone(), ns).list(&selected).await;
    let mut jobs = jobs.observing(|| format!("the Jobs of run {label}"))?.items;
    let pods = Api::<Pod>::namespaced(client.clone(), ns).list(&selected).await;
    let mut pods = pods.observing(|| format!("the pods of run {label}"))?.items;
    jobs.iter_mut().for_each(lean_job);
    pods.iter_mut().for_each(lean_pod);
    children.jobs.recall(ns, label, jobs);
    children.pods.recall(ns, label, pods);
    Ok(())
}

/// Adds the last Warning Event of their pods to failed Jobs whose pods are
/// gone (an image that never pulled, say): best effort, a stage fails
/// either way.
async fn explain_failures(client: &Client, ns: &str, view: &View<'_>, observed: &mut Observed) {
    let jobs = failures_to_explain(view, observed);
    if jobs.is_empty() {
        return;
    }
    let events = match Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await {
        Ok(events) => events.items,
        Err(e) => return warn!(run = %view.name, error = %e, "cannot list Events to explain a failed stage"),
    };
    for job in observed.jobs.iter_mut().filter(|j| jobs.contains(&j.outcome.name)) {
        if let Some(warning) = last_pod_warning(&events, &job.outcome.name) {
            let message = job.outcome.message.get_or_insert_with(String::new);
            message.push_str(&format!("; last pod event: {warning}"));
        }
    }
}

/// Reads the logs the planner wants (finished TAP attempts): best effort,
/// a log that cannot be read is missing.
async fn read_logs(pods_api: &Api<Pod>, view: &View<'_>, observed: &mut Observed) {
    for job in logs_wanted(view, observed) {
        let pod = observed.jobs.iter().find(|j| j.outcome.name == job).and_then(|j| j.outcome.pod.clone());
        if let Some(pod) = pod {
            match read_log_tail(pods_api, &pod, STAGE_CONTAINER).await {
                Ok(tail) => {
                    if tail.cut {
                        observed.logs_cut.insert(job.clone());
                    }
                    observed.logs.insert(job, tail.text);
                }
                Err(e) => warn!(run = %view.name, job = %job, error = %e, "cannot read stage log"),
            }
        }
    }
}

type ReferenceStates = BTreeMap<String, Referenced>;

/// The ImageBuilds and KataInstalls that unfinished stages wait for.
async fn observe_references(
    client: &Client,
    ns: &str,
    run: &PipelineRun,
) -> Result<(ReferenceStates, ReferenceStates), Error> {
    let (mut builds, mut installs) = (BTreeMap::new(), BTreeMap::new());
    let stages = run.status.as_ref().map_or(&[][..], |s| &s.stages);
    for stage in &run.spec.stages {
        let finished = stages.iter().any(|s| s.name == stage.name && s.phase.is_finished());
        match stage_kind(stage) {
            // Several stages may wait for the same object: read it once.
            StageKind::ImageBuild { name } if !finished && !builds.contains_key(name) => {
                let build = Api::<ImageBuild>::namespaced(client.clone(), ns).get_opt(name).await;
                if let Some(b) = build.observing(|| describe::<ImageBuild>(Some(ns), name))? {
                    builds.insert(name.to_string(), image_build_state(&b));
                }
            }
            StageKind::KataInstall { name } if !finished && !installs.contains_key(name) => {
                let install = Api::<KataInstall>::all(client.clone()).get_opt(name).await;
                if let Some(k) = install.observing(|| describe::<KataInstall>(None, name))? {
                    installs.insert(name.to_string(), kata_install_state(&k));
                }
            }
            _ => {}
        }
    }
    Ok((builds, installs))
}

/// Other runs of the same namespace and concurrency group, from the cache.
fn group_members(cache: &Store<PipelineRun>, run: &PipelineRun) -> Vec<GroupMember> {
    let Some(group) = run.spec.concurrency.as_ref().map(|c| &c.group) else {
        return Vec::new();
    };
    cache
        .state()
        .iter()
        .filter(|other| other.namespace() == run.namespace() && other.name_any() != run.name_any())
        .filter_map(|other| {
            let c = other.spec.concurrency.as_ref().filter(|c| &c.group == group)?;
            Some(GroupMember {
                name: other.name_any(),
                created: other.metadata.creation_timestamp.as_ref().map(from_k8s_time)?,
                started: other.status.as_ref().and_then(|s| s.start_time),
                finished: other.status.as_ref().and_then(|s| s.phase).is_some_and(|p| p.is_finished()),
                superseded: other.annotations().contains_key(ANNOTATION_SUPERSEDED_BY),
                policy: c.policy,
                revision: other.spec.source.as_ref().and_then(|s| s.revision.clone()),
                phase: other.status.as_ref().and_then(|s| s.phase),
                gate_verdict: other.status.as_ref().and_then(|s| s.gate.as_ref()).map(|g| g.verdict),
                completed: other.status.as_ref().and_then(|s| s.completion_time),
            })
        })
        .collect()
}

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

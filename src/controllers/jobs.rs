//! Reads a Job and its pods: finished or not, when, the main container's
//! termination message (outputs) and, on failure, why, naming the pod and
//! container. Pure; the pipeline and build controllers map labels on top.
//! A pod belongs to the Job that is its controller (by UID), whatever its
//! `job-name` label says.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::api::events::v1::Event;

use super::ownership::controller_uid;
use crate::engine::conditions::from_k8s_time;

use crate::engine::job::{JobOutcome, JobState};

/// One outcome per labelled Job, beside the Job (for its labels and
/// annotations), read from the container named
/// `container`; `pods` may hold any Jobs' pods.
pub fn observe_jobs<'a>(jobs: &'a [Job], pods: &[Pod], container: &str) -> Vec<(&'a Job, JobOutcome)> {
    let mut pods_by_job: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in pods {
        if let Some(job_uid) = controller_uid(&pod.metadata) {
            pods_by_job.entry(job_uid).or_default().push(pod);
        }
    }
    jobs.iter()
        .filter_map(|job| {
            let name = job.metadata.name.clone()?;
            job.metadata.labels.as_ref()?; // not one of ours
            let uid = job.metadata.uid.as_deref().unwrap_or_default();
            let job_pods = pods_by_job.get(uid).map(Vec::as_slice).unwrap_or(&[]);
            Some((job, observe_job(job, name, job_pods, container)))
        })
        .collect()
}

/// Whether a Job says it finished (Complete or Failed) while its outcome
/// read with `pods` is still Active: its pod has not been seen to finish.
/// Read from watch caches, that is the pod cache lagging behind the Job's;
/// it also holds while a replacement pod of a pod deleted mid-run runs on.
pub fn finished_but_observed_active(jobs: &[Job], pods: &[Pod], container: &str) -> bool {
    observe_jobs(jobs, pods, container)
        .iter()
        .any(|(job, outcome)| outcome.state == JobState::Active && finished_condition(job).is_some())
}

/// A hash of what a planner reads from a Job's own status: whether it
/// finished and how, and its pods' success and failure counts. A Job's
/// update that leaves it unchanged (its pod started, `active` counted) is
/// no news for its parent.
pub fn outcome_signature(job: &Job) -> u64 {
    let status = job.status.as_ref();
    let finished = finished_condition(job).map(|c| c.type_).unwrap_or_default();
    let counts = status.map(|s| (s.succeeded.unwrap_or(0), s.failed.unwrap_or(0))).unwrap_or_default();
    crate::engine::naming::fnv1a(format!("{finished}/{}/{}", counts.0, counts.1).as_bytes())
}

/// The Job's Complete or Failed condition, when it is True.
fn finished_condition(job: &Job) -> Option<JobCondition> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed")).cloned()
}

fn observe_job(job: &Job, name: String, pods: &[&Pod], container_name: &str) -> JobOutcome {
    let status = job.status.clone().unwrap_or_default();
    let finished_condition = finished_condition(job);
    let mut state = match finished_condition.as_ref().map(|c| c.type_.as_str()) {
        Some("Complete") => JobState::Succeeded,
        Some("Failed") => JobState::Failed,
        _ => JobState::Active,
    };
    // A pod deleted while it ran keeps running until it stops, and may be
    // the one that completes the Job, then vanish with its outputs while its
    // replacement still runs. The outputs come from a pod that succeeded:
    // wait for the replacement, and if none succeeded, say they are lost.
    let succeeded_pod = pods.iter().filter(|p| exited_zero(p, container_name)).max_by_key(|p| created(p));
    let mut outputs_lost = false;
    if state == JobState::Succeeded && succeeded_pod.is_none() {
        if pods.iter().any(|p| is_running_or_pending(p)) {
            state = JobState::Active;
        } else {
            outputs_lost = true;
        }
    }
    let finished = status
        .completion_time
        .as_ref()
        .or(finished_condition.as_ref().and_then(|c| c.last_transition_time.as_ref()))
        .map(from_k8s_time)
        .filter(|_| state != JobState::Active);
    // The pod that succeeded tells a success; otherwise the newest pod tells what happened last.
    let pod = succeeded_pod.filter(|_| state == JobState::Succeeded).or_else(|| pods.iter().max_by_key(|p| created(p)));
    let container = pod.and_then(|p| container_status(p, container_name));
    let outputs = container
        .and_then(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
        .filter(|_| state == JobState::Succeeded);
    let message = (state == JobState::Failed).then(|| {
        let mut parts = Vec::new();
        if let Some(c) = finished_condition.as_ref() {
            if let Some(reason) = c.reason.as_deref().filter(|r| *r != "BackoffLimitExceeded") {
                parts.push(format!("{reason}: {}", c.message.clone().unwrap_or_default()));
            }
        }
        let pod_name = pod.map(|p| p.metadata.name.as_deref().unwrap_or("?"));
        match (pod_name, container) {
            (Some(pod), Some(c)) => parts.push(describe_container(pod, c)),
            (Some(pod), None) => parts.push(format!("container {container_name} in pod {pod} never ran (not started)")),
            (None, _) => {}
        }
        if parts.is_empty() {
            parts.push(format!("Job {name} failed"));
        }
        parts.join("; ")
    });
    JobOutcome {
        name,
        state,
        created: job.metadata.creation_timestamp.as_ref().map(from_k8s_time),
        finished,
        outputs,
        message,
        pod: pod.and_then(|p| p.metadata.name.clone()),
        ready_addresses: ready_addresses(pods),
        outputs_lost,
    }
}

fn created(pod: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Whether the pod's `container` terminated with exit code 0.
fn exited_zero(pod: &Pod, container: &str) -> bool {
    container_status(pod, container)
        .and_then(|c| c.state.as_ref()?.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0)
}

fn is_running_or_pending(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running" | "Pending") | None)
}

/// The IPs of the pods whose Ready condition is True, in pod-name order.
fn ready_addresses(pods: &[&Pod]) -> Vec<String> {
    let mut ready: Vec<(&str, String)> = pods
        .iter()
        .filter_map(|p| {
            let status = p.status.as_ref()?;
            let is_ready = status.conditions.as_ref()?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
            let running = status.phase.as_deref() == Some("Running");
            Some((p.metadata.name.as_deref()?, status.pod_ip.clone()?)).filter(|_| is_ready && running)
        })
        .collect();
    ready.sort();
    ready.into_iter().map(|(_, ip)| ip).collect()
}

fn container_status<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.iter().find(|c| c.name == name)
}

/// `container stage in pod X exited with code 1 (Error)`, or why it is waiting.
/// The newest Warning Event about a pod of Job `job` (`<job>-xxxxx`), as
/// `reason: note`: what explains a failure once the pods are gone.
pub fn last_pod_warning(events: &[Event], job: &str) -> Option<String> {
    let prefix = format!("{job}-");
    let of_job_pod = |e: &&Event| {
        let regarding = e.regarding.as_ref();
        let name = regarding.and_then(|r| r.name.as_deref()).unwrap_or_default();
        let suffix = name.strip_prefix(&prefix).unwrap_or("-");
        regarding.and_then(|r| r.kind.as_deref()) == Some("Pod")
            && e.type_.as_deref() == Some("Warning")
            && !suffix.is_empty()
            && suffix.chars().all(|c| c.is_ascii_alphanumeric())
    };
    // Core Events carry lastTimestamp, new-style ones a series or eventTime.
    let when = |e: &Event| {
        let series = e.series.as_ref().map(|s| s.last_observed_time.0);
        let last = e.deprecated_last_timestamp.as_ref().map(|t| t.0);
        let created = e.metadata.creation_timestamp.as_ref().map(|t| t.0);
        series.or(last).or(e.event_time.as_ref().map(|t| t.0)).or(created)
    };
    let event = events.iter().filter(of_job_pod).max_by_key(|e| when(e))?;
    Some(format!("{}: {}", event.reason.as_deref().unwrap_or("Warning"), event.note.as_deref().unwrap_or_default()))
}

fn describe_container(pod: &str, c: &ContainerStatus) -> String {
    let state = c.state.as_ref();
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        let reason = t.reason.as_deref().unwrap_or("Terminated");
        return format!("container {} in pod {pod} exited with code {} ({reason})", c.name, t.exit_code);
    }
    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = w.reason.as_deref().unwrap_or("Waiting");
        let detail = w.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
        return format!("container {} in pod {pod} never ran ({reason}{detail})", c.name);
    }
    format!("container {} in pod {pod} was still running", c.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, condition: Option<(&str, &str)>) -> Job {
        let mut value = serde_json::json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"gantry.dev/stage": "test", "gantry.dev/attempt": "2"}},
            "status": {}
        });
        if let Some((type_, reason)) = condition {
            value["status"]["conditions"] = serde_json::json!([{
                "type": type_, "status": "True", "reason": reason, "message": "details",
                "lastTransitionTime": "2026-01-01T00:05:00Z"
            }]);
        }
        serde_json::from_value(value).unwrap()
    }

    fn pod(job: &str, state: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{job}-abcde"), "labels": {"job-name": job},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job,
                                              "uid": format!("uid-{job}"), "controller": true}],
                         "creationTimestamp": "2026-01-01T00:00:01Z"},
            "status": {"containerStatuses": [{
                "name": "stage", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": state
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn a_complete_job_reports_its_outputs_from_the_termination_message() {
        let pods = [pod("r-test-2", serde_json::json!({"terminated": {"exitCode": 0, "message": "image=sdk:1\n"}}))];
        let jobs = [job("r-test-2", Some(("Complete", "")))];
        let obs = observe_jobs(&jobs, &pods, "stage");
        assert_eq!(obs.len(), 1);
        assert_eq!(kube::ResourceExt::labels(obs[0].0)["gantry.dev/stage"], "test");
        let obs: Vec<JobOutcome> = obs.into_iter().map(|(_, o)| o).collect();
        assert_eq!(obs[0].state, JobState::Succeeded);
        assert_eq!(obs[0].outputs.as_deref(), Some("image=sdk:1\n"));
        assert!(obs[0].finished.is_some());
    }

    #[test]
    fn a_complete_job_whose_pod_is_seen_running_is_a_cache_catching_up() {
        let jobs = [job("r-test-2", Some(("Complete", "")))];
        let running = pod_at("r-test-2", "a", 1, "Running", serde_json::json!({"running": {}}));
        assert!(finished_but_observed_active(&jobs, &[running], "stage"));
        let done = serde_json::json!({"terminated": {"exitCode": 0, "message": "out=1\n"}});
        let finished = pod_at("r-test-2", "a", 1, "Succeeded", done);
        assert!(!finished_but_observed_active(&jobs, &[finished], "stage"));
        assert!(!finished_but_observed_active(&jobs, &[], "stage"), "no pod at all: its outputs are lost, no wait");
        let active = [job("r-test-2", None)];
        let running = pod_at("r-test-2", "a", 1, "Running", serde_json::json!({"running": {}}));
        assert!(!finished_but_observed_active(&active, &[running], "stage"), "an active Job is no lag");
    }

    #[test]
    fn a_jobs_signature_changes_when_it_finishes_not_when_its_pod_starts() {
        let mut started = job("r-test-2", None);
        let created = outcome_signature(&started);
        started.status.get_or_insert_with(Default::default).active = Some(1);
        assert_eq!(outcome_signature(&started), created);
        assert_ne!(outcome_signature(&job("r-test-2", Some(("Complete", "")))), created);
        assert_ne!(outcome_signature(&job("r-test-2", Some(("Failed", "BackoffLimitExceeded")))), created);
        let mut failed_once = job("r-test-2", None);
        failed_once.status.get_or_insert_with(Default::default).failed = Some(1);
        assert_ne!(outcome_signature(&failed_once), created, "a failed pod of a retrying Job");
    }

    /// A pod named `suffix`, created `second`s after the Job, in `phase`.
    fn pod_at(job: &str, suffix: &str, second: u32, phase: &str, state: serde_json::Value) -> Pod {
        let mut pod = pod(job, state);
        pod.metadata.name = Some(format!("{job}-{suffix}"));
        let created: k8s_openapi::jiff::Timestamp = format!("2026-01-01T00:00:{second:02}Z").parse().unwrap();
        pod.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created));
        pod.status.as_mut().unwrap().phase = Some(phase.into());
        pod
    }

    #[test]
    fn outputs_come_from_the_pod_that_succeeded_not_from_a_replacement() {
        // The first pod was deleted while it ran, finished anyway and
        // completed the Job; its replacement (newer) still runs.
        let jobs = [job("r-test-2", Some(("Complete", "")))];
        let done = serde_json::json!({"terminated": {"exitCode": 0, "message": "out=first\n"}});
        let running = serde_json::json!({"running": {}});
        let first = pod_at("r-test-2", "first", 1, "Succeeded", done.clone());
        let replacement = pod_at("r-test-2", "second", 3, "Running", running.clone());
        let obs = observe_jobs(&jobs, &[first, replacement.clone()], "stage");
        assert_eq!(obs[0].1.state, JobState::Succeeded);
        assert_eq!(obs[0].1.outputs.as_deref(), Some("out=first\n"));
        assert_eq!(obs[0].1.pod.as_deref(), Some("r-test-2-first"));

        // The first pod is gone: wait for the replacement...
        let obs = observe_jobs(&jobs, std::slice::from_ref(&replacement), "stage");
        assert_eq!(obs[0].1.state, JobState::Active, "the replacement still runs: wait for it");
        // ...whose outputs then count.
        let second = serde_json::json!({"terminated": {"exitCode": 0, "message": "out=second\n"}});
        let replaced = pod_at("r-test-2", "second", 3, "Succeeded", second);
        let obs = observe_jobs(&jobs, &[replaced], "stage");
        assert_eq!((obs[0].1.state, obs[0].1.outputs.as_deref()), (JobState::Succeeded, Some("out=second\n")));
        assert!(!obs[0].1.outputs_lost);

        // No pod that succeeded is left at all: the outputs are lost, and said so.
        let failed = pod_at("r-test-2", "second", 3, "Failed", serde_json::json!({"terminated": {"exitCode": 137}}));
        let obs = observe_jobs(&jobs, &[failed], "stage");
        assert_eq!(obs[0].1.state, JobState::Succeeded);
        assert!(obs[0].1.outputs_lost);
        assert!(observe_jobs(&jobs, &[], "stage")[0].1.outputs_lost);
    }

    #[test]
    fn a_failed_job_names_the_pod_container_and_exit_code() {
        let pods = [pod("r-test-2", serde_json::json!({"terminated": {"exitCode": 3, "reason": "Error"}}))];
        let jobs = [job("r-test-2", Some(("Failed", "BackoffLimitExceeded")))];
        let obs: Vec<JobOutcome> = observe_jobs(&jobs, &pods, "stage").into_iter().map(|(_, o)| o).collect();
        assert_eq!(obs[0].state, JobState::Failed);
        assert_eq!(obs[0].message.as_deref(), Some("container stage in pod r-test-2-abcde exited with code 3 (Error)"));
        assert_eq!(obs[0].outputs, None, "a failed attempt's outputs are not used");
    }

    #[test]
    fn a_deadline_failure_says_so_and_why_the_container_never_ran() {
        let pods =
            [pod("r-test-2", serde_json::json!({"waiting": {"reason": "ErrImagePull", "message": "not found"}}))];
        let jobs = [job("r-test-2", Some(("Failed", "DeadlineExceeded")))];
        let obs: Vec<JobOutcome> = observe_jobs(&jobs, &pods, "stage").into_iter().map(|(_, o)| o).collect();
        let message = obs[0].message.clone().unwrap();
        assert!(message.starts_with("DeadlineExceeded: details"), "{message}");
        assert!(message.contains("never ran (ErrImagePull: not found)"), "{message}");
    }

    #[test]
    fn the_last_warning_about_a_jobs_pods_explains_it_once_they_are_gone() {
        let event = |pod: &str, type_: &str, reason: &str, at: &str| -> Event {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("{pod}.{reason}")},
                "eventTime": null,
                "regarding": {"kind": "Pod", "name": pod},
                "type": type_, "reason": reason, "note": format!("{reason} of {pod}"),
                "deprecatedLastTimestamp": at
            }))
            .unwrap()
        };
        let events = [
            event("r-pull-1-abcde", "Warning", "Failed", "2026-01-01T00:00:02Z"),
            event("r-pull-1-abcde", "Warning", "BackOff", "2026-01-01T00:00:04Z"),
            event("r-pull-1-abcde", "Normal", "Pulling", "2026-01-01T00:00:05Z"),
            event("r-pull-1-1-fghij", "Warning", "Other", "2026-01-01T00:00:09Z"),
            event("r-pull-10-klmno", "Warning", "Other", "2026-01-01T00:00:09Z"),
        ];
        assert_eq!(last_pod_warning(&events, "r-pull-1").as_deref(), Some("BackOff: BackOff of r-pull-1-abcde"));
        assert_eq!(last_pod_warning(&events, "r-build-1"), None);
    }

    #[test]
    fn ready_running_pods_give_their_addresses() {
        let mut pods = Vec::new();
        for (name, ready, ip) in
            [("r-db-1-b", "True", "10.88.0.7"), ("r-db-1-a", "True", "10.88.0.9"), ("r-db-1-c", "False", "10.88.0.8")]
        {
            let mut p = pod("r-db-1", serde_json::json!({"running": {}}));
            p.metadata.name = Some(name.into());
            let status = p.status.as_mut().unwrap();
            status.phase = Some("Running".into());
            status.pod_ip = Some(ip.into());
            status.conditions = Some(vec![k8s_openapi::api::core::v1::PodCondition {
                type_: "Ready".into(),
                status: ready.into(),
                ..Default::default()
            }]);
            pods.push(p);
        }
        let jobs = [job("r-db-1", None)];
        let obs: Vec<JobOutcome> = observe_jobs(&jobs, &pods, "stage").into_iter().map(|(_, o)| o).collect();
        assert_eq!(obs[0].ready_addresses, ["10.88.0.9", "10.88.0.7"]);
    }

    #[test]
    fn a_pod_with_the_jobs_name_label_but_another_controller_is_not_the_jobs() {
        let mut stray = pod("r-test-2", serde_json::json!({"terminated": {"exitCode": 0, "message": "v=old\n"}}));
        stray.metadata.owner_references.as_mut().unwrap()[0].uid = "uid-of-an-older-job".into();
        let jobs = [job("r-test-2", None)];
        let obs: Vec<JobOutcome> = observe_jobs(&jobs, &[stray], "stage").into_iter().map(|(_, o)| o).collect();
        assert_eq!(obs[0].pod, None);
        assert_eq!(obs[0].outputs, None);
    }

    #[test]
    fn a_running_job_is_active_and_jobs_without_labels_are_ignored() {
        let mut foreign = job("other", None);
        foreign.metadata.labels = None;
        let jobs = [job("r-test-2", None), foreign];
        let obs: Vec<JobOutcome> = observe_jobs(&jobs, &[], "stage").into_iter().map(|(_, o)| o).collect();
        assert_eq!(obs.len(), 1);
        assert_eq!(obs[0].state, JobState::Active);
        assert_eq!(obs[0].finished, None);
    }
}

//! Watches the stage Jobs of one phase and notes, by this process's clock,
//! when each Job was first seen and when it was seen complete. Both come from
//! the same watch stream, so their difference is not blurred by the API's
//! one-second timestamps.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gantry::engine::naming::{LABEL_ATTEMPT, LABEL_RUN, LABEL_STAGE};
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::mpsc::UnboundedSender;

/// What the watch told about one Job; times in seconds since the phase started.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSeen {
    pub run: String,
    pub stage: String,
    pub attempt: String,
    pub first_seen: f64,
    pub completed: Option<f64>,
}

/// Jobs by name, shared between the watch task and the phase.
#[derive(Clone)]
pub struct Tracker {
    start: Instant,
    jobs: Arc<Mutex<HashMap<String, JobSeen>>>,
}

/// A Job that completed: `(run, stage)`.
pub type Completion = (String, String);

impl Tracker {
    /// Starts watching Jobs labelled `gantry.dev/run` in `namespace`; sends
    /// each Job's first completion to `completions`. Returns once the watch's
    /// first list is done.
    pub async fn start(
        client: Client,
        namespace: &str,
        start: Instant,
        completions: UnboundedSender<Completion>,
    ) -> Self {
        let tracker = Tracker { start, jobs: Arc::default() };
        let api = Api::<Job>::namespaced(client, namespace);
        let config = watcher::Config::default().labels(LABEL_RUN);
        let task = tracker.clone();
        crate::watch::each(api, config, "Jobs", move |job| task.saw(&job, &completions)).await;
        tracker
    }

    fn saw(&self, job: &Job, completions: &UnboundedSender<Completion>) {
        let now = self.start.elapsed().as_secs_f64();
        let Some(name) = job.metadata.name.clone() else { return };
        let labels = job.metadata.labels.clone().unwrap_or_default();
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let mut jobs = self.jobs.lock().unwrap();
        let seen = jobs.entry(name).or_insert_with(|| JobSeen {
            run: label(LABEL_RUN),
            stage: label(LABEL_STAGE),
            attempt: label(LABEL_ATTEMPT),
            first_seen: now,
            completed: None,
        });
        if seen.completed.is_none() && is_complete(job) {
            seen.completed = Some(now);
            let _ = completions.send((seen.run.clone(), seen.stage.clone()));
        }
    }

    /// Every Job seen so far.
    pub fn jobs(&self) -> Vec<JobSeen> {
        self.jobs.lock().unwrap().values().cloned().collect()
    }
}

fn is_complete(job: &Job) -> bool {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == "Complete" && c.status == "True"))
}

/// Milliseconds from the completion of each stage's Job to the first sight of
/// the Job of the stage after it in `stages`, for every run.
pub fn handoff_latencies_ms(jobs: &[JobSeen], stages: &[String]) -> Vec<f64> {
    // (run, stage) -> (earliest first sight, earliest completion)
    let mut by_stage: BTreeMap<(&str, &str), (f64, Option<f64>)> = BTreeMap::new();
    for job in jobs {
        let entry = by_stage.entry((&job.run, &job.stage)).or_insert((job.first_seen, None));
        entry.0 = entry.0.min(job.first_seen);
        entry.1 = match (entry.1, job.completed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let runs: std::collections::BTreeSet<&str> = jobs.iter().map(|j| j.run.as_str()).collect();
    let mut latencies = Vec::new();
    for run in runs {
        for pair in stages.windows(2) {
            let done = by_stage.get(&(run, pair[0].as_str())).and_then(|e| e.1);
            let next = by_stage.get(&(run, pair[1].as_str())).map(|e| e.0);
            if let (Some(done), Some(next)) = (done, next) {
                latencies.push(((next - done) * 1000.0).max(0.0));
            }
        }
    }
    latencies
}

/// Jobs beyond the first for one run, stage and attempt (must be 0).
pub fn duplicate_jobs(jobs: &[JobSeen]) -> usize {
    let mut counts: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    for job in jobs {
        *counts.entry((&job.run, &job.stage, &job.attempt)).or_default() += 1;
    }
    counts.values().map(|n| n - 1).sum()
}

/// Stage Jobs seen complete.
pub fn completed(jobs: &[JobSeen]) -> usize {
    jobs.iter().filter(|j| j.completed.is_some()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(run: &str, stage: &str, attempt: &str, first: f64, done: Option<f64>) -> JobSeen {
        JobSeen { run: run.into(), stage: stage.into(), attempt: attempt.into(), first_seen: first, completed: done }
    }

    #[test]
    fn latency_is_from_completion_to_the_next_stage_s_job() {
        let stages: Vec<String> = ["s1", "s2", "s3"].map(String::from).to_vec();
        let jobs = vec![
            seen("a", "s1", "1", 0.0, Some(1.0)),
            seen("a", "s2", "1", 1.25, Some(2.0)),
            seen("a", "s3", "1", 2.5, None),
            seen("b", "s1", "1", 0.0, Some(3.0)),
        ];
        assert_eq!(handoff_latencies_ms(&jobs, &stages), vec![250.0, 500.0]);
    }

    #[test]
    fn duplicates_count_extra_jobs_per_attempt() {
        let jobs = vec![
            seen("a", "s1", "1", 0.0, None),
            seen("a", "s1", "2", 0.0, None),
            seen("a", "s1", "2", 0.0, None),
            seen("b", "s1", "1", 0.0, Some(1.0)),
        ];
        assert_eq!(duplicate_jobs(&jobs), 1);
        assert_eq!(completed(&jobs), 1);
    }
}

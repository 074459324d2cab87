//! One attempt's log: the newest pod of its Job (by the `job-name` label the
//! Job controller sets), read or followed line by line, or one plain line
//! saying why there is none (the pod is gone, was evicted, never started).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use futures::{AsyncBufRead, AsyncBufReadExt};
use gantry::controllers::jobs::observe_jobs;
use gantry::engine::conditions::from_k8s_time;
use gantry::engine::job::JobState;
use gantry::resources::job::STAGE_CONTAINER;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, ResourceExt};

use crate::attempts::Attempt;
use crate::failure::{one_line, CliError};

/// How often a follower looks again for a pod that has not started.
const POLL: Duration = Duration::from_secs(1);

/// What reading an attempt's log gives, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// One line of the log (without its newline).
    Line { stage: String, text: String },
    /// Why there is no (more) log, on one line, naming the attempt.
    Notice(String),
}

/// Where a stage's pod stands, for reading its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// The container started: it has a log (maybe still growing).
    Started,
    /// The container has not started; the reason when the kubelet gave one.
    Waiting { reason: Option<String>, pod_finished: bool },
    /// The kubelet evicted the pod (its log went with it).
    Evicted(String),
}

/// What the stage container of `pod` allows.
pub fn pod_state(pod: &Pod) -> PodState {
    let status = pod.status.as_ref();
    if status.and_then(|s| s.reason.as_deref()) == Some("Evicted") {
        let message = status.and_then(|s| s.message.clone()).unwrap_or_default();
        return PodState::Evicted(one_line(&message));
    }
    let pod_finished = matches!(status.and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
    let container =
        status.and_then(|s| s.container_statuses.as_ref()).and_then(|cs| cs.iter().find(|c| c.name == STAGE_CONTAINER));
    let state = container.and_then(|c| c.state.as_ref());
    let started = state.is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        || container.is_some_and(|c| c.last_state.as_ref().is_some_and(|s| s.terminated.is_some()));
    if started {
        return PodState::Started;
    }
    let reason = state.and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.clone());
    PodState::Waiting { reason, pod_finished }
}

/// The newest of `pods` (by creation time, then name).
pub fn newest(pods: Vec<Pod>) -> Option<Pod> {
    pods.into_iter().max_by_key(|p| (p.metadata.creation_timestamp.as_ref().map(from_k8s_time), p.name_any()))
}

/// `stage test attempt 2: WHAT`.
pub fn notice(attempt: &Attempt, what: &str) -> String {
    format!("{}: {what}", attempt.label())
}

/// Where to read logs: the client and namespace.
#[derive(Clone)]
pub struct Logs {
    pub client: Client,
    pub namespace: String,
}

/// The log's lines as they come, or a notice.
type Reader = Pin<Box<dyn AsyncBufRead + Send>>;

enum Opened {
    Reader(Reader),
    Notice(String),
}

impl Logs {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The attempt's log as a stream of events. With `follow`, waits for
    /// the pod to start and keeps reading until its container ends; a
    /// follower still waiting gives up once `run_over` is set.
    pub fn stream(
        &self,
        attempt: Attempt,
        follow: bool,
        run_over: Arc<AtomicBool>,
    ) -> BoxStream<'static, Result<LogEvent, CliError>> {
        let this = self.clone();
        let stage = attempt.stage.clone();
        stream::once(async move { this.open(&attempt, follow, &run_over).await })
            .flat_map(move |opened| match opened {
                Ok(Opened::Reader(reader)) => lines(reader, stage.clone()),
                Ok(Opened::Notice(text)) => stream::iter([Ok(LogEvent::Notice(text))]).boxed(),
                Err(e) => stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }

    async fn open(&self, attempt: &Attempt, follow: bool, run_over: &AtomicBool) -> Result<Opened, CliError> {
        let pods = self.pods();
        loop {
            let selector = format!("job-name={}", attempt.job);
            let listed = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| CliError::api(&format!("pods of Job {}", attempt.job), e))?;
            let may_wait = follow && !run_over.load(Ordering::SeqCst);
            let waiting = |what: String| if may_wait { None } else { Some(Opened::Notice(notice(attempt, &what))) };
            let decided = match newest(listed.items) {
                None => match self.job_state(&attempt.job).await? {
                    None => {
                        Some(Opened::Notice(notice(attempt, &format!("its pod is gone (Job {} deleted)", attempt.job))))
                    }
                    Some(JobState::Active) => waiting("its pod has not been created yet".into()),
                    Some(_) => Some(Opened::Notice(notice(
                        attempt,
                        &format!("its pod is gone (deleted or evicted; Job {} remains)", attempt.job),
                    ))),
                },
                Some(pod) => match pod_state(&pod) {
                    PodState::Evicted(why) => {
                        Some(Opened::Notice(notice(attempt, &format!("its pod {} was evicted: {why}", pod.name_any()))))
                    }
                    PodState::Waiting { reason, pod_finished } => {
                        let reason = reason.map(|r| format!(" ({r})")).unwrap_or_default();
                        if pod_finished {
                            Some(Opened::Notice(notice(attempt, &format!("its container never ran{reason}"))))
                        } else {
                            waiting(format!("its container has not started yet{reason}"))
                        }
                    }
                    PodState::Started => Some(self.read(attempt, &pod.name_any(), follow).await),
                },
            };
            if let Some(opened) = decided {
                return Ok(opened);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The Job's state, `None` when it is gone.
    async fn job_state(&self, job: &str) -> Result<Option<JobState>, CliError> {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace);
        let found = jobs.get_opt(job).await.map_err(|e| CliError::api(&format!("Job {job}"), e))?;
        Ok(found.map(|j| {
            let observed = observe_jobs(std::slice::from_ref(&j), &[], STAGE_CONTAINER);
            observed.first().map(|(_, o)| o.state).unwrap_or_default()
        }))
    }

    async fn read(&self, attempt: &Attempt, pod: &str, follow: bool) -> Opened {
        let params = LogParams { container: Some(STAGE_CONTAINER.into()), follow, ..Default::default() };
        match self.pods().log_stream(pod, &params).await {
            Ok(reader) => Opened::Reader(Box::pin(reader)),
            Err(e) => Opened::Notice(notice(attempt, &format!("cannot read its log: {}", one_line(&e.to_string())))),
        }
    }
}

/// The reader's lines (bytes that are not UTF-8 shown as U+FFFD), ended by
/// a notice if reading breaks off.
fn lines(reader: Reader, stage: String) -> BoxStream<'static, Result<LogEvent, CliError>> {
    stream::unfold(Some(reader), move |reader| {
        let stage = stage.clone();
        async move {
            let mut reader = reader?;
            let mut buf = Vec::new();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) => None,
                Ok(_) => {
                    let text = String::from_utf8_lossy(strip_newline(&buf)).into_owned();
                    Some((Ok(LogEvent::Line { stage, text }), Some(reader)))
                }
                Err(e) => {
                    let text = format!("stage {stage}: its log broke off: {}", one_line(&e.to_string()));
                    Some((Ok(LogEvent::Notice(text)), None))
                }
            }
        }
    })
    .boxed()
}

fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry::engine::conditions::to_k8s_time;

    fn pod(name: &str, second: i64, status: serde_json::Value) -> Pod {
        let mut pod: Pod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "status": status})).expect("a pod");
        pod.metadata.creation_timestamp =
            Some(to_k8s_time(chrono::DateTime::from_timestamp(1_790_000_000 + second, 0).unwrap()));
        pod
    }

    fn container(state: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"containerStatuses": [{"name": "stage", "image": "i", "imageID": "", "ready": false,
            "restartCount": 0, "state": state}], "phase": "Running"})
    }

    #[test]
    fn a_running_or_terminated_container_has_a_log() {
        assert_eq!(pod_state(&pod("p", 0, container(serde_json::json!({"running": {}})))), PodState::Started);
        let done = container(serde_json::json!({"terminated": {"exitCode": 1}}));
        assert_eq!(pod_state(&pod("p", 0, done)), PodState::Started);
    }

    #[test]
    fn a_waiting_container_says_why_and_whether_it_will_ever_run() {
        let waiting = container(serde_json::json!({"waiting": {"reason": "ErrImagePull"}}));
        assert_eq!(
            pod_state(&pod("p", 0, waiting.clone())),
            PodState::Waiting { reason: Some("ErrImagePull".into()), pod_finished: false }
        );
        let mut failed = waiting;
        failed["phase"] = "Failed".into();
        assert_eq!(
            pod_state(&pod("p", 0, failed)),
            PodState::Waiting { reason: Some("ErrImagePull".into()), pod_finished: true }
        );
        let pending = serde_json::json!({"phase": "Pending"});
        assert_eq!(pod_state(&pod("p", 0, pending)), PodState::Waiting { reason: None, pod_finished: false });
    }

    #[test]
    fn an_evicted_pod_says_so() {
        let evicted =
            serde_json::json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on\n memory."});
        assert_eq!(pod_state(&pod("p", 0, evicted)), PodState::Evicted("The node was low on memory.".into()));
    }

    #[test]
    fn the_newest_pod_comes_first() {
        let pods = vec![
            pod("a", 5, serde_json::json!({})),
            pod("b", 9, serde_json::json!({})),
            pod("c", 1, serde_json::json!({})),
        ];
        assert_eq!(newest(pods).unwrap().name_any(), "b");
        assert!(newest(vec![]).is_none());
    }

    #[test]
    fn notices_name_the_attempt() {
        let a = Attempt { stage: "test".into(), number: 2, job: "nightly-test-2-x".into() };
        assert_eq!(
            notice(&a, "its pod is gone (Job nightly-test-2-x deleted)"),
            "stage test attempt 2: its pod is gone (Job nightly-test-2-x deleted)"
        );
    }

    #[test]
    fn lines_lose_their_newline_and_survive_bad_utf8() {
        assert_eq!(strip_newline(b"ok 1\r\n"), b"ok 1");
        assert_eq!(strip_newline(b"last"), b"last");
        let reader: Reader = Box::pin(futures::io::Cursor::new(b"one\ntw\xffo\nthree".to_vec()));
        let events: Vec<LogEvent> =
            futures::executor::block_on(lines(reader, "s".into()).map(|e| e.unwrap()).collect());
        let texts: Vec<String> = events
            .into_iter()
            .map(|e| match e {
                LogEvent::Line { text, .. } => text,
                LogEvent::Notice(n) => n,
            })
            .collect();
        assert_eq!(texts, ["one", "tw\u{fffd}o", "three"]);
    }
}

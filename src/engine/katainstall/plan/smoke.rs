//! The smoke test: an HTTP server pod under the default shim's RuntimeClass
//! and a client Job that fetches its page by pod IP, as Kata's CI does.
//!
//! One smoke test runs per key: a hash of the generation and the set of
//! installed nodes. A node that finishes installing (or a spec change)
//! makes a new key, so the install is verified again; a finished test is
//! not repeated for the same key. Its outcome is the `Verified` condition.

use std::time::Duration;

use super::Planner;
use crate::api::katainstall::{SmokeResult, SmokeStatus};
use crate::engine::conditions::ConditionStatus;
use crate::engine::duration::{format_duration, later, parse_duration};
use crate::engine::job::JobState;
use crate::engine::katainstall::validate::default_shim;
use crate::engine::katainstall::view::{PodState, SmokeServer};
use crate::engine::katainstall::{reasons, runtime_class_name, short_hash, Action, View, DEFAULT_SMOKE_TIMEOUT};
use crate::engine::note::Note;

/// The key of the smoke test for `generation` and the `installed` nodes.
pub fn smoke_key(generation: i64, installed: &[String]) -> String {
    let mut nodes = installed.to_vec();
    nodes.sort();
    short_hash(&[&generation.to_string(), &nodes.join(",")])
}

impl Planner<'_> {
    /// Decides the smoke test's next step: start one for a new key, create
    /// the client once the server serves, conclude from the client (or a
    /// failed server, or the deadline), delete the objects of other keys and
    /// of finished tests; hands on the `Verified` condition.
    pub(super) fn smoke(&mut self) {
        let (view, observed, now) = (self.view, self.observed, self.now);
        let previous = view.status.smoke.clone();
        let any_objects = !observed.smoke_servers.is_empty() || !observed.smoke_clients.is_empty();
        let delete_all = || any_objects.then_some(Action::DeleteSmoke { keep_key: None });
        if view.spec.smoke_test.enabled == Some(false) {
            self.actions.extend(delete_all());
            self.verified =
                (ConditionStatus::Unknown, reasons::SMOKE_TEST_DISABLED, "spec.smokeTest.enabled is false".into());
            return;
        }
        let class = runtime_class_name(default_shim(view.spec).unwrap_or_default());
        if self.installed.is_empty() {
            self.verified =
                (ConditionStatus::Unknown, reasons::WAITING_FOR_INSTALL, "no node has Kata installed yet".into());
            return;
        }
        let key = smoke_key(view.generation, &self.installed);
        let Some(mut record) = previous.filter(|p| p.key == key) else {
            if any_objects {
                self.actions.push(Action::DeleteSmoke { keep_key: Some(key.clone()) });
            }
            self.actions.push(Action::CreateSmokeServer { key: key.clone() });
            let message = format!("started: HTTP server pod with RuntimeClass {class}, client fetching its page");
            self.notes.push(Note::normal(reasons::SMOKE_TEST_STARTED, format!("smoke test {key} {message}")));
            let started =
                SmokeStatus { key, result: SmokeResult::Running, start_time: Some(now), message: Some(message) };
            self.status.smoke = Some(started);
            self.verified = (ConditionStatus::Unknown, reasons::SMOKE_TEST_RUNNING, "the smoke test is running".into());
            self.wake.at(later(now, timeout(view)));
            return;
        };
        if record.result != SmokeResult::Running {
            self.actions.extend(delete_all());
            self.verified = condition_of(&record);
            self.status.smoke = Some(record);
            return;
        }
        let server = observed.smoke_servers.iter().find(|s| s.key == key);
        let client = observed.smoke_clients.iter().find(|c| c.key == key);
        let deadline = later(record.start_time.unwrap_or(now), timeout(view));
        let outcome: Option<(bool, String)> = match (client.map(|c| &c.state), server) {
            (Some(JobState::Succeeded), _) => {
                let node = server.and_then(|s| s.node.as_deref()).unwrap_or("a Kata node");
                Some((true, format!("a pod with RuntimeClass {class} on {node} served the page to the client")))
            }
            (Some(JobState::Failed), _) => {
                let why = client.and_then(|c| c.message.as_deref()).unwrap_or("the client Job failed");
                Some((false, format!("the client could not fetch the page from the {class} pod: {why}")))
            }
            (_, Some(SmokeServer { state: PodState::Failed(why), .. })) => {
                Some((false, format!("the HTTP server pod with RuntimeClass {class} failed: {why}")))
            }
            _ if now >= deadline => {
                let progress = match (server, client) {
                    (None, _) => "the server pod does not exist".to_string(),
                    (Some(s), None) => match &s.state {
                        PodState::Pending(m) => format!("the server pod is still starting ({m})"),
                        _ => "the server pod has no IP yet".to_string(),
                    },
                    (Some(_), Some(_)) => "the client has not finished".to_string(),
                };
                Some((false, format!("timed out after {}: {progress}", format_duration(timeout(view)))))
            }
            _ => None,
        };
        match outcome {
            Some((passed, message)) => {
                record.result = if passed { SmokeResult::Passed } else { SmokeResult::Failed };
                record.message = Some(message.clone());
                self.actions.extend(delete_all());
                self.notes.push(if passed {
                    Note::normal(reasons::SMOKE_TEST_PASSED, message)
                } else {
                    Note::warning(reasons::SMOKE_TEST_FAILED, message)
                });
            }
            None => {
                match server {
                    None => self.actions.push(Action::CreateSmokeServer { key: key.clone() }),
                    Some(SmokeServer { state: PodState::Ready, ip: Some(ip), .. }) if client.is_none() => {
                        self.actions.push(Action::CreateSmokeClient { key: key.clone(), server_ip: ip.clone() })
                    }
                    _ => {}
                }
                self.wake.at(deadline);
            }
        }
        self.verified = condition_of(&record);
        self.status.smoke = Some(record);
    }
}

/// How long one smoke test may take.
fn timeout(view: &View) -> Duration {
    let std = view.spec.smoke_test.timeout.as_deref().and_then(|t| parse_duration(t).ok());
    std.unwrap_or(DEFAULT_SMOKE_TIMEOUT)
}

/// The `Verified` condition a smoke record makes.
fn condition_of(record: &SmokeStatus) -> (ConditionStatus, &'static str, String) {
    let message = record.message.clone().unwrap_or_default();
    match record.result {
        SmokeResult::Passed => (ConditionStatus::True, reasons::SMOKE_TEST_PASSED, message),
        SmokeResult::Failed => (ConditionStatus::False, reasons::SMOKE_TEST_FAILED, message),
        SmokeResult::Running => (ConditionStatus::Unknown, reasons::SMOKE_TEST_RUNNING, message),
    }
}

//! The smoke test: an HTTP server pod under the default shim's RuntimeClass
//! and a client Job that fetches its page by pod IP, as Kata's CI does.
//!
//! One smoke test runs per key: a hash of the generation and the set of
//! installed nodes. A node that finishes installing (or a spec change)
//! makes a new key, so the install is verified again; a finished test is
//! not repeated for the same key.

use chrono::{DateTime, Utc};

use super::validate::default_shim;
use super::{note, runtime_class_name, short_hash, KataAction, KataObserved, KataView, PodState};
use crate::api::katainstall::{SmokeResult, SmokeStatus};
use crate::engine::conditions::ConditionStatus;
use crate::engine::duration::{format_duration, later, parse_duration};
use crate::engine::observed::JobState;
use crate::engine::planner::Note;

/// What the smoke test needs done, and the `Verified` condition.
pub struct SmokeStep {
    /// The record to keep in status.
    pub record: Option<SmokeStatus>,
    /// What to create or delete.
    pub actions: Vec<KataAction>,
    /// Events.
    pub notes: Vec<Note>,
    /// `Verified`: status, reason, message.
    pub condition: (ConditionStatus, &'static str, String),
    /// When the running test times out.
    pub wake: Option<DateTime<Utc>>,
}

/// The key of the smoke test for `generation` and the `installed` nodes.
pub fn smoke_key(generation: i64, installed: &[String]) -> String {
    let mut nodes = installed.to_vec();
    nodes.sort();
    short_hash(&[&generation.to_string(), &nodes.join(",")])
}

/// Decides the smoke test's next step.
pub fn plan_smoke(view: &KataView, installed: &[String], observed: &KataObserved, now: DateTime<Utc>) -> SmokeStep {
    let previous = view.status.smoke.clone();
    let any_objects = !observed.smoke_servers.is_empty() || !observed.smoke_clients.is_empty();
    let delete_all = || any_objects.then_some(KataAction::DeleteSmoke { keep_key: None });
    let mut step = SmokeStep {
        record: previous.clone(),
        actions: Vec::new(),
        notes: Vec::new(),
        condition: (ConditionStatus::Unknown, "", String::new()),
        wake: None,
    };
    if view.spec.smoke_test.enabled == Some(false) {
        step.actions.extend(delete_all());
        step.condition = (ConditionStatus::Unknown, "SmokeTestDisabled", "spec.smokeTest.enabled is false".into());
        return step;
    }
    let shim = default_shim(view.spec).unwrap_or_default();
    let class = runtime_class_name(shim);
    if installed.is_empty() {
        step.condition = (ConditionStatus::Unknown, "WaitingForInstall", "no node has Kata installed yet".into());
        return step;
    }
    let key = smoke_key(view.generation, installed);
    let current = previous.filter(|p| p.key == key);
    let Some(mut record) = current else {
        if any_objects {
            step.actions.push(KataAction::DeleteSmoke { keep_key: Some(key.clone()) });
        }
        step.actions.push(KataAction::CreateSmokeServer { key: key.clone() });
        let message = format!("started: HTTP server pod with RuntimeClass {class}, client fetching its page");
        step.notes.push(note(false, "SmokeTestStarted", format!("smoke test {key} {message}")));
        step.record =
            Some(SmokeStatus { key, result: SmokeResult::Running, start_time: Some(now), message: Some(message) });
        step.condition = (ConditionStatus::Unknown, "SmokeTestRunning", "the smoke test is running".into());
        step.wake = Some(later(now, timeout(view)));
        return step;
    };
    if record.result != SmokeResult::Running {
        step.actions.extend(delete_all());
        step.condition = condition_of(&record);
        step.record = Some(record);
        return step;
    }
    let server = observed.smoke_servers.iter().find(|s| s.key == key);
    let client = observed.smoke_clients.iter().find(|c| c.key == key);
    let started = record.start_time.unwrap_or(now);
    let deadline = later(started, timeout(view));
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
            step.actions.extend(delete_all());
            step.notes.push(if passed {
                note(false, "SmokeTestPassed", message)
            } else {
                note(true, "SmokeTestFailed", message)
            });
        }
        None => {
            match server {
                None => step.actions.push(KataAction::CreateSmokeServer { key: key.clone() }),
                Some(SmokeServer { state: PodState::Ready, ip: Some(ip), .. }) if client.is_none() => {
                    step.actions.push(KataAction::CreateSmokeClient { key: key.clone(), server_ip: ip.clone() })
                }
                _ => {}
            }
            step.wake = Some(deadline);
        }
    }
    step.condition = condition_of(&record);
    step.record = Some(record);
    step
}

use super::SmokeServer;

fn timeout(view: &KataView) -> std::time::Duration {
    let std = view.spec.smoke_test.timeout.as_deref().and_then(|t| parse_duration(t).ok());
    std.unwrap_or(super::DEFAULT_SMOKE_TIMEOUT)
}

fn condition_of(record: &SmokeStatus) -> (ConditionStatus, &'static str, String) {
    let message = record.message.clone().unwrap_or_default();
    match record.result {
        SmokeResult::Passed => (ConditionStatus::True, "SmokeTestPassed", message),
        SmokeResult::Failed => (ConditionStatus::False, "SmokeTestFailed", message),
        SmokeResult::Running => (ConditionStatus::Unknown, "SmokeTestRunning", message),
    }
}

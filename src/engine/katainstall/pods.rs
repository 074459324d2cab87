//! Reads an installer or smoke pod: ready, still coming up, or failed with
//! the error its container left (termination message, else waiting reason).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::view::PodState;
use crate::engine::conditions::MAX_MESSAGE_BYTES;
use crate::engine::text::truncate;

/// Waiting reasons that mean the container will not come up by itself soon.
const STUCK_REASONS: [&str; 7] = [
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The state of `pod`, judged by its first container.
pub fn pod_state(pod: &Pod) -> PodState {
    let status = pod.status.clone().unwrap_or_default();
    let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
    if ready {
        return PodState::Ready;
    }
    let container = status.container_statuses.as_ref().and_then(|c| c.first());
    if let Some(failure) = container.and_then(container_failure) {
        return PodState::Failed(truncate(&failure, MAX_MESSAGE_BYTES));
    }
    if status.phase.as_deref() == Some("Failed") {
        let why = status.message.or(status.reason).unwrap_or_else(|| "pod failed".into());
        return PodState::Failed(truncate(&why, MAX_MESSAGE_BYTES));
    }
    let phase = status.phase.unwrap_or_else(|| "Pending".into());
    let unschedulable = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .and_then(|c| c.message.clone());
    let detail = unschedulable
        .or_else(|| {
            let waiting = container?.state.as_ref()?.waiting.as_ref()?;
            waiting.reason.clone()
        })
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    PodState::Pending(truncate(&format!("pod {phase}{detail}"), MAX_MESSAGE_BYTES))
}

/// The error of a container that exited non-zero (now or last time) or is
/// stuck waiting; None while it runs or starts normally.
fn container_failure(c: &ContainerStatus) -> Option<String> {
    let state = c.state.as_ref();
    let exited = |t: &k8s_openapi::api::core::v1::ContainerStateTerminated| {
        let message = t.message.as_deref().map(str::trim).filter(|m| !m.is_empty());
        match message {
            Some(m) => format!("exit code {}: {m}", t.exit_code),
            None => format!("exit code {} ({})", t.exit_code, t.reason.as_deref().unwrap_or("Error")),
        }
    };
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()).filter(|t| t.exit_code != 0) {
        return Some(exited(t));
    }
    let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).filter(|t| t.exit_code != 0);
    let waiting = state.and_then(|s| s.waiting.as_ref());
    let stuck = waiting.and_then(|w| w.reason.as_deref()).filter(|r| STUCK_REASONS.contains(r));
    match (last, stuck) {
        // Crash-looping: the last exit says why.
        (Some(t), _) => Some(exited(t)),
        (None, Some(reason)) => {
            let detail = waiting.and_then(|w| w.message.as_deref()).map(|m| format!(": {m}")).unwrap_or_default();
            Some(format!("{reason}{detail}"))
        }
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    fn container(state: serde_json::Value, last: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"phase": "Running", "containerStatuses": [{
            "name": "installer", "ready": false, "restartCount": 1, "image": "x", "imageID": "",
            "state": state, "lastState": last
        }]})
    }

    #[test]
    fn a_ready_pod_is_ready() {
        let p = pod(serde_json::json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}));
        assert_eq!(pod_state(&p), PodState::Ready);
    }

    #[test]
    fn a_crash_loop_reports_the_termination_message() {
        let p = pod(container(
            serde_json::json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}),
            serde_json::json!({"terminated": {"exitCode": 1, "message": "unknown shim: bogus\n"}}),
        ));
        assert_eq!(pod_state(&p), PodState::Failed("exit code 1: unknown shim: bogus".into()));
    }

    #[test]
    fn a_restarted_container_that_runs_again_still_reports_its_last_failure() {
        let p = pod(container(
            serde_json::json!({"running": {}}),
            serde_json::json!({"terminated": {"exitCode": 2, "reason": "Error"}}),
        ));
        assert_eq!(pod_state(&p), PodState::Failed("exit code 2 (Error)".into()));
    }

    #[test]
    fn an_image_pull_error_is_a_failure_and_container_creation_is_pending() {
        let p = pod(container(
            serde_json::json!({"waiting": {"reason": "ErrImagePull", "message": "not found"}}),
            serde_json::json!({}),
        ));
        assert_eq!(pod_state(&p), PodState::Failed("ErrImagePull: not found".into()));
        let p = pod(container(serde_json::json!({"waiting": {"reason": "ContainerCreating"}}), serde_json::json!({})));
        assert_eq!(pod_state(&p), PodState::Pending("pod Running (ContainerCreating)".into()));
        assert_eq!(pod_state(&pod(serde_json::json!({}))), PodState::Pending("pod Pending".into()));
    }
}

//! The job-completer: on a cluster without a kubelet nothing runs a pod, so
//! as soon as a stage Job's pod appears this marks it Succeeded, its first
//! container terminated with exit code 0 and `message` as its termination
//! message (a stage's outputs), and the Job controller completes the Job.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use gantry::engine::naming::LABEL_RUN;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;

use crate::metrics::Tally;

/// Starts completing the pods of stage Jobs in `namespace`; returns once the
/// watch's first list is done, with the task (abort it to stop).
pub async fn start(client: Client, namespace: &str, message: String, tally: Arc<Tally>) -> tokio::task::JoinHandle<()> {
    let api = Api::<Pod>::namespaced(client, namespace);
    let config = watcher::Config::default().labels(LABEL_RUN);
    let mut done: HashSet<String> = HashSet::new();
    crate::watch::each(api.clone(), config, "pods", move |pod: Pod| {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if is_finished(&pod) || !done.insert(uid) {
            return;
        }
        let (api, message, tally) = (api.clone(), message.clone(), tally.clone());
        tokio::spawn(async move { complete(&api, &pod, &message, &tally).await });
    })
    .await
}

fn is_finished(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// The status patch that says the pod's first container exited 0.
pub fn succeeded_status(pod: &Pod, message: &str, now: &str) -> serde_json::Value {
    let container = pod.spec.as_ref().and_then(|s| s.containers.first());
    let name = container.map(|c| c.name.clone()).unwrap_or_default();
    let image = container.and_then(|c| c.image.clone()).unwrap_or_default();
    let mut terminated = json!({"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now});
    if !message.is_empty() {
        terminated["message"] = json!(message);
    }
    json!({"status": {
        "phase": "Succeeded",
        "startTime": now,
        "containerStatuses": [{
            "name": name, "image": image, "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": terminated},
        }],
    }})
}

async fn complete(api: &Api<Pod>, pod: &Pod, message: &str, tally: &Tally) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let patch = succeeded_status(pod, message, &now);
    for attempt in 1..=5 {
        tally.count("PATCH", "pods/status");
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(e) if attempt == 5 => eprintln!("bench: completing pod {name}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200 * attempt)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_the_first_container_terminated_with_exit_0() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "stage", "image": "local/busybox:1"}]},
        }))
        .unwrap();
        let patch = succeeded_status(&pod, "n=1\n", "2024-01-01T00:00:00Z");
        assert_eq!(patch["status"]["phase"], "Succeeded");
        let status = &patch["status"]["containerStatuses"][0];
        assert_eq!(status["name"], "stage");
        assert_eq!(status["state"]["terminated"]["exitCode"], 0);
        assert_eq!(status["state"]["terminated"]["message"], "n=1\n");
        let quiet = succeeded_status(&pod, "", "2024-01-01T00:00:00Z");
        assert!(quiet["status"]["containerStatuses"][0]["state"]["terminated"].get("message").is_none());
    }
}

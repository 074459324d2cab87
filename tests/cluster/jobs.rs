//! The test bed itself: a Job created through kube-rs runs on the real
//! kubelet, completes, and its log comes back through the API.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams, PostParams};
use kube::runtime::conditions;
use kube::Api;

use crate::support::{client, wait_for, TestNamespace};

#[tokio::test]
async fn a_job_runs_to_completion_on_the_kubelet_and_its_log_is_readable() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "jobs").await;
    let jobs = Api::<Job>::namespaced(client.clone(), &ns.name);
    let job: Job = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "hello"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": "local/busybox:1",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", "echo \"sum=$((40 + 2))\"; echo from-$(hostname)"]
                }]
            }}
        }
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.expect("create Job");

    let done = wait_for(&jobs, "hello", 120, "Job completion", conditions::is_job_completed()).await;
    assert_eq!(done.status.and_then(|s| s.succeeded), Some(1), "the Job's pod succeeded");

    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let listed = pods.list(&ListParams::default().labels("job-name=hello")).await.unwrap();
    assert_eq!(listed.items.len(), 1, "one pod for the Job");
    let pod_name = listed.items[0].metadata.name.clone().unwrap();
    let log = pods.logs(&pod_name, &LogParams::default()).await.expect("read pod log through the API");
    assert!(log.contains("sum=42"), "the shell really ran: {log:?}");
    assert!(log.contains(&format!("from-{pod_name}")), "it ran in the Job's own pod: {log:?}");
    ns.delete().await;
}

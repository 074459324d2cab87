//! `spec.notify`: a CloudEvent per run and stage transition reaches a real
//! HTTP endpoint (busybox httpd with a CGI script that logs each body).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{LogParams, PostParams};
use kube::runtime::conditions::is_pod_running;
use kube::Api;
use serde_json::Value;

use crate::crds::install_crds;
use crate::support::{client, operator_config_file, wait_for, Operator, TestNamespace};
use gantry::api::pipelinerun::RunPhase;
use gantry::api::PipelineRun;

const RECEIVER: &str = r#"mkdir -p /www/cgi-bin
cat > /www/cgi-bin/events <<'CGI'
#!/bin/sh
body=$(head -c "$CONTENT_LENGTH")
echo "EVENT $CONTENT_TYPE $body" >> /proc/1/fd/1
printf 'Content-Type: text/plain\r\n\r\nok\n'
CGI
chmod +x /www/cgi-bin/events
exec httpd -f -p 8080 -h /www"#;

#[tokio::test]
async fn every_transition_is_sent_as_a_cloudevent() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "notify").await;
    // The receiver is a pod: inside the cluster's pod range, which the
    // default policy refuses, so the admin allows that range explicitly.
    let config = operator_config_file(&ns.name, "notify: {allowedDestinations: [10.88.0.0/16]}\n");
    let _operator = Operator::for_pipelines_with(&ns.name, &["--config", &config]);

    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let receiver: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "resultsdb"},
        "spec": {"containers": [{"name": "httpd", "image": "local/busybox:1", "command": ["sh", "-c", RECEIVER]}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &receiver).await.unwrap();
    let running = wait_for(&pods, "resultsdb", 60, "the receiver to run", is_pod_running()).await;
    let ip = running.status.unwrap().pod_ip.unwrap();
    // Running is not listening: wait until httpd answers (the host reaches pod IPs).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect_timeout(&format!("{ip}:8080").parse().unwrap(), Duration::from_secs(1)).is_err()
    {
        assert!(std::time::Instant::now() < deadline, "the receiver never listened on {ip}:8080");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    let run: PipelineRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": "reported"},
        "spec": {"notify": [{"url": format!("http://{ip}:8080/cgi-bin/events")}],
                 "stages": [{"name": "build", "run": {"image": "local/busybox:1", "command": ["true"]}}]}
    }))
    .unwrap();
    runs.create(&PostParams::default(), &run).await.unwrap();
    wait_for(&runs, "reported", 120, "the run to succeed", |r: Option<&PipelineRun>| {
        r.and_then(|r| r.status.as_ref()?.phase) == Some(RunPhase::Succeeded)
    })
    .await;

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let events = loop {
        let log = pods.logs("resultsdb", &LogParams::default()).await.unwrap();
        let events: Vec<Value> = log
            .lines()
            .filter_map(|l| l.strip_prefix("EVENT application/cloudevents+json "))
            .map(|body| serde_json::from_str(body).expect("the body is JSON"))
            .collect();
        if events.iter().any(|e| e["type"] == "dev.gantry.pipelinerun.succeeded")
            || std::time::Instant::now() > deadline
        {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    for expected in [
        "dev.gantry.pipelinerun.stage.started",
        "dev.gantry.pipelinerun.running",
        "dev.gantry.pipelinerun.stage.succeeded",
        "dev.gantry.pipelinerun.succeeded",
    ] {
        assert!(types.contains(&expected), "missing {expected} in {types:?}");
    }
    let done = events.iter().find(|e| e["type"] == "dev.gantry.pipelinerun.succeeded").unwrap();
    assert_eq!(done["specversion"], "1.0");
    assert_eq!(done["source"], format!("/apis/gantry.dev/v1alpha1/namespaces/{}/pipelineruns/reported", ns.name));
    assert_eq!(done["data"]["progress"], "1/1");
    ns.delete().await;
}

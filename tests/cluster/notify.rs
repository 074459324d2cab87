//! `spec.notify`: a CloudEvent per run and stage transition reaches a real
//! HTTP endpoint (busybox httpd with a CGI script that logs each body); the
//! admin's destination policy refuses internal addresses; a target that
//! hangs delays nothing else; what a crashed operator did not deliver, the
//! next one does.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{LogParams, PostParams};
use kube::runtime::conditions::is_pod_running;
use kube::Api;
use serde_json::Value;

use crate::crds::install_crds;
use crate::receiver::{Mode, Receiver};
use crate::support::{client, operator_config_file, wait_for, Operator, TestNamespace};
use gantry::api::pipelinerun::{NotificationStatus, RunPhase};
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

fn run_notifying(name: &str, urls: &[&str], stage: serde_json::Value) -> PipelineRun {
    let notify: Vec<Value> = urls.iter().map(|u| serde_json::json!({"url": u})).collect();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": name},
        "spec": {"notify": notify, "stages": [stage]}
    }))
    .unwrap()
}

fn quick_stage(command: &str) -> serde_json::Value {
    serde_json::json!({"name": "build", "run": {"image": "local/busybox:1", "command": [command]}})
}

fn notifications(run: &PipelineRun) -> NotificationStatus {
    run.status.as_ref().and_then(|s| s.notifications.clone()).unwrap_or_default()
}

#[tokio::test]
async fn a_forbidden_destination_is_an_invalid_spec_and_creates_no_job() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "notify-deny").await;
    let _operator = Operator::for_pipelines(&ns.name); // the default policy
    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    for (name, url) in [("metadata", "http://169.254.169.254/latest/meta-data"), ("loopback", "http://127.0.0.1:1/")] {
        runs.create(&PostParams::default(), &run_notifying(name, &[url], quick_stage("true"))).await.unwrap();
        let run = wait_for(&runs, name, 60, "the run to be refused", |r: Option<&PipelineRun>| {
            r.and_then(|r| r.status.as_ref()?.phase) == Some(RunPhase::Failed)
        })
        .await;
        let status = run.status.unwrap();
        let condition = status.conditions.iter().find(|c| c.type_ == "Succeeded").unwrap();
        assert_eq!(condition.reason, "InvalidSpec", "{name}");
        assert!(condition.message.starts_with("spec.notify[0].url: "), "{name}: {}", condition.message);
        assert_eq!(status.notifications, None, "{name}: nothing is sent to a refused target");
    }
    let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(client.clone(), &ns.name);
    assert!(jobs.list(&Default::default()).await.unwrap().items.is_empty(), "a refused run creates no Job");
    ns.delete().await;
}

/// The old, inline delivery spent 3 tries of 5 s per transition and target
/// inside the reconcile: with a hanging target this run's eight
/// transitions held its final status back for minutes.
#[tokio::test]
async fn a_target_that_never_answers_delays_neither_status_nor_other_targets() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "notify-hang").await;
    let hanging = Receiver::start(Mode::Hang).await;
    let answering = Receiver::start(Mode::Answer).await;
    let config = operator_config_file(&ns.name, "notify: {allowedDestinations: [127.0.0.1]}\n");
    let _operator = Operator::for_pipelines_with(&ns.name, &["--config", &config]);

    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    let failing = serde_json::json!({"name": "build", "retries": 2, "retryDelaySeconds": 1,
                                     "run": {"image": "local/busybox:1", "command": ["false"]}});
    let run = run_notifying("stuck-receiver", &[&hanging.url, &answering.url], failing);
    runs.create(&PostParams::default(), &run).await.unwrap();
    let failed = wait_for(&runs, "stuck-receiver", 75, "the run's Failed status", |r: Option<&PipelineRun>| {
        r.and_then(|r| r.status.as_ref()?.phase) == Some(RunPhase::Failed)
    })
    .await;
    assert_eq!(failed.status.as_ref().unwrap().stages[0].attempt, 3);
    let events = answering
        .wait_for(30, "the run's failure", |events| events.iter().any(|e| e["type"] == "dev.gantry.pipelinerun.failed"))
        .await;
    assert!(events.iter().filter(|e| e["type"] == "dev.gantry.pipelinerun.stage.retrying").count() >= 2);
    assert!(hanging.requests() >= 1, "the hanging target was tried");
    // The status shows where each target stands: the answering one has everything.
    let settled = wait_for(&runs, "stuck-receiver", 30, "the acknowledgements in status", |r: Option<&PipelineRun>| {
        let n = r.map(notifications).unwrap_or_default();
        n.targets.len() == 2 && n.targets[1].delivered == n.sequence && n.sequence > 0
    })
    .await;
    let outbox = notifications(&settled);
    assert_eq!(outbox.targets[0].url, hanging.url);
    assert_eq!(outbox.targets[0].delivered, 0);
    assert_eq!(outbox.pending.len() as u64, outbox.sequence, "kept for the hanging target");
    ns.delete().await;
}

#[tokio::test]
async fn transitions_a_crashed_operator_did_not_deliver_are_sent_by_the_next() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "notify-crash").await;
    let receiver = Receiver::start(Mode::Fail).await;
    let config = operator_config_file(&ns.name, "notify: {allowedDestinations: [127.0.0.1]}\n");
    let first = Operator::for_pipelines_with(&ns.name, &["--config", &config]);

    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    runs.create(&PostParams::default(), &run_notifying("resent", &[&receiver.url], quick_stage("true"))).await.unwrap();
    let unacknowledged =
        wait_for(&runs, "resent", 120, "a finished run with nothing acknowledged", |r: Option<&PipelineRun>| {
            let finished = r.and_then(|r| r.status.as_ref()?.phase) == Some(RunPhase::Succeeded);
            let n = r.map(notifications).unwrap_or_default();
            finished && n.targets.first().is_some_and(|t| t.failures > 0) && n.pending.len() as u64 == n.sequence
        })
        .await;
    let outbox = notifications(&unacknowledged);
    assert_eq!(outbox.targets[0].delivered, 0);
    assert!(outbox.targets[0].last_error.as_deref().unwrap_or("").contains("503"), "{outbox:?}");
    assert!(receiver.events().is_empty());

    first.crash();
    receiver.set_mode(Mode::Answer);
    let _second = Operator::for_pipelines_with(&ns.name, &["--config", &config]);
    let expected = outbox.sequence;
    let events = receiver
        .wait_for(90, "every transition", |events| {
            let mut ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len() as u64 >= expected
        })
        .await;
    let mut sequences: Vec<u64> = events.iter().filter_map(|e| e["data"]["sequence"].as_u64()).collect();
    sequences.sort_unstable();
    sequences.dedup();
    assert_eq!(sequences, (1..=expected).collect::<Vec<_>>(), "every recorded transition, repeats allowed");
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    for expected in ["dev.gantry.pipelinerun.stage.started", "dev.gantry.pipelinerun.succeeded"] {
        assert!(types.contains(&expected), "missing {expected} in {types:?}");
    }
    wait_for(&runs, "resent", 30, "the acknowledgements in status", |r: Option<&PipelineRun>| {
        let n = r.map(notifications).unwrap_or_default();
        n.targets.first().is_some_and(|t| t.delivered == n.sequence && t.failures == 0) && n.pending.is_empty()
    })
    .await;
    ns.delete().await;
}

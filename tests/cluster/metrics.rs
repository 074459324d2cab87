//! `/metrics`, `/healthz` and `/readyz` of a running operator, scraped while
//! it reconciles a real run.

use std::io::{Read, Write};
use std::net::TcpStream;

use kube::api::PostParams;
use kube::Api;

use crate::crds::install_crds;
use crate::support::{client, wait_for, Operator, TestNamespace};
use gantry::api::pipelinerun::RunPhase;
use gantry::api::PipelineRun;

/// A plain HTTP/1.0 GET; returns (status line, body).
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the operator's HTTP server");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// The value of the sample `series` (name with labels), 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_while_a_run_is_reconciled_and_probes_answer() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "metrics").await;
    let operator = Operator::for_pipelines(&ns.name);
    let addr = operator.http_addr();

    assert!(get(&addr, "/healthz").0.contains("200"), "healthz");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !get(&addr, "/readyz").0.contains("200") {
        assert!(std::time::Instant::now() < deadline, "readyz never became ready");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let before = get(&addr, "/metrics").1;
    let reconciles = "gantry_reconciles_total{kind=\"pipelinerun\"}";

    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    let run: PipelineRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": "scraped"},
        "spec": {"stages": [
            {"name": "a", "run": {"image": "local/busybox:1", "command": ["true"]}},
            {"name": "b", "needs": ["a"], "run": {"image": "local/busybox:1", "command": ["true"]}}
        ]}
    }))
    .unwrap();
    runs.create(&PostParams::default(), &run).await.unwrap();
    wait_for(&runs, "scraped", 120, "the run to succeed", |r: Option<&PipelineRun>| {
        r.and_then(|r| r.status.as_ref()?.phase) == Some(RunPhase::Succeeded)
    })
    .await;

    // The phase gauges come from the operator's cache, which may trail the
    // API by a moment, and the status write that finished the run triggers
    // one more reconcile: wait until the scrape shows the settled state.
    let in_flight = "gantry_reconciles_in_flight{kind=\"pipelinerun\"}";
    let settled = |m: &str| {
        sample(m, "gantry_pipelineruns{phase=\"Succeeded\"}") == 1.0
            && sample(m, "gantry_pipelinerun_stages{phase=\"Succeeded\"}") == 2.0
            && sample(m, in_flight) == 0.0
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let after = loop {
        let (status, body) = get(&addr, "/metrics");
        assert!(status.contains("200"), "{status}");
        if settled(&body) {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "metrics never showed the finished run:\n{body}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert!(sample(&after, reconciles) >= sample(&before, reconciles) + 3.0, "reconciles counted:\n{after}");
    let durations = "gantry_reconcile_duration_seconds_count{kind=\"pipelinerun\"}";
    assert!(sample(&after, durations) >= 3.0, "durations observed:\n{after}");
    assert_eq!(sample(&after, "gantry_pipelineruns{phase=\"Running\"}"), 0.0, "no run counted twice:\n{after}");
    assert!(get(&addr, "/nope").0.contains("404"));
    drop(operator);
    ns.delete().await;
}

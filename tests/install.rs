//! Gantry installed in-cluster with `kubectl apply -k manifests/`, using the
//! locally imported image `local/gantry:dev` (`e2e/operator-image.sh`):
//! RBAC is sufficient for a real run and denies what it should; two
//! replicas hand over when the leader's pod dies; /metrics answers.
//!
//! Runs after `tests/cluster` (see `make e2e`): an operator watching every
//! namespace would also reconcile the runs of those tests.

mod kubectl;

use kubectl::{eventually, fresh_namespace, kubectl, kubectl_raw};

const NS: &str = "gantry-system";
const SA: &str = "system:serviceaccount:gantry-system:gantry";

fn can_i(args: &[&str]) -> bool {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--as", SA]);
    let (_, out, _) = kubectl_raw(&full);
    out.trim() == "yes"
}

fn leader() -> String {
    kubectl(&["-n", NS, "get", "lease", "gantry", "-o", "jsonpath={.spec.holderIdentity}"]).trim().to_string()
}

fn run_phase(ns: &str, run: &str) -> String {
    kubectl_raw(&["-n", ns, "get", "pipelinerun", run, "-o", "jsonpath={.status.phase}"]).1
}

#[test]
fn installed_in_cluster_it_runs_pipelines_with_least_privilege_and_hands_over_leadership() {
    let manifests = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests");
    kubectl(&["apply", "--server-side", "--force-conflicts", "-k", manifests]);
    kubectl(&["-n", NS, "rollout", "status", "deployment/gantry", "--timeout=180s"]);

    // RBAC: enough for its work, nothing more.
    assert!(can_i(&["create", "jobs", "-n", "default"]), "it creates stage Jobs in user namespaces");
    assert!(can_i(&["patch", "pipelineruns.gantry.dev/status", "-n", "default"]));
    assert!(can_i(&["get", "pods", "--subresource=log", "-n", "default"]), "it reads stage logs (TAP)");
    assert!(!can_i(&["get", "secrets", "-A"]), "it cannot read Secrets cluster-wide");
    assert!(!can_i(&["get", "secrets", "-n", NS]), "nor in its own namespace");
    assert!(!can_i(&["create", "pods", "-n", "kube-system"]), "it cannot create pods in kube-system");
    assert!(!can_i(&["create", "pods", "-n", "default"]), "it makes Jobs, never bare pods, in user namespaces");
    assert!(!can_i(&["delete", "namespaces", "default"]));
    assert!(!can_i(&["create", "clusterrolebindings"]), "it cannot grant itself more");

    // A sample run through the in-cluster operator.
    fresh_namespace("gantry-install-test");
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/samples/pipelinerun-flatcar-chain.yaml");
    kubectl(&["-n", "gantry-install-test", "apply", "-f", sample]);
    kubectl(&[
        "-n",
        "gantry-install-test",
        "wait",
        "--for=condition=Succeeded",
        "--timeout=180s",
        "pipelinerun/flatcar-nightly",
    ]);

    // /metrics of the running operator, through its Service.
    let service_ip = kubectl(&["-n", NS, "get", "service", "gantry-metrics", "-o", "jsonpath={.spec.clusterIP}"]);
    let metrics = http_get(&format!("{}:8080", service_ip.trim()), "/metrics");
    assert!(metrics.contains("gantry_reconciles_total{kind=\"pipelinerun\"}"), "{metrics}");

    // Two replicas: kill the leader mid-run, the other finishes the run.
    kubectl(&["-n", NS, "scale", "deployment/gantry", "--replicas=2"]);
    kubectl(&["-n", NS, "rollout", "status", "deployment/gantry", "--timeout=180s"]);
    eventually("a leader", 60, || !leader().is_empty());
    let first = leader();
    let run = r#"{"apiVersion":"gantry.dev/v1alpha1","kind":"PipelineRun","metadata":{"name":"handover"},
      "spec":{"stages":[{"name":"long","run":{"image":"local/busybox:1","command":["sleep","10"]}},
                        {"name":"after","needs":["long"],"run":{"image":"local/busybox:1","command":["true"]}}]}}"#;
    let file = std::env::temp_dir().join("gantry-handover.json");
    std::fs::write(&file, run).unwrap();
    kubectl(&["-n", "gantry-install-test", "apply", "-f", file.to_str().unwrap()]);
    eventually("the long stage to run", 60, || run_phase("gantry-install-test", "handover") == "Running");
    kubectl(&["-n", NS, "delete", "pod", &first, "--grace-period=1", "--wait=false"]);
    eventually("the other replica to lead", 90, || {
        let now = leader();
        !now.is_empty() && now != first
    });
    eventually("the run to succeed", 180, || run_phase("gantry-install-test", "handover") == "Succeeded");
    let attempts = r#"jsonpath={range .items[*]}{.metadata.labels.gantry\.dev/stage}-{.metadata.labels.gantry\.dev/attempt}{"\n"}{end}"#;
    let jobs = kubectl(&["-n", "gantry-install-test", "get", "jobs", "-l", "gantry.dev/run=handover", "-o", attempts]);
    let mut jobs: Vec<&str> = jobs.lines().collect();
    jobs.sort();
    assert_eq!(jobs, ["after-1", "long-1"], "no Job made twice (stage-attempt of each Job)");

    kubectl(&["delete", "namespace", "gantry-install-test", "--wait=false"]);
    kubectl(&["-n", NS, "scale", "deployment/gantry", "--replicas=0"]);
}

/// A plain HTTP/1.0 GET returning the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

//! Gantry installed in-cluster, using the locally imported image `local/gantry:dev`
//! (`e2e/operator-image.sh`), two ways:
//! - with `kubectl apply -k manifests/`: RBAC is sufficient for a real run and denies what it
//!   should; two replicas hand over when the leader's pod dies; /metrics answers;
//! - with Helm (`e2e/helm.py install`, Helm's own library): a release recorded as the helm CLI
//!   records it, a sample run to success by the operator it installed, and an uninstall that
//!   leaves nothing of it behind.
//!
//! Runs after `tests/cluster` (see `make e2e`), one test at a time (`--test-threads=1`): the
//! kustomize install's operator watches every namespace and would also reconcile the runs of
//! other tests. The two installs share no namespace and no cluster-scoped name (the release is
//! `gantry-helm`, in `gantry-helm-system`, and its operator watches only its test's namespace),
//! and neither leaves an operator running (the kustomize one scales to 0 at its end, the Helm
//! release is uninstalled even when its test fails), so either may run first.

mod helm;
mod kubectl;

use helm::{helm, helm_raw};
use kubectl::{eventually, fresh_namespace, kubeconfig, kubectl, kubectl_raw};

const NS: &str = "gantry-system";
const SA: &str = "system:serviceaccount:gantry-system:gantry";

/// Whether the ServiceAccount `sa` (`system:serviceaccount:NS:NAME`) may do `args`.
fn can_i(sa: &str, args: &[&str]) -> bool {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--as", sa]);
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
    assert!(can_i(SA, &["create", "jobs", "-n", "default"]), "it creates stage Jobs in user namespaces");
    assert!(can_i(SA, &["patch", "pipelineruns.gantry.dev/status", "-n", "default"]));
    assert!(can_i(SA, &["get", "pods", "--subresource=log", "-n", "default"]), "it reads stage logs (TAP)");
    assert!(!can_i(SA, &["get", "secrets", "-A"]), "it cannot read Secrets cluster-wide");
    assert!(!can_i(SA, &["get", "secrets", "-n", NS]), "nor in its own namespace");
    assert!(!can_i(SA, &["create", "pods", "-n", "kube-system"]), "it cannot create pods in kube-system");
    assert!(!can_i(SA, &["create", "pods", "-n", "default"]), "it makes Jobs, never bare pods, in user namespaces");
    assert!(!can_i(SA, &["delete", "namespaces", "default"]));
    assert!(!can_i(SA, &["create", "clusterrolebindings"]), "it cannot grant itself more");

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

const RELEASE: &str = "gantry-helm";
const RELEASE_NS: &str = "gantry-helm-system";
const RELEASE_SA: &str = "system:serviceaccount:gantry-helm-system:gantry-helm";
/// The only namespace the Helm-installed operator watches (`watchNamespace`).
const RUNS_NS: &str = "gantry-helm-test";

/// `e2e/helm.py ARGS -n gantry-helm-system --kubeconfig KUBECONFIG`.
fn helm_in_cluster(args: &[&str]) -> (bool, String, String) {
    let kubeconfig = kubeconfig();
    let mut full = args.to_vec();
    full.extend_from_slice(&["-n", RELEASE_NS, "--kubeconfig", &kubeconfig]);
    helm_raw(&full)
}

/// Uninstalls the release and deletes its namespaces, also when the test fails half-way, so
/// that no operator is left to reconcile the runs of the tests after it.
struct ReleaseCleanup;

impl Drop for ReleaseCleanup {
    fn drop(&mut self) {
        let _ = helm_in_cluster(&["uninstall", RELEASE, "--ignore-not-found", "--wait", "--timeout", "120"]);
        let _ = kubectl_raw(&["delete", "namespace", RUNS_NS, RELEASE_NS, "--ignore-not-found", "--wait=false"]);
    }
}

/// Names of the objects of `kinds` labelled as the release's, in `namespace` (or cluster-wide: "").
fn release_objects(kinds: &str, namespace: &str) -> Vec<String> {
    let mut args = vec!["get", kinds, "-l", "app.kubernetes.io/instance=gantry-helm", "-o", "name"];
    if !namespace.is_empty() {
        args.extend_from_slice(&["-n", namespace]);
    }
    kubectl(&args).lines().map(str::to_string).collect()
}

/// The names of the release's records (the Secrets helm keeps, one per revision).
fn release_secrets() -> Vec<String> {
    let selector = format!("owner=helm,name={RELEASE}");
    kubectl(&["-n", RELEASE_NS, "get", "secrets", "-l", &selector, "-o", "name"]).lines().map(str::to_string).collect()
}

#[test]
fn installed_with_helm_it_runs_a_sample_and_uninstalls_cleanly() {
    // Leftovers of an interrupted earlier run.
    let _ = helm_in_cluster(&["uninstall", RELEASE, "--ignore-not-found", "--wait", "--timeout", "120"]);
    let _ = kubectl_raw(&["delete", "namespace", RELEASE_NS, "--ignore-not-found", "--wait=true", "--timeout=120s"]);
    // The kustomize install's operator (all namespaces) stops at the end of its test; when that
    // test failed half-way it may still run, and would reconcile this test's run too.
    if kubectl_raw(&["-n", NS, "get", "deployment", "gantry"]).0 {
        kubectl(&["-n", NS, "scale", "deployment/gantry", "--replicas=0"]);
        eventually("the kustomize install's operator pods to stop", 120, || {
            kubectl(&["-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=gantry", "-o", "name"]).trim().is_empty()
        });
    }
    fresh_namespace(RUNS_NS);
    let _cleanup = ReleaseCleanup;

    // `helm install gantry-helm charts/gantry -n gantry-helm-system --create-namespace --wait`.
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/gantry");
    let watch = format!("watchNamespace={RUNS_NS}");
    let (ok, out, err) = helm_in_cluster(&[
        "install",
        RELEASE,
        chart,
        "--create-namespace",
        "--set",
        &watch,
        "--wait",
        "--timeout",
        "180",
    ]);
    assert!(ok, "helm install failed: {err}\n{out}");
    assert!(out.contains("STATUS: deployed"), "helm install reports no deployed release:\n{out}");

    // Recorded as the helm CLI records a release: `helm list` and `helm uninstall` elsewhere see it.
    assert_eq!(
        release_secrets(),
        [format!("secret/sh.helm.release.v1.{RELEASE}.v1")],
        "one release record, revision 1"
    );
    let listed = helm(&["list", "-n", RELEASE_NS, "--kubeconfig", &kubeconfig()]);
    let row = listed.lines().find(|l| l.split_whitespace().next() == Some(RELEASE));
    let columns: Vec<_> = row.map(|r| r.split_whitespace().collect()).unwrap_or_default();
    assert!(
        columns.contains(&"deployed") && columns.contains(&"gantry-0.1.0"),
        "helm list shows no deployed gantry-0.1.0 release {RELEASE}:\n{listed}"
    );
    let deployment = format!("deployment/{RELEASE}");
    kubectl(&["-n", RELEASE_NS, "rollout", "status", &deployment, "--timeout=180s"]);
    let owner = kubectl(&[
        "-n",
        RELEASE_NS,
        "get",
        &deployment,
        "-o",
        r"jsonpath={.metadata.annotations.meta\.helm\.sh/release-name}",
    ]);
    assert_eq!(owner, RELEASE, "the Deployment belongs to the release");

    // The chart's RBAC, as the API server applies it.
    let sa = RELEASE_SA;
    assert!(can_i(sa, &["create", "jobs", "-n", RUNS_NS]), "it creates stage Jobs in user namespaces");
    assert!(can_i(sa, &["get", "pods", "--subresource=log", "-n", RUNS_NS]), "it reads stage logs (TAP)");
    assert!(can_i(sa, &["create", "leases", "-n", RELEASE_NS]), "it elects a leader in its own namespace");
    assert!(!can_i(sa, &["get", "secrets", "-A"]), "it cannot read Secrets cluster-wide");
    assert!(!can_i(sa, &["get", "secrets", "-n", RELEASE_NS]), "nor in its own namespace");
    assert!(!can_i(sa, &["create", "pods", "-n", RUNS_NS]), "it makes Jobs, never bare pods, in user namespaces");
    assert!(!can_i(sa, &["create", "clusterrolebindings"]), "it cannot grant itself more");

    // A sample through the operator Helm installed: flaky TAP tests, retried to success.
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/samples/pipelinerun-kola-tap-retry.yaml");
    kubectl(&["-n", RUNS_NS, "apply", "-f", sample]);
    kubectl(&["-n", RUNS_NS, "wait", "--for=condition=Succeeded", "--timeout=180s", "pipelinerun/kola-flaky"]);
    let tests = kubectl(&[
        "-n",
        RUNS_NS,
        "get",
        "pipelinerun",
        "kola-flaky",
        "-o",
        "jsonpath={.status.stages[0].tests.passed}/{.status.stages[0].tests.failed}",
    ]);
    assert_eq!(tests, "3/0", "the TAP of both attempts merged: 3 tests passed, none failed");
    let reporters = kubectl(&[
        "-n",
        RUNS_NS,
        "get",
        "events.events.k8s.io",
        "-o",
        r#"jsonpath={range .items[?(@.reportingController=="gantry")]}{.reportingInstance}{"\n"}{end}"#,
    ]);
    let reporters: Vec<_> = reporters.lines().collect();
    assert!(!reporters.is_empty(), "the operator recorded no Event about the run");
    let pod_prefix = format!("{RELEASE}-");
    assert!(
        reporters.iter().all(|r| r.starts_with(&pod_prefix)),
        "the run was reconciled by the release's operator pods only, not {reporters:?}"
    );

    // `helm uninstall --wait`: everything the release made goes; the CRDs and the runs stay
    // (Helm never deletes CRDs, and with them every custom resource).
    let (ok, out, err) = helm_in_cluster(&["uninstall", RELEASE, "--wait", "--timeout", "120"]);
    assert!(ok, "helm uninstall failed: {err}\n{out}");
    assert!(release_secrets().is_empty(), "the release record outlives the uninstall");
    let listed = helm(&["list", "-n", RELEASE_NS, "--kubeconfig", &kubeconfig()]);
    assert!(!listed.lines().skip(1).any(|l| l.starts_with(RELEASE)), "helm list still shows {RELEASE}:\n{listed}");
    let left = release_objects("deployments,services,configmaps,serviceaccounts,roles,rolebindings", RELEASE_NS);
    assert!(left.is_empty(), "the uninstall left {left:?}");
    let left = release_objects("clusterroles,clusterrolebindings", "");
    assert!(left.is_empty(), "the uninstall left {left:?}");
    eventually("the operator's pods to go", 120, || release_objects("pods", RELEASE_NS).is_empty());
    kubectl(&["get", "crd", "pipelineruns.gantry.dev"]);
    kubectl(&["-n", RUNS_NS, "get", "pipelinerun", "kola-flaky"]);
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

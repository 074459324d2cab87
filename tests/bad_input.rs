//! The bad-input corpus (`tests/bad-input/*.yaml`) against the in-cluster
//! operator, which serves every namespace as it would for many tenants.
//! Each file's first line names the field its error must name (`# field:
//! spec.timeout`); the API server's schema may refuse it first (then its
//! message names the field), else the operator does (reason `InvalidSpec`,
//! the field in the condition's message). None may create a Job, a
//! DaemonSet or restart the operator, and a well-formed run in another
//! namespace succeeds meanwhile.
//!
//! Runs after `tests/cluster` (see `make e2e`), like `tests/install.rs`.

mod kubectl;

use kubectl::{eventually, fresh_namespace, kubectl, kubectl_raw};

use std::time::{Duration, Instant};

const OPERATOR_NS: &str = "gantry-system";
const BAD_NS: &str = "gantry-bad-tenant";
const GOOD_NS: &str = "gantry-good-tenant";

/// One corpus file: its path, the field its error names, its kind and name.
struct Case {
    file: String,
    field: String,
    kind: String,
    name: String,
}

fn corpus() -> Vec<Case> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bad-input");
    let mut cases: Vec<Case> = std::fs::read_dir(dir)
        .expect("tests/bad-input")
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read corpus file");
            let field = text.lines().next().and_then(|l| l.strip_prefix("# field: ")).map(str::trim);
            let value = |key: &str| {
                text.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string()).unwrap_or_default()
            };
            let name = value("metadata: {name: ").trim_end_matches('}').to_string();
            let file = path.to_string_lossy().to_string();
            Case {
                field: field.unwrap_or_else(|| panic!("{file}: no `# field:` line")).to_string(),
                kind: value("kind: "),
                name,
                file,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.file.cmp(&b.file));
    assert!(cases.len() >= 25, "the corpus has {} cases", cases.len());
    cases
}

/// The `InvalidSpec` condition message of an object, once it has one.
fn invalid_spec_message(case: &Case) -> Option<String> {
    let mut args = vec!["get", case.kind.as_str(), case.name.as_str(), "-o", "json"];
    if case.kind != "KataInstall" {
        args.extend(["-n", BAD_NS]);
    }
    let (ok, out, _) = kubectl_raw(&args);
    let object: serde_json::Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
    let conditions = object["status"]["conditions"].as_array()?;
    conditions.iter().find(|c| c["reason"] == "InvalidSpec").and_then(|c| c["message"].as_str()).map(str::to_string)
}

fn good_run(name: &str) -> String {
    let run = serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": name},
        "spec": {"defaults": {"image": "local/busybox:1"}, "stages": [
            {"name": "build", "run": {"command": ["sh", "-c", "sleep 1"]}},
            {"name": "test", "needs": ["build"], "run": {"command": ["sh", "-c", "sleep 1"]}},
            {"name": "publish", "needs": ["test"], "run": {"command": ["true"]}},
        ]}
    });
    let file = std::env::temp_dir().join(format!("gantry-{name}.json"));
    std::fs::write(&file, run.to_string()).unwrap();
    file.to_string_lossy().to_string()
}

fn wait_succeeded(name: &str, secs: u64) -> Duration {
    let started = Instant::now();
    let timeout = format!("--timeout={secs}s");
    kubectl(&["-n", GOOD_NS, "wait", "--for=condition=Succeeded", &timeout, &format!("pipelinerun/{name}")]);
    started.elapsed()
}

fn operator_restarts() -> u64 {
    let pods = kubectl(&["-n", OPERATOR_NS, "get", "pods", "-l", "app.kubernetes.io/name=gantry", "-o", "json"]);
    let pods: serde_json::Value = serde_json::from_str(&pods).unwrap();
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default())
        .map(|c| c["restartCount"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn no_bad_input_creates_a_job_or_stops_the_operator_and_other_tenants_keep_going() {
    let manifests = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests");
    kubectl(&["apply", "--server-side", "--force-conflicts", "-k", manifests]);
    kubectl(&["-n", OPERATOR_NS, "scale", "deployment/gantry", "--replicas=1"]);
    kubectl(&["-n", OPERATOR_NS, "rollout", "status", "deployment/gantry", "--timeout=180s"]);
    fresh_namespace(BAD_NS);
    fresh_namespace(GOOD_NS);
    let restarts_before = operator_restarts();

    // The good tenant's usual pace, before any bad input.
    kubectl(&["-n", GOOD_NS, "apply", "-f", &good_run("before")]);
    let usual = wait_succeeded("before", 180);

    // Now the whole corpus at once, with the good tenant's next run.
    kubectl(&["-n", GOOD_NS, "apply", "-f", &good_run("during")]);
    let cases = corpus();
    let mut refused_by_schema = Vec::new();
    for case in &cases {
        let mut args = vec!["apply", "-f", case.file.as_str()];
        if case.kind != "KataInstall" {
            args.extend(["-n", BAD_NS]);
        }
        let (ok, _, err) = kubectl_raw(&args);
        if !ok {
            assert!(
                err.contains(&case.field),
                "{}: refused, but the error does not name {}: {err}",
                case.file,
                case.field
            );
            refused_by_schema.push(case.file.clone());
        }
    }
    let during = wait_succeeded("during", 180);
    // Generous: a loaded CI machine may be slow, but a wedged or crashing
    // operator would not finish it at all.
    let bound = usual * 3 + Duration::from_secs(60);
    assert!(during < bound, "the good tenant's run took {during:?} with the corpus applied, {usual:?} before");

    for case in cases.iter().filter(|c| !refused_by_schema.contains(&c.file)) {
        eventually(&format!("{}: InvalidSpec", case.file), 60, || invalid_spec_message(case).is_some());
        let message = invalid_spec_message(case).unwrap_or_default();
        assert!(message.contains(&case.field), "{}: the message does not name {}: {message}", case.file, case.field);
    }
    let jobs = kubectl(&["-n", BAD_NS, "get", "jobs", "-o", "name"]);
    assert!(jobs.trim().is_empty(), "bad input created Jobs: {jobs}");
    let daemonsets = kubectl(&["-n", OPERATOR_NS, "get", "daemonsets", "-o", "name"]);
    assert!(!daemonsets.contains("bad-input"), "bad input created DaemonSets: {daemonsets}");
    assert_eq!(operator_restarts(), restarts_before, "the operator restarted");
    let good_jobs = kubectl(&["-n", GOOD_NS, "get", "jobs", "-o", "name"]);
    assert_eq!(good_jobs.lines().count(), 6, "one Job per stage of the two good runs: {good_jobs}");

    for case in cases.iter().filter(|c| c.kind == "KataInstall") {
        let _ = kubectl_raw(&["delete", "katainstall", &case.name, "--wait=true", "--timeout=60s"]);
    }
    kubectl(&["delete", "namespace", BAD_NS, GOOD_NS, "--wait=false"]);
    kubectl(&["-n", OPERATOR_NS, "scale", "deployment/gantry", "--replicas=0"]);
}

//! The install artefacts, each rendered offline by its own tool and checked as installed
//! objects: the kustomize base in `manifests/` by `kubectl kustomize`, and the Helm chart in
//! `charts/gantry/` by Helm's own engine, `e2e/helm.py template` (`helm template`, from the
//! library of the PyPI package helm-python-sdk in the venv that `e2e/helm-venv.sh` makes;
//! without that venv these tests fail and say how to make it). The chart is rendered with its
//! defaults and with overrides.
//!
//! What must hold (the checks themselves are in `tests/manifest_checks/`):
//! - the CRDs each installs are exactly the generated ones, and the copies in
//!   `manifests/base/crds/` and `charts/gantry/crds/` are byte-identical to `crds/`
//!   (`make manifests-crds` refreshes them);
//! - RBAC is least privilege: no wildcard, nothing on Secrets, pods created only in the
//!   operator's namespace, and exactly the grants listed in `expected_grants` (the chart's
//!   rules equal the base's), whatever the release's name and namespace;
//! - the Deployment runs restricted (non-root, read-only root, no capabilities) with probes,
//!   and the chart's defaults render the base's Deployment;
//! - the chart's default config file is accepted by the operator and means its defaults;
//! - overrides land where they should, and values the chart refuses stop the render with
//!   the chart's message;
//! - `helm lint` finds nothing wrong, every key of `charts/gantry/values.yaml` has a `#`
//!   comment line right above it, and every `.Values` path a template uses exists (Helm
//!   renders a misspelt one as empty, silently).

mod helm;
mod manifest_checks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use gantry::config::OperatorConfig;
use serde_json::Value;

use helm::{helm, helm_raw};
use manifest_checks::{
    assert_bindings, assert_installs_the_generated_crds, assert_least_privilege, check_metrics_service,
    check_restricted_deployment, check_standard_labels, env_value, first_difference, kind, name, of_kind, parse_docs,
    strings, the_one,
};

const NAMESPACE: &str = "gantry-system";
const CHART: &str = "charts/gantry";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join(CHART)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn yaml_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {} ({e}); run `make manifests-crds`", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (path.file_name().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

/// The objects `kubectl apply -k manifests/` would apply, rendered once per test binary.
fn kustomized() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let out =
            Command::new("kubectl").arg("kustomize").arg(root().join("manifests")).output().unwrap_or_else(|e| {
                panic!("cannot run `kubectl kustomize manifests/` ({e}); kubectl must be installed")
            });
        assert!(
            out.status.success(),
            "`kubectl kustomize manifests/` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_docs(&String::from_utf8(out.stdout).expect("kustomize prints UTF-8"), "kubectl kustomize manifests/")
    })
}

/// The chart rendered by Helm's engine, as `helm template RELEASE charts/gantry -n NAMESPACE
/// --include-crds EXTRA...` prints it, parsed.
fn helm_template(release: &str, namespace: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", release, CHART, "-n", namespace, "--include-crds"];
    args.extend_from_slice(extra);
    parse_docs(&helm(&args), &format!("e2e/helm.py {}", args.join(" ")))
}

/// What `helm install gantry charts/gantry -n gantry-system` installs: the chart's defaults.
fn chart_defaults() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| helm_template("gantry", NAMESPACE, &[]))
}

/// The operator's config file in the ConfigMap `name`, parsed by the operator itself (which
/// refuses unknown keys and bad values).
fn config_file(docs: &[Value], name: &str, where_: &str) -> OperatorConfig {
    let text = the_one(docs, "ConfigMap", name)["data"]["config.yaml"]
        .as_str()
        .unwrap_or_else(|| panic!("{where_}: the ConfigMap {name} has no config.yaml"));
    OperatorConfig::parse(text).unwrap_or_else(|e| panic!("{where_}: the operator refuses its config file: {e:#}"))
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

// ---------------------------------------------------------------------------
// CRDs

#[test]
fn the_kustomize_base_installs_exactly_the_generated_crds() {
    assert_installs_the_generated_crds(
        kustomized(),
        "`kubectl kustomize manifests/`",
        "run `make manifests-crds` and list every file of manifests/base/crds/ in manifests/base/kustomization.yaml \
         (or a kustomize transformer touches CRDs)",
    );
}

#[test]
fn the_chart_installs_exactly_the_generated_crds() {
    assert_installs_the_generated_crds(
        chart_defaults(),
        "`helm template --include-crds` (the chart's crds/)",
        "run `make manifests-crds`",
    );
}

#[test]
fn the_crd_copies_are_byte_identical_to_crds() {
    let source = yaml_files(&root().join("crds"));
    assert!(!source.is_empty(), "crds/ holds no YAML files; run `make crds`");
    for copy in ["manifests/base/crds", "charts/gantry/crds"] {
        let copied = yaml_files(&root().join(copy));
        let names: Vec<_> = copied.keys().collect();
        let want: Vec<_> = source.keys().collect();
        assert_eq!(names, want, "{copy}/ does not hold the same files as crds/; run `make manifests-crds`");
        for (file, bytes) in &source {
            assert!(
                &copied[file] == bytes,
                "{copy}/{file} differs from crds/{file}; run `make manifests-crds` (never edit the copies by hand)"
            );
        }
    }
}

#[test]
fn the_installs_leave_out_the_samples() {
    for (where_, docs) in [("`kubectl apply -k manifests/`", kustomized()), ("`helm install`", chart_defaults())] {
        for doc in docs {
            let api = doc["apiVersion"].as_str().unwrap_or("");
            assert!(
                !api.starts_with("gantry.dev/"),
                "{where_} would create the {} {}: manifests/samples/ must stay out of the install",
                kind(doc),
                name(doc)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The kustomize base

#[test]
fn kustomize_rbac_is_least_privilege() {
    let docs = kustomized();
    assert_least_privilege(docs, NAMESPACE, "manifests/");
    assert_bindings(docs, "gantry", NAMESPACE, "manifests/");
    the_one(docs, "Namespace", NAMESPACE);
}

#[test]
fn the_kustomize_deployment_runs_restricted_with_probes() {
    let docs = kustomized();
    let deployment = the_one(docs, "Deployment", "gantry");
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE, "the Deployment must live in {NAMESPACE}");
    assert_eq!(deployment["spec"]["replicas"], 1, "the Deployment runs 1 replica by default");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "gantry", "the pod must run as the ServiceAccount gantry");
    let c = container(deployment);
    assert_eq!(c["image"], "local/gantry:dev", "the image must default to local/gantry:dev");
    assert_eq!(
        c["imagePullPolicy"], "IfNotPresent",
        "imagePullPolicy must be IfNotPresent (the e2e image is imported)"
    );
    assert_eq!(c["args"], serde_json::json!(["run", "--log-format", "json"]), "wrong container args");
    assert_eq!(env_value(c, "GANTRY_SHARDS"), Some(&Value::from("1")), "the kustomize base sets GANTRY_SHARDS=1");
    check_restricted_deployment(deployment, "manifests/");
    check_metrics_service(docs, "gantry-metrics", NAMESPACE, deployment, "manifests/");
}

#[test]
fn every_kustomize_object_carries_the_standard_labels() {
    check_standard_labels(kustomized(), "kustomize", "manifests/");
}

// ---------------------------------------------------------------------------
// The chart with its default values

#[test]
fn chart_rbac_is_least_privilege_and_matches_the_kustomize_rules() {
    let docs = chart_defaults();
    assert_least_privilege(docs, NAMESPACE, "the chart");
    assert_bindings(docs, "gantry", NAMESPACE, "the chart");
    for role_kind in ["ClusterRole", "Role"] {
        let chart_rules = Value::Array(of_kind(docs, role_kind).map(|r| r["rules"].clone()).collect());
        let base_rules = Value::Array(of_kind(kustomized(), role_kind).map(|r| r["rules"].clone()).collect());
        let difference = first_difference(&chart_rules, &base_rules, String::new());
        assert!(
            chart_rules == base_rules,
            "the chart's {role_kind} rules differ from manifests/base/rbac.yaml (first at {}); keep the two in step",
            difference.unwrap_or_else(|| "a list of a different length".into())
        );
    }
}

#[test]
fn the_chart_deployment_runs_restricted_with_probes() {
    let docs = chart_defaults();
    let deployment = the_one(docs, "Deployment", "gantry");
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE, "the Deployment must live in the release namespace");
    assert_eq!(deployment["spec"]["replicas"], 1, "the chart runs 1 replica by default");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "gantry", "the pod must run as the chart's ServiceAccount gantry");
    let args = serde_json::json!([
        "run",
        "--log-level",
        "info",
        "--log-format",
        "json",
        "--config",
        "/etc/gantry/config.yaml"
    ]);
    assert_eq!(container(deployment)["args"], args, "wrong container args for the chart's defaults");
    let mount = container(deployment)["volumeMounts"]
        .as_array()
        .and_then(|mounts| mounts.iter().find(|m| m["mountPath"] == "/etc/gantry"))
        .expect("the config file's folder /etc/gantry is mounted");
    let volume = pod["volumes"]
        .as_array()
        .and_then(|volumes| volumes.iter().find(|v| v["name"] == mount["name"]))
        .expect("the mounted config volume exists");
    assert_eq!(volume["configMap"]["name"], "gantry-config", "/etc/gantry must come from the ConfigMap gantry-config");
    the_one(docs, "ConfigMap", "gantry-config");
    check_restricted_deployment(deployment, "the chart");
    check_metrics_service(docs, "gantry-metrics", NAMESPACE, deployment, "the chart");
    assert_eq!(of_kind(docs, "ServiceMonitor").count(), 0, "the ServiceMonitor must be off by default");
}

#[test]
fn every_chart_object_carries_the_standard_labels() {
    let docs = chart_defaults();
    check_standard_labels(docs, "Helm", "the chart");
    for doc in docs.iter().filter(|d| kind(d) != "CustomResourceDefinition") {
        let labels = &doc["metadata"]["labels"];
        let id = format!("the chart's {} {}", kind(doc), name(doc));
        assert_eq!(labels["app.kubernetes.io/instance"], "gantry", "{id}: app.kubernetes.io/instance is the release");
        assert_eq!(labels["app.kubernetes.io/version"], "0.1.0", "{id}: app.kubernetes.io/version is the appVersion");
        assert_eq!(labels["helm.sh/chart"], "gantry-0.1.0", "{id}: helm.sh/chart is the chart and its version");
    }
}

#[test]
fn the_chart_defaults_render_the_kustomize_deployment() {
    let chart = the_one(chart_defaults(), "Deployment", "gantry");
    let base = the_one(kustomized(), "Deployment", "gantry");
    for field in ["/spec/replicas", "/spec/strategy", "/spec/selector", "/spec/template/spec/securityContext"] {
        assert_eq!(chart.pointer(field), base.pointer(field), "the chart's Deployment {field} differs from the base's");
        assert!(chart.pointer(field).is_some(), "the Deployment lacks {field}");
    }
    let (chart_pod, base_pod) = (&chart["spec"]["template"]["spec"], &base["spec"]["template"]["spec"]);
    assert_eq!(
        chart_pod["terminationGracePeriodSeconds"], base_pod["terminationGracePeriodSeconds"],
        "terminationGracePeriodSeconds differs from the base's"
    );
    let (c, b) = (container(chart), container(base));
    for field in
        ["image", "imagePullPolicy", "env", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext"]
    {
        assert_eq!(c[field], b[field], "the chart's container {field} differs from the base's");
    }
}

#[test]
fn the_chart_default_config_is_the_operators_default() {
    let config = config_file(chart_defaults(), "gantry-config", "the chart");
    let defaults = OperatorConfig::default();
    assert_eq!(config.reconcile_concurrency(), defaults.reconcile_concurrency(), "the operator's default concurrency");
    assert_eq!(config.api_qps(), defaults.api_qps(), "the operator's default request rate");
    // The chart spells out those two numbers; everything else must be left at the default.
    let rest = OperatorConfig { reconcile_concurrency: None, api_qps: None, ..config };
    assert_eq!(rest, defaults, "the chart's default config file differs from the operator's defaults");
}

// ---------------------------------------------------------------------------
// The chart with overrides

#[test]
fn replicas_and_shards_reach_the_deployment() {
    let docs = helm_template("gantry", NAMESPACE, &["--set", "replicaCount=2,shards=2"]);
    let deployment = the_one(&docs, "Deployment", "gantry");
    assert_eq!(deployment["spec"]["replicas"], 2, "replicaCount=2 runs 2 replicas");
    assert_eq!(env_value(container(deployment), "GANTRY_SHARDS"), Some(&Value::from("2")), "shards=2");
    check_restricted_deployment(deployment, "the chart with 2 replicas and 2 shards");

    let docs = helm_template("gantry", NAMESPACE, &["--set", "shards=3"]);
    let deployment = the_one(&docs, "Deployment", "gantry");
    assert_eq!(deployment["spec"]["replicas"], 3, "shards=3 runs at least one replica per shard");
    assert_eq!(env_value(container(deployment), "GANTRY_SHARDS"), Some(&Value::from("3")), "shards=3");
}

#[test]
fn refused_values_stop_the_render_with_the_charts_message() {
    let cases: [(&[&str], &str); 3] = [
        (&["--set", "replicaCount=2", "--set", "leaderElection=false"], "replicaCount > 1 needs leaderElection: true"),
        (&["--set", "shards=65"], "shards must be 1 to 64"),
        (&["--set", "shards=2,leaderElection=false"], "shards > 1 needs leaderElection: true"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["template", "gantry", CHART, "-n", NAMESPACE];
        args.extend_from_slice(extra);
        let (ok, out, err) = helm_raw(&args);
        assert!(!ok, "e2e/helm.py {args:?} rendered values the chart refuses:\n{out}");
        let lines: Vec<_> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("helm.py: error: ") && lines[0].contains(message),
            "e2e/helm.py {args:?} must fail with one line carrying the chart's message {message:?}, got:\n{err}"
        );
    }
}

#[test]
fn config_values_reach_the_operators_config_file() {
    let extra = [
        "--set",
        "nestedVirt.allowedNamespaces={ci,kola}",
        "--set",
        "config.defaultStageTimeout=2h,config.reconcileConcurrency=4",
        "--set",
        "notify.allowPublic=false",
    ];
    let docs = helm_template("gantry", NAMESPACE, &extra);
    let config = config_file(&docs, "gantry-config", "the chart with config overrides");
    assert_eq!(config.nested_virt.allowed_namespaces, ["ci", "kola"], "nestedVirt.allowedNamespaces");
    assert!(config.nested_virt_allowed("kola") && !config.nested_virt_allowed("default"));
    assert_eq!(config.default_stage_timeout.as_deref(), Some("2h"), "config.defaultStageTimeout");
    assert_eq!(config.reconcile_concurrency(), Some(4), "config.reconcileConcurrency");
    assert!(!config.notify.allow_public, "notify.allowPublic=false");
    let checksum = |docs: &[Value]| {
        the_one(docs, "Deployment", "gantry")["spec"]["template"]["metadata"]["annotations"]["checksum/config"].clone()
    };
    assert!(checksum(&docs).is_string(), "the pod template carries the config file's checksum");
    assert_ne!(checksum(&docs), checksum(chart_defaults()), "a changed config file rolls the operator's pods");

    let docs = helm_template("gantry", NAMESPACE, &["--set", "config.enabled=false"]);
    let args = strings(&container(the_one(&docs, "Deployment", "gantry"))["args"]).join(" ");
    assert_eq!(args, "run --log-level info --log-format json", "config.enabled=false passes no --config");
}

#[test]
fn the_service_monitor_scrapes_the_metrics_service_when_enabled() {
    let extra = [
        "--set",
        "metrics.serviceMonitor.enabled=true,metrics.serviceMonitor.interval=15s",
        "--set",
        "metrics.serviceMonitor.labels.release=prometheus",
    ];
    let docs = helm_template("gantry", NAMESPACE, &extra);
    let monitor = the_one(&docs, "ServiceMonitor", "gantry");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["namespace"], NAMESPACE, "the ServiceMonitor lives in the release namespace");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus", "metrics.serviceMonitor.labels");
    let service = the_one(&docs, "Service", "gantry-metrics");
    let selector =
        monitor["spec"]["selector"]["matchLabels"].as_object().expect("the ServiceMonitor selects by labels");
    assert!(!selector.is_empty(), "the ServiceMonitor selects every Service");
    for (key, value) in selector {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the ServiceMonitor selects {key}={value}, which the metrics Service lacks"
        );
    }
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"], serde_json::json!([NAMESPACE]));
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(
        (&endpoint["port"], &endpoint["path"], &endpoint["interval"]),
        (&Value::from("http"), &Value::from("/metrics"), &Value::from("15s")),
        "the ServiceMonitor scrapes /metrics on the port named http every metrics.serviceMonitor.interval"
    );
    check_standard_labels(&docs, "Helm", "the chart with a ServiceMonitor");
}

#[test]
fn another_release_in_another_namespace_is_complete_and_apart() {
    // A values file, and --set over it (helm's order: defaults, then -f, then --set).
    let values = std::env::temp_dir().join(format!("gantry-chart-values-{}.yaml", std::process::id()));
    std::fs::write(
        &values,
        "watchNamespace: pipelines\nimage:\n  repository: registry.example/gantry\n  tag: \"1.2.3\"\n\
         serviceAccount:\n  annotations:\n    example.com/role: ci\n",
    )
    .unwrap();
    let docs = helm_template("ci", "ci-system", &["-f", values.to_str().unwrap(), "--set", "image.tag=1.2.4"]);
    let _ = std::fs::remove_file(&values);
    let where_ = "release ci in ci-system";

    let cluster_scoped = ["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"];
    for doc in docs.iter().filter(|d| !cluster_scoped.contains(&kind(d))) {
        assert_eq!(doc["metadata"]["namespace"], "ci-system", "{where_}: {} {} lives elsewhere", kind(doc), name(doc));
        assert!(
            name(doc).starts_with("ci-gantry"),
            "{where_}: {} {} is not named after the release",
            kind(doc),
            name(doc)
        );
    }
    // Cluster-wide names carry the release's, so two releases do not collide.
    for cluster_kind in ["ClusterRole", "ClusterRoleBinding"] {
        let names: Vec<_> = of_kind(&docs, cluster_kind).map(name).collect();
        assert_eq!(names, ["ci-gantry"], "{where_}: the {cluster_kind} is named after the release");
    }
    assert_least_privilege(&docs, "ci-system", where_);
    assert_bindings(&docs, "ci-gantry", "ci-system", where_);
    let sa = the_one(&docs, "ServiceAccount", "ci-gantry");
    assert_eq!(sa["metadata"]["annotations"]["example.com/role"], "ci", "{where_}: serviceAccount.annotations");

    let deployment = the_one(&docs, "Deployment", "ci-gantry");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "ci-gantry", "{where_}: the pod runs as the release's ServiceAccount");
    let c = container(deployment);
    assert_eq!(c["image"], "registry.example/gantry:1.2.4", "{where_}: the file's repository, --set's tag");
    let args = strings(&c["args"]);
    assert!(args.windows(2).any(|w| w == ["--namespace", "pipelines"]), "{where_}: watchNamespace, got {args:?}");
    let config_volume = pod["volumes"].as_array().and_then(|v| v.iter().find(|v| v["name"] == "config"));
    assert_eq!(config_volume.map(|v| &v["configMap"]["name"]), Some(&Value::from("ci-gantry-config")));
    config_file(&docs, "ci-gantry-config", where_);
    check_restricted_deployment(deployment, where_);
    check_metrics_service(&docs, "ci-gantry-metrics", "ci-system", deployment, where_);
    check_standard_labels(&docs, "Helm", where_);
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    assert_eq!(selector["app.kubernetes.io/instance"], "ci", "{where_}: its pods are told apart by the release");
}

// ---------------------------------------------------------------------------
// The chart's files

#[test]
fn helm_lint_finds_nothing_wrong() {
    let (ok, out, err) = helm_raw(&["lint", CHART, "--strict"]);
    assert!(ok, "`e2e/helm.py lint charts/gantry --strict` fails:\n{out}{err}");
    let findings: Vec<_> = out.lines().filter(|l| l.starts_with("[WARNING]") || l.starts_with("[ERROR]")).collect();
    assert!(findings.is_empty(), "helm lint finds: {findings:#?}");
    assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "unexpected lint report:\n{out}");
}

/// The key a `key: value` or `key:` line (or a `- key: value` list item) declares.
fn declared_key(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') || t == "---" {
        return None;
    }
    let t = t.strip_prefix("- ").unwrap_or(t);
    if let Some(quote) = t.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let close = t[1..].find(quote)? + 1;
        return t[close + 1..].starts_with(':').then(|| &t[1..close]);
    }
    if t.starts_with(['{', '[', '|', '>']) {
        return None;
    }
    let end = t.find(": ").or_else(|| t.strip_suffix(':').map(str::len))?;
    Some(&t[..end])
}

fn count_keys(value: &serde_yaml::Value) -> usize {
    match value {
        serde_yaml::Value::Mapping(map) => map.iter().map(|(_, v)| 1 + count_keys(v)).sum(),
        serde_yaml::Value::Sequence(items) => items.iter().map(count_keys).sum(),
        serde_yaml::Value::Tagged(tagged) => count_keys(&tagged.value),
        _ => 0,
    }
}

#[test]
fn every_chart_value_is_documented() {
    let text = read(&chart().join("values.yaml"));
    let parsed: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("charts/gantry/values.yaml is not YAML: {e}"));
    let lines: Vec<&str> = text.lines().collect();
    let mut seen = 0;
    let mut undocumented = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(key) = declared_key(line) else { continue };
        seen += 1;
        if !(i > 0 && lines[i - 1].trim_start().starts_with('#')) {
            undocumented.push(format!("line {}: {key}", i + 1));
        }
    }
    assert!(
        undocumented.is_empty(),
        "charts/gantry/values.yaml has keys without a `#` comment line right above them: {undocumented:#?}"
    );
    let keys = count_keys(&parsed);
    assert_eq!(
        seen, keys,
        "charts/gantry/values.yaml holds {keys} keys but only {seen} sit on lines of their own, so the documentation \
         check cannot see them all; write one `key: value` per line (no flow-style `{{a: b}}` mappings)"
    );
}

#[test]
fn chart_yaml_names_the_chart() {
    let chart_yaml: Value = serde_yaml::from_str(&read(&chart().join("Chart.yaml")))
        .unwrap_or_else(|e| panic!("charts/gantry/Chart.yaml is not YAML: {e}"));
    for (field, want) in [("apiVersion", "v2"), ("name", "gantry"), ("version", "0.1.0"), ("appVersion", "0.1.0")] {
        assert_eq!(chart_yaml[field], want, "charts/gantry/Chart.yaml: {field} must be {want}");
    }
}

fn templates() -> Vec<(String, String)> {
    let dir = chart().join("templates");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), read(&path)))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "charts/gantry/templates/ is empty");
    files
}

/// The template actions (`{{ ... }}`) of a file, without delimiters and trim markers.
fn actions(text: &str) -> Vec<&str> {
    text.split("{{")
        .skip(1)
        .map(|a| a.split("}}").next().unwrap_or("").trim_matches(|c: char| c == '-' || c.is_whitespace()))
        .collect()
}

/// Helm renders a `.Values` path that values.yaml lacks as empty, without a word (`helm lint`
/// too), so a misspelt key would silently drop a setting: every path a template uses must exist.
#[test]
fn every_values_reference_exists() {
    let values: serde_yaml::Value =
        serde_yaml::from_str(&read(&chart().join("values.yaml"))).expect("values.yaml parses");
    for (file, text) in templates() {
        let at = format!("charts/gantry/templates/{file}");
        for action in actions(&text) {
            for reference in action.split(".Values.").skip(1) {
                let path: String =
                    reference.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.').collect();
                let mut node = &values;
                for key in path.trim_end_matches('.').split('.') {
                    node = node.get(key).unwrap_or_else(|| {
                        panic!("{at} uses .Values.{path}, which charts/gantry/values.yaml does not define")
                    });
                }
            }
        }
    }
}

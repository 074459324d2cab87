//! The install artefacts: the kustomize base in `manifests/` and the Helm chart in
//! `charts/gantry/`. No cluster needed: `kubectl kustomize` renders the base offline, and
//! the chart is checked file by file (there is no helm binary here, so its templates are
//! checked for structure, for `.Values` references that exist, and, with the template
//! actions blanked out, for YAML that parses).
//!
//! What must hold:
//! - the CRDs that `kubectl apply -k manifests/` installs are exactly the generated ones,
//!   and the copies in `manifests/base/crds/` and `charts/gantry/crds/` are byte-identical
//!   to `crds/` (`make manifests-crds` refreshes them);
//! - RBAC is least privilege: no wildcard, nothing on Secrets, pods created only in
//!   gantry-system, and exactly the grants listed in `expected_grants` (the chart's rules
//!   equal the base's);
//! - the Deployment runs restricted (non-root, read-only root, no capabilities) with probes;
//! - every key of `charts/gantry/values.yaml` has a `#` comment line right above it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize as _;
use serde_json::Value;

const NAMESPACE: &str = "gantry-system";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every non-empty document of a multi-document YAML stream, as JSON values.
fn parse_docs(yaml: &str, what: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .enumerate()
        .map(|(i, doc)| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: document {i} is not YAML: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The objects `kubectl apply -k manifests/` would apply, rendered once per test binary.
fn rendered() -> &'static [Value] {
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

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

fn of_kind<'a>(docs: &'a [Value], wanted: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    docs.iter().filter(move |d| kind(d) == wanted)
}

fn the_one<'a>(docs: &'a [Value], wanted_kind: &str, wanted_name: &str) -> &'a Value {
    let found: Vec<_> = docs.iter().filter(|d| kind(d) == wanted_kind && name(d) == wanted_name).collect();
    assert_eq!(found.len(), 1, "expected exactly one {wanted_kind} named {wanted_name}, found {}", found.len());
    found[0]
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|items| items.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
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

// ---------------------------------------------------------------------------
// CRDs

/// `value` with every number as a float: kustomize re-serializes the schemas' `minimum: 0.0`
/// as `0`, which is the same number to the apiserver but not to `Value`'s `==`.
fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().and_then(serde_json::Number::from_f64).map_or(value.clone(), Value::Number),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), numbers_as_floats(v))).collect()),
        _ => value.clone(),
    }
}

/// Where two JSON values first differ, as a path like `/spec/versions/0/name`.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let one_sided = x.keys().filter(|k| !y.contains_key(*k)).chain(y.keys().filter(|k| !x.contains_key(*k)));
            if let Some(k) = one_sided.min() {
                return Some(format!("{path}/{k} (present on one side only)"));
            }
            x.iter().find_map(|(k, u)| first_difference(u, &y[k], format!("{path}/{k}")))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (u, v))| first_difference(u, v, format!("{path}/{i}")))
        }
        _ => (a != b).then_some(path),
    }
}

#[test]
fn the_kustomize_base_installs_exactly_the_generated_crds() {
    let generated: BTreeMap<String, Value> = gantry::crdgen::all()
        .iter()
        .map(|crd| (crd.metadata.name.clone().unwrap(), numbers_as_floats(&serde_json::to_value(crd).unwrap())))
        .collect();
    let installed: BTreeMap<String, Value> = of_kind(rendered(), "CustomResourceDefinition")
        .map(|crd| (name(crd).to_string(), numbers_as_floats(crd)))
        .collect();
    let missing: Vec<_> = generated.keys().filter(|n| !installed.contains_key(*n)).collect();
    let extra: Vec<_> = installed.keys().filter(|n| !generated.contains_key(*n)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "`kubectl kustomize manifests/` renders the wrong set of CRDs: missing {missing:?}, not generated {extra:?}; \
         run `make manifests-crds` and list every file of manifests/base/crds/ in manifests/base/kustomization.yaml"
    );
    for (crd_name, want) in &generated {
        let difference = first_difference(&installed[crd_name], want, String::new());
        assert!(
            difference.is_none(),
            "the CRD {crd_name} rendered by `kubectl kustomize manifests/` differs from what `gantry crds` generates \
             at {} (a stale copy in manifests/base/crds/, or a kustomize transformer touching CRDs); run `make crds`",
            difference.unwrap_or_default()
        );
    }
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
fn the_install_leaves_out_the_samples() {
    for doc in rendered() {
        let api = doc["apiVersion"].as_str().unwrap_or("");
        assert!(
            !api.starts_with("gantry.dev/"),
            "`kubectl apply -k manifests/` would create the {} {}: manifests/samples/ must stay out of the install",
            kind(doc),
            name(doc)
        );
    }
}

// ---------------------------------------------------------------------------
// RBAC

/// One permission: (namespace or "" for cluster-wide, API group, resource, verb).
type Grant = (String, String, String, String);

/// Everything the operator may do, and nothing more.
fn expected_grants(namespace: &str) -> BTreeSet<Grant> {
    let cluster: &[(&str, &[&str], &[&str])] = &[
        ("gantry.dev", &["pipelineruns", "imagebuilds", "katainstalls"], &["get", "list", "watch", "patch", "update"]),
        ("gantry.dev", &["pipelineruns/status", "imagebuilds/status", "katainstalls/status"], &["patch", "update"]),
        ("gantry.dev", &["pipelineruns/finalizers", "imagebuilds/finalizers", "katainstalls/finalizers"], &["update"]),
        ("batch", &["jobs"], &["create", "delete", "get", "list", "watch", "patch"]),
        ("", &["pods"], &["get", "list", "watch"]),
        ("", &["pods/log"], &["get"]),
        ("", &["persistentvolumeclaims"], &["create", "get", "list", "watch"]),
        ("events.k8s.io", &["events"], &["create", "patch", "list"]),
        ("", &["nodes"], &["get", "list", "watch", "patch"]),
        ("node.k8s.io", &["runtimeclasses"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
    ];
    let namespaced: &[(&str, &[&str], &[&str])] = &[
        ("apps", &["daemonsets"], &["create", "delete", "get", "list", "watch", "patch", "update"]),
        ("", &["pods"], &["create", "delete"]),
        ("coordination.k8s.io", &["leases"], &["get", "create", "update", "patch", "list", "watch"]),
    ];
    let mut grants = BTreeSet::new();
    for (scope, rules) in [("", cluster), (namespace, namespaced)] {
        for (group, resources, verbs) in rules {
            for resource in *resources {
                for verb in *verbs {
                    grants.insert((scope.to_string(), group.to_string(), resource.to_string(), verb.to_string()));
                }
            }
        }
    }
    grants
}

/// Checks every rule of every (Cluster)Role in `docs` for least privilege and returns
/// the grants they add up to. `where_` names the source in failure messages.
fn check_roles(docs: &[Value], namespace: &str, where_: &str) -> BTreeSet<Grant> {
    let mut grants = BTreeSet::new();
    let roles: Vec<_> = docs.iter().filter(|d| kind(d) == "ClusterRole" || kind(d) == "Role").collect();
    assert!(!roles.is_empty(), "{where_}: no ClusterRole or Role found");
    for role in roles {
        let role_kind = kind(role);
        let role_ns = if role_kind == "Role" { role["metadata"]["namespace"].as_str().unwrap_or("") } else { "" };
        let id = format!("{where_}: {role_kind} {}", name(role));
        assert!(role.get("aggregationRule").is_none(), "{id} aggregates other ClusterRoles; list its rules instead");
        if role_kind == "Role" {
            assert_eq!(role_ns, namespace, "{id} must live in namespace {namespace}, not {role_ns:?}");
        }
        let rules = role["rules"].as_array().unwrap_or_else(|| panic!("{id} has no rules list"));
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("{id}, rule {i}");
            assert!(
                rule.get("nonResourceURLs").is_none(),
                "{at} grants nonResourceURLs, which the operator never needs"
            );
            assert!(rule.get("resourceNames").is_none(), "{at} uses resourceNames, which this check does not model");
            let (groups, resources, verbs) =
                (strings(&rule["apiGroups"]), strings(&rule["resources"]), strings(&rule["verbs"]));
            for (field, values) in [("apiGroups", &groups), ("resources", &resources), ("verbs", &verbs)] {
                assert!(!values.is_empty(), "{at} has no {field}");
                assert!(!values.iter().any(|v| v.contains('*')), "{at} uses a wildcard in {field}: {values:?}");
            }
            for resource in &resources {
                assert!(
                    *resource != "secrets" && !resource.starts_with("secrets/"),
                    "{at} grants {verbs:?} on {resource}: the operator must not be able to read Secrets"
                );
            }
            if resources.contains(&"pods") && verbs.contains(&"create") {
                assert!(
                    role_kind == "Role" && role_ns == namespace,
                    "{at} lets the operator create pods outside {namespace}; only a Role in {namespace} may"
                );
            }
            for verb in ["escalate", "bind", "impersonate"] {
                assert!(
                    !verbs.contains(&verb),
                    "{at} grants `{verb}`, which would let the operator raise its own rights"
                );
            }
            for group in &groups {
                for resource in &resources {
                    for verb in &verbs {
                        grants.insert((role_ns.to_string(), group.to_string(), resource.to_string(), verb.to_string()));
                    }
                }
            }
        }
    }
    grants
}

fn assert_grants(granted: &BTreeSet<Grant>, namespace: &str, where_: &str) {
    let expected = expected_grants(namespace);
    let show = |set: Vec<&Grant>| {
        set.iter()
            .map(|(ns, group, resource, verb)| {
                let scope = if ns.is_empty() { "cluster-wide".to_string() } else { format!("in {ns}") };
                let group = if group.is_empty() { "core" } else { group };
                format!("{verb} {group}/{resource} {scope}")
            })
            .collect::<Vec<_>>()
    };
    let extra = show(granted.difference(&expected).collect());
    let missing = show(expected.difference(granted).collect());
    assert!(extra.is_empty(), "{where_} grants more than the operator needs: {extra:#?}");
    assert!(missing.is_empty(), "{where_} lacks what the operator needs: {missing:#?}");
}

#[test]
fn kustomize_rbac_is_least_privilege() {
    let docs = rendered();
    let granted = check_roles(docs, NAMESPACE, "manifests/");
    assert_grants(&granted, NAMESPACE, "manifests/ RBAC");

    let subject = serde_json::json!([{"kind": "ServiceAccount", "name": "gantry", "namespace": NAMESPACE}]);
    for (binding, role) in [("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")] {
        let b = the_one(docs, binding, "gantry");
        assert_eq!(b["roleRef"]["kind"], role, "{binding} gantry must refer to the {role} gantry");
        assert_eq!(b["roleRef"]["name"], "gantry", "{binding} gantry must refer to the {role} gantry");
        assert_eq!(b["subjects"], subject, "{binding} gantry must bind only the ServiceAccount gantry/{NAMESPACE}");
        if binding == "RoleBinding" {
            assert_eq!(b["metadata"]["namespace"], NAMESPACE, "the RoleBinding must live in {NAMESPACE}");
        }
    }
    let sa = the_one(docs, "ServiceAccount", "gantry");
    assert_eq!(sa["metadata"]["namespace"], NAMESPACE, "the ServiceAccount gantry must live in {NAMESPACE}");
    the_one(docs, "Namespace", NAMESPACE);
}

/// A rough stand-in for `helm template`: drops lines that hold nothing but template
/// actions and replaces the remaining actions with a placeholder. Good enough to parse
/// the plain structure of simple templates, and to read the RBAC rules out of one.
fn blank_out_template(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("{{") && trimmed.ends_with("}}") && !trimmed[2..trimmed.len() - 2].contains("}}") {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").map(|e| start + e + 2).unwrap_or(rest.len());
            out.push_str("TEMPLATE");
            rest = &rest[end..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

fn chart() -> PathBuf {
    root().join("charts/gantry")
}

#[test]
fn chart_rbac_is_least_privilege_and_matches_the_kustomize_rules() {
    let text = read(&chart().join("templates/rbac.yaml"));
    let docs = parse_docs(&blank_out_template(&text), "charts/gantry/templates/rbac.yaml (actions blanked out)");
    // The chart's Role lives in the release namespace, which the placeholder stands for.
    let granted = check_roles(&docs, "TEMPLATE", "charts/gantry/templates/rbac.yaml");
    assert_grants(&granted, "TEMPLATE", "the chart's RBAC");
    for role_kind in ["ClusterRole", "Role"] {
        let chart_rules = Value::Array(of_kind(&docs, role_kind).map(|r| r["rules"].clone()).collect());
        let base_rules = Value::Array(of_kind(rendered(), role_kind).map(|r| r["rules"].clone()).collect());
        let difference = first_difference(&chart_rules, &base_rules, String::new());
        assert!(
            chart_rules == base_rules,
            "the chart's {role_kind} rules differ from manifests/base/rbac.yaml (first at {}); keep the two in step",
            difference.unwrap_or_else(|| "a list of a different length".into())
        );
    }
}

// ---------------------------------------------------------------------------
// Deployment and Service

#[test]
fn the_deployment_runs_restricted_with_probes() {
    let docs = rendered();
    let deployment = the_one(docs, "Deployment", "gantry");
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE, "the Deployment must live in {NAMESPACE}");
    assert_eq!(deployment["spec"]["replicas"], 1, "the Deployment runs 1 replica by default");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "gantry", "the pod must run as the ServiceAccount gantry");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30, "terminationGracePeriodSeconds must be 30");
    let pod_sc = &pod["securityContext"];
    assert_eq!(pod_sc["runAsNonRoot"], true, "the pod securityContext must set runAsNonRoot: true");
    assert_eq!(
        pod_sc["seccompProfile"]["type"], "RuntimeDefault",
        "the pod must use the RuntimeDefault seccomp profile"
    );
    assert!(
        pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none() && pod.get("hostIPC").is_none(),
        "the operator pod must not share the node's namespaces"
    );

    let containers = pod["containers"].as_array().expect("the pod has containers");
    assert_eq!(containers.len(), 1, "the operator pod runs one container");
    let c = &containers[0];
    assert_eq!(c["image"], "local/gantry:dev", "the image must default to local/gantry:dev");
    assert_eq!(
        c["imagePullPolicy"], "IfNotPresent",
        "imagePullPolicy must be IfNotPresent (the e2e image is imported)"
    );
    assert_eq!(c["args"], serde_json::json!(["run", "--log-format", "json"]), "wrong container args");
    let sc = &c["securityContext"];
    assert!(
        sc["runAsNonRoot"] == true || pod_sc["runAsNonRoot"] == true,
        "the container must run as non-root (runAsNonRoot: true)"
    );
    for (field, uid) in [("runAsUser", &sc["runAsUser"]), ("runAsGroup", &sc["runAsGroup"])] {
        assert!(uid.as_i64().is_some_and(|id| id != 0), "the container's {field} must be set and non-zero, got {uid}");
    }
    assert_eq!(sc["readOnlyRootFilesystem"], true, "the container must set readOnlyRootFilesystem: true");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "the container must set allowPrivilegeEscalation: false");
    assert_ne!(sc["privileged"], true, "the operator container must not be privileged");
    assert!(strings(&sc["capabilities"]["drop"]).contains(&"ALL"), "the container must drop ALL capabilities");
    assert!(sc["capabilities"].get("add").is_none(), "the container must add no capabilities");

    let port = c["ports"].as_array().and_then(|ports| ports.iter().find(|p| p["name"] == "http"));
    assert_eq!(
        port.map(|p| &p["containerPort"]),
        Some(&Value::from(8080)),
        "the container must expose port 8080 named http"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "the container needs a {probe} GET {path}");
        assert!(
            get["port"] == "http" || get["port"] == 8080,
            "the {probe} must probe the http port, got {}",
            get["port"]
        );
    }
    for resource in ["cpu", "memory"] {
        for bound in ["requests", "limits"] {
            assert!(c["resources"][bound][resource].is_string(), "the container must set resources.{bound}.{resource}");
        }
    }
    let env: BTreeMap<_, _> = c["env"]
        .as_array()
        .map(|vars| {
            vars.iter().map(|v| (v["name"].as_str().unwrap_or(""), &v["valueFrom"]["fieldRef"]["fieldPath"])).collect()
        })
        .unwrap_or_default();
    assert_eq!(
        env.get("POD_NAME").copied(),
        Some(&Value::from("metadata.name")),
        "POD_NAME must come from metadata.name"
    );
    assert_eq!(
        env.get("POD_NAMESPACE").copied(),
        Some(&Value::from("metadata.namespace")),
        "POD_NAMESPACE must come from metadata.namespace"
    );
    let leader_elect = c["env"].as_array().and_then(|vars| vars.iter().find(|v| v["name"] == "GANTRY_LEADER_ELECT"));
    assert_eq!(
        leader_elect.map(|v| &v["value"]),
        Some(&Value::from("true")),
        "the Deployment must set GANTRY_LEADER_ELECT=true, so that scaling it past one replica is safe"
    );

    let selector = deployment["spec"]["selector"]["matchLabels"].as_object().expect("the Deployment has matchLabels");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in selector {
        assert_eq!(&pod_labels[key], value, "the pod template lacks the selector label {key}={value}");
    }
    let service = the_one(docs, "Service", "gantry-metrics");
    assert_eq!(service["metadata"]["namespace"], NAMESPACE, "the Service gantry-metrics must live in {NAMESPACE}");
    assert_eq!(
        service["metadata"]["labels"]["app.kubernetes.io/name"], "gantry",
        "the Service needs app.kubernetes.io/name=gantry"
    );
    for (key, value) in service["spec"]["selector"].as_object().expect("the Service has a selector") {
        assert_eq!(&pod_labels[key], value, "the Service selects {key}={value}, which the operator pod lacks");
    }
    let http = service["spec"]["ports"].as_array().and_then(|ports| ports.iter().find(|p| p["name"] == "http"));
    assert_eq!(http.map(|p| &p["port"]), Some(&Value::from(8080)), "the Service needs port 8080 named http");
}

#[test]
fn every_object_carries_the_standard_labels() {
    for doc in rendered().iter().filter(|d| kind(d) != "CustomResourceDefinition") {
        let labels = &doc["metadata"]["labels"];
        for key in ["app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"] {
            assert!(labels[key].is_string(), "{} {} lacks the label {key}", kind(doc), name(doc));
        }
    }
}

#[test]
fn the_chart_defaults_match_the_kustomize_deployment() {
    let values: Value = serde_yaml::from_str(&read(&chart().join("values.yaml"))).expect("values.yaml parses");
    let pod = &the_one(rendered(), "Deployment", "gantry")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        values["podSecurityContext"], pod["securityContext"],
        "values.podSecurityContext differs from the base's"
    );
    assert_eq!(
        values["securityContext"], container["securityContext"],
        "values.securityContext differs from the base's"
    );
    assert_eq!(values["resources"], container["resources"], "values.resources differs from the base's");
    let image = format!(
        "{}:{}",
        values["image"]["repository"].as_str().unwrap_or(""),
        values["image"]["tag"].as_str().unwrap_or("")
    );
    assert_eq!(Value::from(image), container["image"], "values.image differs from the base's");
    assert_eq!(values["replicaCount"], 1, "replicaCount must default to 1");
    assert_eq!(values["leaderElection"], true, "leaderElection must default to true, as in the kustomize base");
    let shards = container["env"].as_array().and_then(|vars| vars.iter().find(|v| v["name"] == "GANTRY_SHARDS"));
    assert_eq!(shards.map(|v| &v["value"]), Some(&Value::from("1")), "the kustomize base sets GANTRY_SHARDS=1");
    assert_eq!(values["shards"], 1, "shards must default to 1, as in the kustomize base");
    assert_eq!(values["config"]["enabled"], true, "the chart passes its config file to the operator");
    // The file the ConfigMap template renders from these defaults must be accepted by the
    // operator itself (it refuses unknown keys and bad values).
    let rendered = serde_json::json!({
        "nestedVirt": values["nestedVirt"],
        "kataInstaller": values["kataInstaller"],
        "notify": values["notify"],
        "reconcileConcurrency": values["config"]["reconcileConcurrency"],
        "apiQps": values["config"]["apiQps"],
    });
    let config = gantry::config::OperatorConfig::parse(&serde_yaml::to_string(&rendered).unwrap())
        .unwrap_or_else(|e| panic!("the chart's default config is refused by the operator: {e:#}"));
    assert!(config.nested_virt.allowed_namespaces.is_empty(), "no namespace gets nested virt by default");
    assert_eq!(config.kata_installer, Default::default(), "the Kata installer gets no extra host access by default");
    assert_eq!(config.notify, Default::default(), "the chart's notify policy is the operator's default");
    let defaults = gantry::config::OperatorConfig::default();
    assert_eq!(config.reconcile_concurrency(), defaults.reconcile_concurrency(), "the operator's default concurrency");
    assert_eq!(config.api_qps(), defaults.api_qps(), "the operator's default request rate");
    assert_eq!(values["metrics"]["serviceMonitor"]["enabled"], false, "the ServiceMonitor must be off by default");
}

// ---------------------------------------------------------------------------
// The Helm chart's files

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
fn chart_yaml_and_values_yaml_parse() {
    let chart_yaml: Value = serde_yaml::from_str(&read(&chart().join("Chart.yaml")))
        .unwrap_or_else(|e| panic!("charts/gantry/Chart.yaml is not YAML: {e}"));
    for (field, want) in [("apiVersion", "v2"), ("name", "gantry"), ("version", "0.1.0"), ("appVersion", "0.1.0")] {
        assert_eq!(chart_yaml[field], want, "charts/gantry/Chart.yaml: {field} must be {want}");
    }
    serde_yaml::from_str::<Value>(&read(&chart().join("values.yaml")))
        .unwrap_or_else(|e| panic!("charts/gantry/values.yaml is not YAML: {e}"));
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

#[test]
fn chart_templates_are_well_formed() {
    let values: serde_yaml::Value =
        serde_yaml::from_str(&read(&chart().join("values.yaml"))).expect("values.yaml parses");
    for (file, text) in templates() {
        let at = format!("charts/gantry/templates/{file}");
        if !text.contains("{{") {
            parse_docs(&text, &at);
            continue;
        }
        assert_eq!(text.matches("{{").count(), text.matches("}}").count(), "{at}: unbalanced {{{{ and }}}}");
        let mut open = Vec::new();
        for action in actions(&text) {
            let word = action.split_whitespace().next().unwrap_or("");
            match word {
                "if" | "range" | "with" | "define" | "block" => open.push(word),
                "else" => assert!(!open.is_empty(), "{at}: `else` outside any block"),
                "end" => assert!(open.pop().is_some(), "{at}: `end` without an open block"),
                _ => {}
            }
        }
        assert!(open.is_empty(), "{at}: blocks left open: {open:?}");
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
        if file.ends_with(".yaml") {
            parse_docs(&blank_out_template(&text), &format!("{at} (template actions blanked out)"));
        }
    }
}

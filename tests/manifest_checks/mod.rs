//! What every install of Gantry must satisfy, whichever tool rendered it (`kubectl kustomize
//! manifests/` or Helm rendering `charts/gantry/`), as checks on the parsed objects. Used by
//! `tests/install_manifests.rs`. `where_` names the render in failure messages.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize as _;
use serde_json::Value;

/// Every non-empty document of a multi-document YAML stream, as JSON values.
pub fn parse_docs(yaml: &str, what: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .enumerate()
        .map(|(i, doc)| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: document {i} is not YAML: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

pub fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

pub fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

pub fn of_kind<'a>(docs: &'a [Value], wanted: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    docs.iter().filter(move |d| kind(d) == wanted)
}

pub fn the_one<'a>(docs: &'a [Value], wanted_kind: &str, wanted_name: &str) -> &'a Value {
    let found: Vec<_> = docs.iter().filter(|d| kind(d) == wanted_kind && name(d) == wanted_name).collect();
    assert_eq!(found.len(), 1, "expected exactly one {wanted_kind} named {wanted_name}, found {}", found.len());
    found[0]
}

pub fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|items| items.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// The `value` of the container env var `var_name`, if set with a plain value.
pub fn env_value<'a>(container: &'a Value, var_name: &str) -> Option<&'a Value> {
    container["env"].as_array()?.iter().find(|v| v["name"] == var_name).map(|v| &v["value"])
}

// ---------------------------------------------------------------------------
// CRDs

/// `value` with every number as a float: kustomize re-serializes the schemas' `minimum: 0.0`
/// as `0`, which is the same number to the apiserver but not to `Value`'s `==`.
pub fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().and_then(serde_json::Number::from_f64).map_or(value.clone(), Value::Number),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), numbers_as_floats(v))).collect()),
        _ => value.clone(),
    }
}

/// Where two JSON values first differ, as a path like `/spec/versions/0/name`.
pub fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
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

/// The CustomResourceDefinitions in `docs` are exactly the ones `gantry crds` generates.
/// `hint` says how to fix a difference.
pub fn assert_installs_the_generated_crds(docs: &[Value], where_: &str, hint: &str) {
    let generated: BTreeMap<String, Value> = gantry::crdgen::all()
        .iter()
        .map(|crd| (crd.metadata.name.clone().unwrap(), numbers_as_floats(&serde_json::to_value(crd).unwrap())))
        .collect();
    let installed: BTreeMap<String, Value> =
        of_kind(docs, "CustomResourceDefinition").map(|crd| (name(crd).to_string(), numbers_as_floats(crd))).collect();
    let missing: Vec<_> = generated.keys().filter(|n| !installed.contains_key(*n)).collect();
    let extra: Vec<_> = installed.keys().filter(|n| !generated.contains_key(*n)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{where_} installs the wrong set of CRDs: missing {missing:?}, not generated {extra:?}; {hint}"
    );
    for (crd_name, want) in &generated {
        let difference = first_difference(&installed[crd_name], want, String::new());
        assert!(
            difference.is_none(),
            "the CRD {crd_name} that {where_} installs differs from what `gantry crds` generates at {}; {hint}",
            difference.unwrap_or_default()
        );
    }
}

// ---------------------------------------------------------------------------
// RBAC

/// One permission: (namespace or "" for cluster-wide, API group, resource, verb).
pub type Grant = (String, String, String, String);

/// Everything the operator may do, and nothing more.
pub fn expected_grants(namespace: &str) -> BTreeSet<Grant> {
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
/// the grants they add up to.
pub fn check_roles(docs: &[Value], namespace: &str, where_: &str) -> BTreeSet<Grant> {
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

/// The (Cluster)Roles of `docs` pass `check_roles` and grant exactly `expected_grants`.
pub fn assert_least_privilege(docs: &[Value], namespace: &str, where_: &str) {
    let granted = check_roles(docs, namespace, where_);
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
    let missing = show(expected.difference(&granted).collect());
    assert!(extra.is_empty(), "{where_} RBAC grants more than the operator needs: {extra:#?}");
    assert!(missing.is_empty(), "{where_} RBAC lacks what the operator needs: {missing:#?}");
}

/// The ClusterRoleBinding and RoleBinding `name` bind the (Cluster)Role `name` to the
/// ServiceAccount `name` in `namespace`, and nothing else; that ServiceAccount is in `docs`.
pub fn assert_bindings(docs: &[Value], name: &str, namespace: &str, where_: &str) {
    let subject = serde_json::json!([{"kind": "ServiceAccount", "name": name, "namespace": namespace}]);
    for (binding, role) in [("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")] {
        let b = the_one(docs, binding, name);
        assert_eq!(b["roleRef"]["kind"], role, "{where_}: {binding} {name} must refer to the {role} {name}");
        assert_eq!(b["roleRef"]["name"], name, "{where_}: {binding} {name} must refer to the {role} {name}");
        assert_eq!(
            b["subjects"], subject,
            "{where_}: {binding} {name} must bind only the ServiceAccount {name}/{namespace}"
        );
        if binding == "RoleBinding" {
            assert_eq!(b["metadata"]["namespace"], namespace, "{where_}: the RoleBinding must live in {namespace}");
        }
    }
    let sa = the_one(docs, "ServiceAccount", name);
    assert_eq!(sa["metadata"]["namespace"], namespace, "{where_}: the ServiceAccount {name} must live in {namespace}");
}

// ---------------------------------------------------------------------------
// Deployment, Service, labels

/// What any operator Deployment must be: a restricted pod (non-root, read-only root, no
/// capabilities, default seccomp, no host namespaces), one container exposing port 8080
/// named http with liveness and readiness probes on it, resources bounded, the downward-API
/// env the operator reads, leader election on, and a selector its pods match.
pub fn check_restricted_deployment(deployment: &Value, where_: &str) {
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["terminationGracePeriodSeconds"], 30, "{where_}: terminationGracePeriodSeconds must be 30");
    let pod_sc = &pod["securityContext"];
    assert_eq!(pod_sc["runAsNonRoot"], true, "{where_}: the pod securityContext must set runAsNonRoot: true");
    assert_eq!(
        pod_sc["seccompProfile"]["type"], "RuntimeDefault",
        "{where_}: the pod must use the RuntimeDefault seccomp profile"
    );
    assert!(
        pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none() && pod.get("hostIPC").is_none(),
        "{where_}: the operator pod must not share the node's namespaces"
    );

    let containers = pod["containers"].as_array().expect("the pod has containers");
    assert_eq!(containers.len(), 1, "{where_}: the operator pod runs one container");
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert!(
        sc["runAsNonRoot"] == true || pod_sc["runAsNonRoot"] == true,
        "{where_}: the container must run as non-root (runAsNonRoot: true)"
    );
    for (field, uid) in [("runAsUser", &sc["runAsUser"]), ("runAsGroup", &sc["runAsGroup"])] {
        assert!(
            uid.as_i64().is_some_and(|id| id != 0),
            "{where_}: the container's {field} must be set and non-zero, got {uid}"
        );
    }
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{where_}: the container must set readOnlyRootFilesystem: true");
    assert_eq!(
        sc["allowPrivilegeEscalation"], false,
        "{where_}: the container must set allowPrivilegeEscalation: false"
    );
    assert_ne!(sc["privileged"], true, "{where_}: the operator container must not be privileged");
    assert!(
        strings(&sc["capabilities"]["drop"]).contains(&"ALL"),
        "{where_}: the container must drop ALL capabilities"
    );
    assert!(sc["capabilities"].get("add").is_none(), "{where_}: the container must add no capabilities");

    let port = c["ports"].as_array().and_then(|ports| ports.iter().find(|p| p["name"] == "http"));
    assert_eq!(
        port.map(|p| &p["containerPort"]),
        Some(&Value::from(8080)),
        "{where_}: the container must expose port 8080 named http"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{where_}: the container needs a {probe} GET {path}");
        assert!(
            get["port"] == "http" || get["port"] == 8080,
            "{where_}: the {probe} must probe the http port, got {}",
            get["port"]
        );
    }
    for resource in ["cpu", "memory"] {
        for bound in ["requests", "limits"] {
            assert!(
                c["resources"][bound][resource].is_string(),
                "{where_}: the container must set resources.{bound}.{resource}"
            );
        }
    }
    let field_refs: BTreeMap<_, _> = c["env"]
        .as_array()
        .map(|vars| {
            vars.iter().map(|v| (v["name"].as_str().unwrap_or(""), &v["valueFrom"]["fieldRef"]["fieldPath"])).collect()
        })
        .unwrap_or_default();
    for (var, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        assert_eq!(field_refs.get(var).copied(), Some(&Value::from(field)), "{where_}: {var} must come from {field}");
    }
    assert_eq!(
        env_value(c, "GANTRY_LEADER_ELECT"),
        Some(&Value::from("true")),
        "{where_}: the Deployment must set GANTRY_LEADER_ELECT=true, so that scaling it past one replica is safe"
    );

    let selector = deployment["spec"]["selector"]["matchLabels"].as_object().expect("the Deployment has matchLabels");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in selector {
        assert_eq!(&pod_labels[key], value, "{where_}: the pod template lacks the selector label {key}={value}");
    }
}

/// The Service `name` lives in `namespace`, selects the Deployment's pods and serves port
/// 8080 named http.
pub fn check_metrics_service(docs: &[Value], name: &str, namespace: &str, deployment: &Value, where_: &str) {
    let service = the_one(docs, "Service", name);
    assert_eq!(service["metadata"]["namespace"], namespace, "{where_}: the Service {name} must live in {namespace}");
    assert_eq!(
        service["metadata"]["labels"]["app.kubernetes.io/name"], "gantry",
        "{where_}: the Service needs app.kubernetes.io/name=gantry"
    );
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selector = service["spec"]["selector"].as_object().expect("the Service has a selector");
    assert!(!selector.is_empty(), "{where_}: the Service {name} selects every pod of the namespace");
    for (key, value) in selector {
        assert_eq!(
            &pod_labels[key], value,
            "{where_}: the Service selects {key}={value}, which the operator pod lacks"
        );
    }
    let http = service["spec"]["ports"].as_array().and_then(|ports| ports.iter().find(|p| p["name"] == "http"));
    assert_eq!(http.map(|p| &p["port"]), Some(&Value::from(8080)), "{where_}: the Service needs port 8080 named http");
}

/// Every object but the CRDs carries the recommended `app.kubernetes.io/` labels, with
/// `managed-by` naming the tool.
pub fn check_standard_labels(docs: &[Value], managed_by: &str, where_: &str) {
    for doc in docs.iter().filter(|d| kind(d) != "CustomResourceDefinition") {
        let labels = &doc["metadata"]["labels"];
        for key in ["app.kubernetes.io/name", "app.kubernetes.io/part-of"] {
            assert!(labels[key].is_string(), "{where_}: {} {} lacks the label {key}", kind(doc), name(doc));
        }
        assert_eq!(
            labels["app.kubernetes.io/managed-by"],
            managed_by,
            "{where_}: {} {} must carry app.kubernetes.io/managed-by={managed_by}",
            kind(doc),
            name(doc)
        );
    }
}

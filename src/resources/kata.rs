//! Manifests for a KataInstall: the installer DaemonSets, one RuntimeClass
//! per shim, and the smoke test's server pod and client Job.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvVar, EnvVarSource, ExecAction, HostPathVolumeSource, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector, Pod, PodSpec, PodTemplateSpec, Probe,
    SecurityContext, TCPSocketAction, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::node::v1::{Overhead, RuntimeClass, Scheduling};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::katainstall::KataInstallSpec;
use crate::config::KataInstallerHostAccess;
use crate::engine::katainstall::validate::default_shim;
use crate::engine::katainstall::{
    runtime_class_name, Role, LABEL_KATA_CONFIG, LABEL_KATA_INSTALL, LABEL_KATA_ROLE, LABEL_SMOKE_KEY,
    MARKED_FOR_CLEANUP, NODE_RUNTIME_LABEL,
};
use crate::engine::naming::LABEL_MANAGED_BY;

/// Where kata-deploy puts Kata on the host; mounted at the same path.
pub const KATA_HOST_DIR: &str = "/opt/kata";
/// A file a kata-deploy install leaves and its cleanup removes: the
/// installer pod's readiness probe tests for it (install) or its absence
/// (cleanup), so a Ready pod means the node is done.
pub const KATA_SHIM_BINARY: &str = "/opt/kata/bin/containerd-shim-kata-v2";
/// The installer's container name.
pub const INSTALLER_CONTAINER: &str = "installer";
/// The smoke test's default image.
pub const DEFAULT_SMOKE_IMAGE: &str = "busybox:1.36";
/// The port the smoke server listens on.
pub const SMOKE_PORT: i32 = 8080;
/// An unprivileged user for the smoke pods (busybox's `nobody`).
const NOBODY: i64 = 65534;

/// The installer DaemonSet's name.
pub fn daemonset_name(install: &str, role: Role) -> String {
    format!("{install}-{}", role.as_str())
}

/// The smoke server pod's name.
pub fn smoke_server_name(install: &str, key: &str) -> String {
    format!("{install}-smoke-{key}")
}

/// The smoke client Job's name.
pub fn smoke_client_name(install: &str, key: &str) -> String {
    format!("{install}-check-{key}")
}

/// The page the server serves and the client expects.
pub fn smoke_page(key: &str) -> String {
    format!("Hello from Kata Containers (smoke test {key})")
}

fn labels(install: &str, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_KATA_INSTALL.to_string(), install.to_string()),
        (LABEL_KATA_ROLE.to_string(), role.to_string()),
        (LABEL_MANAGED_BY.to_string(), "gantry".to_string()),
    ])
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

/// The installer DaemonSet. `install` runs on the nodes of
/// `spec.nodeSelector`, `cleanup` on the nodes marked
/// `katacontainers.io/kata-runtime=cleanup`. It is a node agent, so it
/// tolerates every taint. Host access: `/opt/kata` (hostPath, same path),
/// which is where kata-deploy installs, and what the operator's admin-owned
/// `kataInstaller` config grants on top (privileged, host PID, more host
/// directories), which the real kata-deploy needs to rewrite the container
/// runtime's config and restart it. Nothing more by default.
pub fn installer_daemonset(
    install: &str,
    namespace: &str,
    spec: &KataInstallSpec,
    role: Role,
    config: &str,
    host: &KataInstallerHostAccess,
    owner: Option<OwnerReference>,
) -> DaemonSet {
    let selector_labels = labels(install, role.as_str());
    let mut pod_labels = selector_labels.clone();
    pod_labels.insert(LABEL_KATA_CONFIG.into(), config.into());
    let node_selector = match role {
        Role::Install => spec.node_selector.clone(),
        Role::Cleanup => BTreeMap::from([(NODE_RUNTIME_LABEL.to_string(), MARKED_FOR_CLEANUP.to_string())]),
    };
    let ready_test = match role {
        Role::Install => format!("test -e {KATA_SHIM_BINARY}"),
        Role::Cleanup => format!("test ! -e {KATA_SHIM_BINARY}"),
    };
    let node_name = EnvVar {
        name: "NODE_NAME".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: "spec.nodeName".into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    // `/opt/kata` first (created when missing), then the admin's extra directories.
    let mut host_dirs = vec![("kata".to_string(), KATA_HOST_DIR.to_string())];
    let extra = host.host_paths.iter().map(|p| p.trim_end_matches('/')).filter(|p| *p != KATA_HOST_DIR);
    host_dirs.extend(extra.enumerate().map(|(i, p)| (format!("host-{i}"), p.to_string())));
    let container = Container {
        name: INSTALLER_CONTAINER.into(),
        image: Some(spec.installer_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec![role.as_str().into()]),
        env: Some(vec![
            node_name,
            env("SHIMS", &spec.shims.join(" ")),
            env("DEFAULT_SHIM", default_shim(spec).unwrap_or_default()),
        ]),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction { command: Some(vec!["sh".into(), "-c".into(), ready_test]) }),
            period_seconds: Some(3),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(
            host_dirs
                .iter()
                .map(|(name, path)| VolumeMount { name: name.clone(), mount_path: path.clone(), ..Default::default() })
                .collect(),
        ),
        security_context: host.privileged.then(|| SecurityContext { privileged: Some(true), ..Default::default() }),
        ..Default::default()
    };
    let meta_labels = pod_labels.clone();
    DaemonSet {
        metadata: ObjectMeta {
            name: Some(daemonset_name(install, role)),
            namespace: Some(namespace.into()),
            labels: Some(meta_labels),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: DaemonSetSpec {
            selector: LabelSelector { match_labels: Some(selector_labels), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    node_selector: Some(node_selector).filter(|s| !s.is_empty()),
                    affinity: (role == Role::Install).then(not_while_cleaning_up),
                    tolerations: Some(vec![Toleration { operator: Some("Exists".into()), ..Default::default() }]),
                    termination_grace_period_seconds: Some(10),
                    host_pid: host.host_pid.then_some(true),
                    volumes: Some(
                        host_dirs
                            .iter()
                            .map(|(name, path)| Volume {
                                name: name.clone(),
                                host_path: Some(HostPathVolumeSource {
                                    path: path.clone(),
                                    type_: (path == KATA_HOST_DIR).then(|| "DirectoryOrCreate".into()),
                                }),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Keeps the installer off nodes where the cleanup runs (a node that left
/// the selector and came back is cleaned up first).
fn not_while_cleaning_up() -> Affinity {
    let term = NodeSelectorTerm {
        match_expressions: Some(vec![NodeSelectorRequirement {
            key: NODE_RUNTIME_LABEL.into(),
            operator: "NotIn".into(),
            values: Some(vec![MARKED_FOR_CLEANUP.into()]),
        }]),
        ..Default::default()
    };
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector { node_selector_terms: vec![term] }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether an object is the KataInstall with UID `install_uid`'s: its
/// owner references name that KataInstall. Labels say nothing here, since
/// anyone can copy them; the UID is the KataInstall's alone.
pub fn is_owned_by(meta: &ObjectMeta, install_uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.kind == "KataInstall" && o.uid == install_uid)
}

/// The RuntimeClass `kata-<shim>`: handler `kata-<shim>`, the spec's pod
/// overhead for that shim, scheduled onto nodes labelled installed. `owner`
/// (the KataInstall, cluster-scoped like it) is what marks it as Gantry's.
pub fn runtime_class(
    install: &str,
    spec: &KataInstallSpec,
    shim: &str,
    config: &str,
    owner: Option<OwnerReference>,
) -> RuntimeClass {
    let name = runtime_class_name(shim);
    let mut meta_labels = labels(install, "runtime-class");
    meta_labels.insert(LABEL_KATA_CONFIG.into(), config.into());
    RuntimeClass {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(meta_labels),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        handler: name,
        overhead: spec.overhead.get(shim).map(|fixed| Overhead { pod_fixed: Some(fixed.clone()) }),
        scheduling: Some(Scheduling {
            node_selector: Some(BTreeMap::from([(NODE_RUNTIME_LABEL.to_string(), "true".to_string())])),
            tolerations: None,
        }),
    }
}

fn smoke_security() -> SecurityContext {
    SecurityContext {
        run_as_user: Some(NOBODY),
        run_as_group: Some(NOBODY),
        run_as_non_root: Some(true),
        allow_privilege_escalation: Some(false),
        ..Default::default()
    }
}

fn smoke_meta(
    install: &str,
    namespace: &str,
    name: String,
    role: &str,
    key: &str,
    owner: Option<OwnerReference>,
) -> ObjectMeta {
    let mut meta_labels = labels(install, role);
    meta_labels.insert(LABEL_SMOKE_KEY.into(), key.into());
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.into()),
        labels: Some(meta_labels),
        owner_references: owner.map(|o| vec![o]),
        ..Default::default()
    }
}

/// The smoke server: busybox `httpd` serving one page, in a pod with the
/// default shim's RuntimeClass; Ready once it accepts connections.
pub fn smoke_server_pod(
    install: &str,
    namespace: &str,
    spec: &KataInstallSpec,
    key: &str,
    owner: Option<OwnerReference>,
) -> Pod {
    let script = format!(
        "mkdir -p /tmp/www && printf '%s\\n' \"$PAGE\" > /tmp/www/index.html && exec httpd -f -p {SMOKE_PORT} -h /tmp/www"
    );
    let meta = smoke_meta(install, namespace, smoke_server_name(install, key), "smoke-server", key, owner);
    Pod {
        spec: Some(PodSpec {
            runtime_class_name: Some(runtime_class_name(default_shim(spec).unwrap_or_default())),
            restart_policy: Some("Never".into()),
            termination_grace_period_seconds: Some(1),
            automount_service_account_token: Some(false),
            containers: vec![Container {
                name: "server".into(),
                image: Some(smoke_image(spec)),
                image_pull_policy: Some("IfNotPresent".into()),
                command: Some(vec!["sh".into(), "-c".into(), script]),
                env: Some(vec![env("PAGE", &smoke_page(key))]),
                readiness_probe: Some(Probe {
                    tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(SMOKE_PORT), ..Default::default() }),
                    period_seconds: Some(2),
                    ..Default::default()
                }),
                termination_message_policy: Some("FallbackToLogsOnError".into()),
                security_context: Some(smoke_security()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        metadata: meta,
        ..Default::default()
    }
}

/// The smoke client: fetches the page from the server's pod IP (HTTP/1.0
/// over `nc`) and checks it; on failure its termination message says what
/// it got.
pub fn smoke_client_job(
    install: &str,
    namespace: &str,
    spec: &KataInstallSpec,
    key: &str,
    server_ip: &str,
    owner: Option<OwnerReference>,
) -> Job {
    // HTTP/1.0 through `nc`: every busybox has it, while busybox-static's
    // wget can crash in pods (it did on the local test cluster).
    let script = format!(
        "url=http://$SERVER_IP:{SMOKE_PORT}/index.html\n\
         fail() {{ printf '%.300s' \"$*\" > /dev/termination-log; echo \"$*\"; exit 1; }}\n\
         response=$(printf 'GET /index.html HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' \"$SERVER_IP\" | nc -w 10 \"$SERVER_IP\" {SMOKE_PORT}) \\\n\
           || fail \"cannot fetch $url\"\n\
         case \"$response\" in \"HTTP/1.\"?\" 200 \"*) ;; *) fail \"no 200 OK from $url: $(echo \"$response\" | head -n 1)\" ;; esac\n\
         page=$(printf '%s\\n' \"$response\" | tail -n 1)\n\
         [ \"$page\" = \"$PAGE\" ] || fail \"unexpected page from $url: $page\"\n\
         echo \"fetched from $url: $page\""
    );
    let meta = smoke_meta(install, namespace, smoke_client_name(install, key), "smoke-client", key, owner);
    let pod_labels = meta.labels.clone();
    Job {
        metadata: meta,
        spec: Some(JobSpec {
            backoff_limit: Some(2),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: pod_labels, ..Default::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    containers: vec![Container {
                        name: "client".into(),
                        image: Some(smoke_image(spec)),
                        image_pull_policy: Some("IfNotPresent".into()),
                        command: Some(vec!["sh".into(), "-c".into(), script]),
                        env: Some(vec![env("SERVER_IP", server_ip), env("PAGE", &smoke_page(key))]),
                        termination_message_policy: Some("FallbackToLogsOnError".into()),
                        security_context: Some(smoke_security()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn smoke_image(spec: &KataInstallSpec) -> String {
    spec.smoke_test.image.clone().unwrap_or_else(|| DEFAULT_SMOKE_IMAGE.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn spec() -> KataInstallSpec {
        KataInstallSpec {
            installer_image: "local/kata-installer:1".into(),
            shims: vec!["qemu".into(), "clh".into()],
            default_shim: Some("clh".into()),
            node_selector: BTreeMap::from([("kata".into(), "yes".into())]),
            overhead: BTreeMap::from([(
                "qemu".into(),
                BTreeMap::from([("memory".into(), Quantity("160Mi".into())), ("cpu".into(), Quantity("250m".into()))]),
            )]),
            ..Default::default()
        }
    }

    fn env_of(c: &Container) -> BTreeMap<String, EnvVar> {
        c.env.clone().unwrap().into_iter().map(|e| (e.name.clone(), e)).collect()
    }

    #[test]
    fn the_install_daemonset_passes_kata_deploy_environment_and_mode() {
        let ds = installer_daemonset("kata", "gantry-system", &spec(), Role::Install, "abc", &NO_HOST_ACCESS, None);
        assert_eq!(ds.metadata.name.as_deref(), Some("kata-install"));
        assert_eq!(ds.metadata.namespace.as_deref(), Some("gantry-system"));
        let pod = ds.spec.template.spec.clone().unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.args, Some(vec!["install".to_string()]));
        let env = env_of(c);
        let node = env["NODE_NAME"].value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
        assert_eq!(node.field_path, "spec.nodeName");
        assert_eq!(env["SHIMS"].value.as_deref(), Some("qemu clh"), "space-separated, as kata-deploy reads it");
        assert_eq!(env["DEFAULT_SHIM"].value.as_deref(), Some("clh"));
        assert_eq!(c.termination_message_policy.as_deref(), Some("FallbackToLogsOnError"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(pod.node_selector, Some(BTreeMap::from([("kata".into(), "yes".into())])));
        assert_eq!(pod.tolerations.unwrap()[0].operator.as_deref(), Some("Exists"), "a node agent tolerates all");
        let volumes = pod.volumes.unwrap();
        assert_eq!(volumes.len(), 1, "only /opt/kata from the host");
        assert_eq!(volumes[0].host_path.as_ref().unwrap().path, "/opt/kata");
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].mount_path, "/opt/kata");
        assert!(c.security_context.is_none(), "not privileged");
        assert_eq!(pod.host_pid, None);
        let affinity = pod.affinity.unwrap().node_affinity.unwrap();
        let terms = affinity.required_during_scheduling_ignored_during_execution.unwrap().node_selector_terms;
        let keep_off = &terms[0].match_expressions.as_ref().unwrap()[0];
        assert_eq!(
            (keep_off.key.as_str(), keep_off.operator.as_str(), keep_off.values.clone().unwrap()),
            (NODE_RUNTIME_LABEL, "NotIn", vec!["cleanup".to_string()]),
            "the installer keeps off nodes where the cleanup runs"
        );
        let template_labels = ds.spec.template.metadata.as_ref().unwrap().labels.clone().unwrap();
        assert_eq!(template_labels[LABEL_KATA_CONFIG], "abc");
        assert_eq!(template_labels[LABEL_KATA_INSTALL], "kata");
        let selector = ds.spec.selector.match_labels.unwrap();
        assert!(!selector.contains_key(LABEL_KATA_CONFIG), "the selector is immutable: no config hash in it");
    }

    const NO_HOST_ACCESS: KataInstallerHostAccess =
        KataInstallerHostAccess { privileged: false, host_pid: false, host_paths: Vec::new() };

    #[test]
    fn the_admin_can_grant_the_installer_what_kata_deploy_needs() {
        let host = KataInstallerHostAccess {
            privileged: true,
            host_pid: true,
            host_paths: vec!["/etc/containerd/".into(), "/opt/kata".into(), "/etc/crio".into()],
        };
        for role in [Role::Install, Role::Cleanup] {
            let ds = installer_daemonset("kata", "ns", &spec(), role, "abc", &host, None);
            let pod = ds.spec.template.spec.unwrap();
            let c = &pod.containers[0];
            assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
            assert_eq!(pod.host_pid, Some(true));
            let volumes: Vec<(String, String)> =
                pod.volumes.unwrap().into_iter().map(|v| (v.name, v.host_path.unwrap().path)).collect();
            let expected = [("kata", "/opt/kata"), ("host-0", "/etc/containerd"), ("host-1", "/etc/crio")];
            let expected: Vec<(String, String)> =
                expected.iter().map(|(n, p)| (n.to_string(), p.to_string())).collect();
            assert_eq!(volumes, expected, "/opt/kata once, the rest at their own paths");
            let mounts: Vec<&str> = c.volume_mounts.as_ref().unwrap().iter().map(|m| m.mount_path.as_str()).collect();
            assert_eq!(mounts, ["/opt/kata", "/etc/containerd", "/etc/crio"]);
        }
    }

    #[test]
    fn the_cleanup_daemonset_runs_on_nodes_marked_for_cleanup() {
        let ds = installer_daemonset("kata", "ns", &spec(), Role::Cleanup, "abc", &NO_HOST_ACCESS, None);
        assert_eq!(ds.metadata.name.as_deref(), Some("kata-cleanup"));
        let pod = ds.spec.template.spec.unwrap();
        assert_eq!(pod.containers[0].args, Some(vec!["cleanup".to_string()]));
        assert_eq!(pod.node_selector, Some(BTreeMap::from([(NODE_RUNTIME_LABEL.into(), "cleanup".into())])));
        assert_eq!(pod.affinity, None);
        let probe = pod.containers[0].readiness_probe.clone().unwrap().exec.unwrap().command.unwrap();
        assert_eq!(probe[2], format!("test ! -e {KATA_SHIM_BINARY}"));
    }

    #[test]
    fn a_runtime_class_per_shim_with_handler_overhead_and_scheduling() {
        let rc = runtime_class("kata", &spec(), "qemu", "h1", None);
        assert_eq!(rc.metadata.name.as_deref(), Some("kata-qemu"));
        assert_eq!(rc.handler, "kata-qemu");
        let fixed = rc.overhead.unwrap().pod_fixed.unwrap();
        assert_eq!(fixed["memory"], Quantity("160Mi".into()));
        let selector = rc.scheduling.unwrap().node_selector.unwrap();
        assert_eq!(selector, BTreeMap::from([(NODE_RUNTIME_LABEL.to_string(), "true".to_string())]));
        assert_eq!(rc.metadata.labels.unwrap()[LABEL_KATA_INSTALL], "kata");
        assert!(runtime_class("kata", &spec(), "clh", "h2", None).overhead.is_none());
    }

    #[test]
    fn a_runtime_class_is_gantrys_only_through_the_kata_installs_uid() {
        let owner = OwnerReference {
            api_version: "gantry.dev/v1alpha1".into(),
            kind: "KataInstall".into(),
            name: "kata".into(),
            uid: "uid-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let ours = runtime_class("kata", &spec(), "qemu", "h1", Some(owner.clone()));
        assert!(is_owned_by(&ours.metadata, "uid-1"));
        assert!(!is_owned_by(&ours.metadata, "uid-2"), "a KataInstall of the same name made anew");
        let labelled_only = runtime_class("kata", &spec(), "qemu", "h1", None);
        assert!(!is_owned_by(&labelled_only.metadata, "uid-1"), "labels are no proof");
        let other_kind = OwnerReference { kind: "Deployment".into(), ..owner };
        let foreign = ObjectMeta { owner_references: Some(vec![other_kind]), ..Default::default() };
        assert!(!is_owned_by(&foreign, "uid-1"));
    }

    #[test]
    fn the_smoke_server_uses_the_default_shim_and_the_client_checks_the_page() {
        let pod = smoke_server_pod("kata", "ns", &spec(), "k1", None);
        assert_eq!(pod.metadata.name.as_deref(), Some("kata-smoke-k1"));
        let pod_spec = pod.spec.unwrap();
        assert_eq!(pod_spec.runtime_class_name.as_deref(), Some("kata-clh"));
        let c = &pod_spec.containers[0];
        assert_eq!(c.image.as_deref(), Some(DEFAULT_SMOKE_IMAGE));
        assert!(c.command.as_ref().unwrap()[2].contains("httpd -f -p 8080 -h /tmp/www"));
        assert_eq!(env_of(c)["PAGE"].value.as_deref(), Some(smoke_page("k1").as_str()));
        let job = smoke_client_job("kata", "ns", &spec(), "k1", "10.88.0.7", None);
        assert_eq!(job.metadata.labels.as_ref().unwrap()[LABEL_SMOKE_KEY], "k1");
        let c = job.spec.unwrap().template.spec.unwrap().containers[0].clone();
        let env = env_of(&c);
        assert_eq!(env["SERVER_IP"].value.as_deref(), Some("10.88.0.7"));
        assert_eq!(env["PAGE"].value.as_deref(), Some(smoke_page("k1").as_str()));
        assert!(c.command.unwrap()[2].contains("nc -w 10 \"$SERVER_IP\" 8080"));
    }
}

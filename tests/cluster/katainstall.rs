//! KataInstall on the real node, with the stand-in installer image
//! `local/kata-installer:1` (e2e/images/kata-installer.sh): install, node
//! label, RuntimeClass, smoke test and `Verified`; a node joining and
//! leaving; a node leaving the selector cleaned up; a failing installer; deletion cleaning every node; a refused
//! spec; the host access an admin grants the installer; a second KataInstall
//! on the same node and a RuntimeClass Gantry did not create, both in
//! `Conflict`. The node and its labels are shared, so the tests that touch
//! them hold `NODE_LOCK`.

use std::time::Duration;

use gantry::api::katainstall::{KataPhase, NodeState};
use gantry::api::KataInstall;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::support::{client, kubeconfig_path, Operator, TestNamespace};

/// The one real node.
const NODE: &str = "localhost";
/// What the stand-in installer writes on the host.
const MARKER: &str = "/opt/kata/gantry-installed";
/// The host directory an admin may grant the installer (as kata-deploy
/// gets `/etc/containerd`), and what the stand-in writes there when it is mounted.
const RUNTIME_DIR: &str = "/etc/gantry-e2e-runtime";
const RUNTIME_MARKER: &str = "/etc/gantry-e2e-runtime/gantry-kata-runtime";
/// The label a test puts on the nodes its KataInstall selects.
const SELECT_LABEL: &str = "gantry.dev/e2e-kata";

static NODE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn kata_install(name: &str, ns: &str, shims: &[&str], default_shim: Option<&str>) -> KataInstall {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1",
        "kind": "KataInstall",
        "metadata": {"name": name, "labels": {"gantry.dev/e2e-test": ns}},
        "spec": {
            "installerImage": "local/kata-installer:1",
            "shims": shims,
            "defaultShim": default_shim,
            "nodeSelector": {SELECT_LABEL: ns},
            "overhead": {"qemu": {"memory": "32Mi", "cpu": "10m"}},
            "smokeTest": {"image": "local/busybox:1", "timeout": "2m"},
            "cleanupTimeout": "2m"
        }
    }))
    .unwrap()
}

fn condition(install: &KataInstall, type_: &str) -> Option<(String, String, String)> {
    let c = install.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn kubectl(args: &[&str]) -> std::process::Output {
    std::process::Command::new("kubectl").args(args).env("KUBECONFIG", kubeconfig_path()).output().unwrap()
}

/// Undoes what a failed test may leave on the shared node and cluster.
struct NodeGuard {
    ns: String,
    /// The fake node, and the real node's label, to remove (only the test
    /// holding `NODE_LOCK` may touch them).
    fake_node: Option<String>,
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        if let Some(fake_node) = &self.fake_node {
            kubectl(&["label", "node", NODE, &format!("{SELECT_LABEL}-")]);
            kubectl(&["delete", "node", fake_node, "--ignore-not-found", "--wait=false"]);
        }
        let selector = format!("gantry.dev/e2e-test={}", self.ns);
        let patch = r#"{"metadata":{"finalizers":null}}"#;
        let names = kubectl(&["get", "katainstalls", "-l", &selector, "-o", "name"]);
        for name in String::from_utf8_lossy(&names.stdout).lines() {
            kubectl(&["patch", name, "--type=merge", "-p", patch]);
            kubectl(&["delete", name, "--ignore-not-found", "--wait=false"]);
        }
    }
}

async fn label_node(client: &Client, node: &str, value: Option<&str>) {
    let patch = serde_json::json!({"metadata": {"labels": {SELECT_LABEL: value}}});
    Api::<Node>::all(client.clone()).patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

/// Polls the KataInstall until `cond` holds (a poll, not a watch: the
/// 1.20 apiserver expires watches of busy clusters early).
async fn wait_for(
    api: &Api<KataInstall>,
    name: &str,
    secs: u64,
    what: &str,
    cond: impl Fn(Option<&KataInstall>) -> bool,
) -> KataInstall {
    let mut last = None;
    for _ in 0..secs * 2 {
        last = api.get_opt(name).await.unwrap();
        if cond(last.as_ref()) {
            return last.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out after {secs}s waiting for {what} on {name}; last seen: {last:#?}")
}

async fn wait_gone<K>(api: &Api<K>, name: &str, secs: u64)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    for _ in 0..secs * 2 {
        if api.get_opt(name).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{name} still exists after {secs}s: {:#?}", api.get_opt(name).await.unwrap());
}

#[tokio::test]
async fn katainstall_installs_verifies_follows_nodes_and_cleans_up() {
    let _lock = NODE_LOCK.lock().await;
    let client = client().await;
    crate::crds::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "kata").await;
    let fake_node = format!("fake-{}", ns.name);
    let _guard = NodeGuard { ns: ns.name.clone(), fake_node: Some(fake_node.clone()) };
    let _ = std::fs::remove_file(MARKER);
    let _operator = Operator::for_kata(&ns.name);
    let installs = Api::<KataInstall>::all(client.clone());
    let nodes = Api::<Node>::all(client.clone());
    let classes = Api::<RuntimeClass>::all(client.clone());
    let name = ns.name.clone();

    // No node matches yet; the node that gets the selector label later is
    // installed and verified without anyone re-applying anything.
    installs.create(&PostParams::default(), &kata_install(&name, &ns.name, &["qemu"], None)).await.unwrap();
    wait_for(&installs, &name, 60, "Installed=NoNodesSelected", |k| {
        k.and_then(|k| condition(k, "Installed")).is_some_and(|c| c.1 == "NoNodesSelected")
    })
    .await;
    label_node(&client, NODE, Some(&ns.name)).await;
    let verified = wait_for(&installs, &name, 180, "Verified=True", |k| {
        k.and_then(|k| condition(k, "Verified")).is_some_and(|c| c.0 == "True")
    })
    .await;
    let status = verified.status.clone().unwrap();
    assert_eq!(status.phase, Some(KataPhase::Installed), "{status:#?}");
    assert_eq!((status.nodes_desired, status.nodes_installed, status.nodes_failed), (1, 1, 0));
    assert_eq!((status.nodes[0].name.as_str(), status.nodes[0].state), (NODE, NodeState::Installed));
    assert_eq!(status.runtime_classes, vec!["kata-qemu".to_string()]);
    assert_eq!(condition(&verified, "Installed").unwrap().1, "AllNodesInstalled");
    assert_eq!(condition(&verified, "Verified").unwrap().1, "SmokeTestPassed");
    assert!(verified.finalizers().contains(&"gantry.dev/kata-cleanup".to_string()));
    // `kubectl wait`, as a user would.
    let wait = kubectl(&["wait", "--for=condition=Verified", &format!("kata/{name}"), "--timeout=5s"]);
    assert!(wait.status.success(), "{}", String::from_utf8_lossy(&wait.stderr));

    let node = nodes.get(NODE).await.unwrap();
    assert_eq!(node.labels().get("katacontainers.io/kata-runtime").map(String::as_str), Some("true"));
    let class = classes.get("kata-qemu").await.unwrap();
    assert_eq!(class.handler, "kata-qemu");
    let selector = class.scheduling.clone().unwrap().node_selector.unwrap();
    assert_eq!(selector.get("katacontainers.io/kata-runtime").map(String::as_str), Some("true"));
    assert_eq!(class.overhead.clone().unwrap().pod_fixed.unwrap()["memory"].0, "32Mi");
    let marker = std::fs::read_to_string(MARKER).expect("the installer wrote its marker on the host");
    assert!(marker.contains("node=localhost") && marker.contains("shims=qemu"), "{marker}");
    assert!(!std::path::Path::new(RUNTIME_MARKER).exists(), "no host access beyond /opt/kata unless granted");
    let daemon_sets = Api::<DaemonSet>::namespaced(client.clone(), &ns.name);
    assert!(daemon_sets.get_opt(&format!("{name}-install")).await.unwrap().is_some());

    // A node that joins later shows up (no kubelet: it stays in progress), and
    // drops out again when it leaves.
    let fake: Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": fake_node, "labels": {SELECT_LABEL: ns.name}},
        "spec": {"taints": [{"key": "gantry.dev/fake-node", "effect": "NoSchedule"}]}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &fake).await.unwrap();
    let joined = wait_for(&installs, &name, 60, "the new node counted", |k| {
        k.and_then(|k| k.status.as_ref()).is_some_and(|s| s.nodes_desired == 2)
    })
    .await;
    let status = joined.status.unwrap();
    assert_eq!(status.nodes_installed, 1);
    assert_eq!(status.phase, Some(KataPhase::Installing));
    let entry = status.nodes.iter().find(|n| n.name == fake_node).expect("the new node is listed");
    assert_eq!(entry.state, NodeState::InProgress);
    nodes.delete(&fake_node, &DeleteParams::default()).await.unwrap();
    let left = wait_for(&installs, &name, 60, "the node dropped out", |k| {
        k.and_then(|k| k.status.as_ref()).is_some_and(|s| s.nodes_desired == 1 && s.nodes_installed == 1)
    })
    .await;
    let status = left.status.unwrap();
    assert!(status.nodes.iter().all(|n| n.name != fake_node), "{status:#?}");
    assert_eq!(status.phase, Some(KataPhase::Installed));

    // The node leaves the selector: the installer's cleanup runs there and the
    // node is unmarked. Selected again, it is installed again.
    label_node(&client, NODE, Some("elsewhere")).await;
    wait_for(&installs, &name, 120, "the node that left cleaned up", |k| {
        k.and_then(|k| k.status.as_ref()).is_some_and(|s| s.nodes_desired == 0 && s.nodes.is_empty())
    })
    .await;
    assert!(!std::path::Path::new(MARKER).exists(), "the cleanup ran on the node that left");
    let node = nodes.get(NODE).await.unwrap();
    assert_eq!(node.labels().get("katacontainers.io/kata-runtime"), None);
    assert_eq!(node.annotations().get("gantry.dev/kata-install"), None);
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &ns.name);
    let reasons: Vec<String> =
        events.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|e| e.reason).collect();
    assert!(reasons.iter().any(|r| r == "NodeCleanedUp"), "{reasons:?}");
    label_node(&client, NODE, Some(&ns.name)).await;
    wait_for(&installs, &name, 120, "the node installed again", |k| {
        k.and_then(|k| k.status.as_ref())
            .is_some_and(|s| s.nodes_installed == 1 && s.phase == Some(KataPhase::Installed))
    })
    .await;
    assert!(std::path::Path::new(MARKER).exists(), "installed again");
    let node = nodes.get(NODE).await.unwrap();
    assert_eq!(node.labels().get("katacontainers.io/kata-runtime").map(String::as_str), Some("true"));

    // Deletion runs the cleanup on the node, then removes everything.
    installs.delete(&name, &DeleteParams::default()).await.unwrap();
    wait_gone(&installs, &name, 120).await;
    assert!(!std::path::Path::new(MARKER).exists(), "the cleanup removed the host marker");
    let node = nodes.get(NODE).await.unwrap();
    assert_eq!(node.labels().get("katacontainers.io/kata-runtime"), None);
    assert_eq!(node.annotations().get("gantry.dev/kata-install"), None);
    assert!(classes.get_opt("kata-qemu").await.unwrap().is_none(), "RuntimeClass removed");
    let left = daemon_sets.list(&ListParams::default()).await.unwrap();
    assert!(left.items.iter().all(|d| d.metadata.deletion_timestamp.is_some()), "DaemonSets deleted");

    // An installer that fails on the node reports Failed with its error.
    let failing = format!("{name}-bad");
    installs.create(&PostParams::default(), &kata_install(&failing, &ns.name, &["qemu", "bogus"], None)).await.unwrap();
    let degraded = wait_for(&installs, &failing, 120, "phase Degraded", |k| {
        k.and_then(|k| k.status.as_ref()).is_some_and(|s| s.phase == Some(KataPhase::Degraded))
    })
    .await;
    let status = degraded.status.clone().unwrap();
    assert_eq!((status.nodes_desired, status.nodes_installed, status.nodes_failed), (1, 0, 1));
    assert_eq!(status.nodes[0].state, NodeState::Failed);
    let message = status.nodes[0].message.clone().unwrap_or_default();
    assert!(message.contains("unknown shim \"bogus\""), "the installer's own error: {message}");
    let installed = condition(&degraded, "Installed").unwrap();
    assert_eq!((installed.0.as_str(), installed.1.as_str()), ("False", "InstallFailed"));
    assert!(installed.2.contains("localhost") && installed.2.contains("bogus"), "{installed:?}");
    installs.delete(&failing, &DeleteParams::default()).await.unwrap();
    wait_gone(&installs, &failing, 120).await;
    let node = nodes.get(NODE).await.unwrap();
    assert_eq!(node.annotations().get("gantry.dev/kata-install"), None);

    label_node(&client, NODE, None).await;
    ns.delete().await;
}

/// What the real kata-deploy needs (privileged, the host's PID namespace,
/// the runtime's config directory) is granted by the admin-owned operator
/// config; the stand-in installer reports what it really got.
#[tokio::test]
async fn the_operator_config_grants_the_installer_host_access() {
    let _lock = NODE_LOCK.lock().await;
    let client = client().await;
    crate::crds::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "kata-host").await;
    let _guard = NodeGuard { ns: ns.name.clone(), fake_node: None };
    std::fs::create_dir_all(RUNTIME_DIR).unwrap();
    let _ = std::fs::remove_file(RUNTIME_MARKER);
    let config = format!("kataInstaller: {{privileged: true, hostPID: true, hostPaths: [{RUNTIME_DIR}]}}\n");
    let path = crate::support::operator_config_file(&ns.name, &config);
    let _operator = Operator::for_kata_with(&ns.name, &["--config", &path]);
    label_node(&client, NODE, Some(&ns.name)).await;
    let installs = Api::<KataInstall>::all(client.clone());
    let name = ns.name.clone();
    let mut install = kata_install(&name, &ns.name, &["qemu"], None);
    install.spec.smoke_test.enabled = Some(false);
    installs.create(&PostParams::default(), &install).await.unwrap();
    wait_for(&installs, &name, 120, "Installed=True", |k| {
        k.and_then(|k| condition(k, "Installed")).is_some_and(|c| c.0 == "True")
    })
    .await;

    let report = std::fs::read_to_string(RUNTIME_MARKER).expect("the granted directory is the host's");
    let field = |key: &str| {
        let line = report.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).map(str::to_string);
        line.unwrap_or_else(|| panic!("no {key} in {report}"))
    };
    assert_eq!(field("node"), NODE);
    let capabilities = u64::from_str_radix(&field("capeff"), 16).unwrap();
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    assert_ne!(capabilities & CAP_SYS_ADMIN, 0, "privileged: CAP_SYS_ADMIN in {report}");
    let host_init = std::fs::read_to_string("/proc/1/comm").unwrap();
    assert_eq!(field("pid1"), host_init.trim(), "hostPID: PID 1 is the host's init");

    // The cleanup runs with the same access and undoes it.
    installs.delete(&name, &DeleteParams::default()).await.unwrap();
    wait_gone(&installs, &name, 120).await;
    assert!(!std::path::Path::new(RUNTIME_MARKER).exists(), "the cleanup removed its runtime marker");
    assert!(!std::path::Path::new(MARKER).exists());
    label_node(&client, NODE, None).await;
    let _ = std::fs::remove_file(&path);
    ns.delete().await;
}

#[tokio::test]
async fn katainstall_with_an_invalid_spec_is_refused_and_creates_nothing() {
    let client = client().await;
    crate::crds::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "kata-invalid").await;
    let _guard = NodeGuard { ns: ns.name.clone(), fake_node: None };
    let _operator = Operator::for_kata(&ns.name);
    let installs = Api::<KataInstall>::all(client.clone());
    let name = ns.name.clone();
    installs.create(&PostParams::default(), &kata_install(&name, &ns.name, &["qemu"], Some("fc"))).await.unwrap();
    let refused = wait_for(&installs, &name, 60, "InvalidSpec", |k| {
        k.and_then(|k| condition(k, "Installed")).is_some_and(|c| c.1 == "InvalidSpec")
    })
    .await;
    let (status, _, message) = condition(&refused, "Installed").unwrap();
    assert_eq!(status, "False");
    assert!(message.starts_with("spec.defaultShim:") && message.contains("\"fc\""), "{message}");
    assert_eq!(refused.status.as_ref().unwrap().phase, Some(KataPhase::Degraded));
    assert!(refused.finalizers().is_empty(), "nothing was installed, so nothing holds the object");
    let daemon_sets =
        Api::<DaemonSet>::namespaced(client.clone(), &ns.name).list(&ListParams::default()).await.unwrap();
    assert!(daemon_sets.items.is_empty(), "no DaemonSet for an invalid spec");
    installs.delete(&name, &DeleteParams::default()).await.unwrap();
    wait_gone(&installs, &name, 30).await;
    ns.delete().await;
}

/// Kata Containers' CI as one PipelineRun on the local cluster: the source,
/// binary and installer images built in turn by ImageBuilds (the real
/// builder, pushed to the real registry), a test cluster as a service stage,
/// the KataInstall (declared GitOps-style) installed and verified on the
/// node, and a smoke stage that runs the installer image and uses them all.
#[tokio::test]
async fn kata_ci_chain_runs_green_as_one_pipeline() {
    use gantry::api::pipelinerun::{RunPhase, StagePhase};
    use gantry::api::{ImageBuild, PipelineRun};

    let _lock = NODE_LOCK.lock().await;
    let client = client().await;
    crate::crds::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "kata-ci").await;
    let _guard = NodeGuard { ns: ns.name.clone(), fake_node: None };
    label_node(&client, NODE, Some(&ns.name)).await;
    let selector = format!("gantry.dev/e2e-test={}", ns.name);
    let _operator = Operator::with_args(&[
        "--namespace",
        &ns.name,
        "--controllers",
        "pipelinerun,imagebuild,katainstall",
        "--operator-namespace",
        &ns.name,
        "--katainstall-selector",
        &selector,
    ]);
    let builds = Api::<ImageBuild>::namespaced(client.clone(), &ns.name);
    for (name, message) in
        [("kata-src", "kata sources"), ("kata-bin", "kata binaries"), ("kata-installer", "kata installer")]
    {
        let build = crate::imagebuild::real_build(&ns.name, name, message);
        builds.create(&PostParams::default(), &build).await.unwrap();
    }
    let installs = Api::<KataInstall>::all(client.clone());
    let kata = ns.name.clone();
    installs.create(&PostParams::default(), &kata_install(&kata, &ns.name, &["qemu"], None)).await.unwrap();

    let run: PipelineRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": "kata-ci"},
        "spec": {"stages": [
            {"name": "src", "imageBuild": {"name": "kata-src"}},
            {"name": "bin", "needs": ["src"], "imageBuild": {"name": "kata-bin"}},
            {"name": "installer", "needs": ["bin"], "imageBuild": {"name": "kata-installer"}},
            {"name": "test-cluster", "needs": ["installer"],
             "service": {"replicas": 2, "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}},
             "run": {"image": "local/busybox:1", "command": ["sh", "-c",
                "mkdir -p /www && echo \"worker $(hostname) up\" > /www/index.html && exec httpd -f -p 8080 -h /www"]}},
            {"name": "install", "needs": ["installer"], "kataInstall": {"name": kata}},
            {"name": "smoke", "needs": ["install", "test-cluster"], "run": {
                "image": "$(stages.installer.outputs.image)",
                "command": ["sh", "-c", "/hello && echo runtime=$(stages.install.outputs.runtimeClass) && \
                    for w in $(echo $(stages.test-cluster.outputs.addresses) | tr , ' '); do wget -qO- http://$w:8080/ || exit 1; done"]}}
        ]}
    }))
    .unwrap();
    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    runs.create(&PostParams::default(), &run).await.unwrap();
    let done =
        crate::support::wait_for(&runs, "kata-ci", 300, "the Kata CI run to finish", |r: Option<&PipelineRun>| {
            r.and_then(|r| r.status.as_ref()?.phase).is_some_and(RunPhase::is_finished)
        })
        .await;
    let status = done.status.unwrap();
    assert_eq!(status.phase, Some(RunPhase::Succeeded), "{status:#?}");
    assert!(status.stages.iter().all(|s| s.phase == StagePhase::Succeeded), "{:#?}", status.stages);
    let outputs = |stage: &str| status.stages.iter().find(|s| s.name == stage).unwrap().outputs.clone();
    assert_eq!(outputs("install")["runtimeClass"], "kata-qemu");
    let installer = builds.get("kata-installer").await.unwrap().status.unwrap();
    assert_eq!(outputs("installer")["image"], installer.latest_image.unwrap());
    for build in ["kata-src", "kata-bin", "kata-installer"] {
        let s = builds.get(build).await.unwrap().status.unwrap();
        let used = s.last_used.unwrap_or_else(|| panic!("{build} was never marked used"));
        assert!(used >= s.builds[0].completion_time.unwrap(), "{build} was used by its stage after it was built");
    }

    let job = crate::support::stage_job(&client, &ns.name, "kata-ci", "smoke", 1).await;
    let (_, log) = crate::support::job_pod_and_log(&client, &ns.name, &job).await;
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[..2], ["kata installer", "runtime=kata-qemu"], "{log}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("worker kata-ci-test-cluster-1-")).count(), 2, "{log}");

    installs.delete(&kata, &DeleteParams::default()).await.unwrap();
    wait_gone(&installs, &kata, 120).await;
    label_node(&client, NODE, None).await;
    ns.delete().await;
}

fn conflict_message(install: Option<&KataInstall>) -> Option<String> {
    let (status, reason, message) = condition(install?, "Installed")?;
    (status == "False" && reason == "Conflict").then_some(message)
}

async fn event_reasons(client: &Client, ns: &str) -> Vec<String> {
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), ns);
    events.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|e| e.reason).collect()
}

/// Two KataInstalls selecting the one node: the later one is in Conflict and
/// creates nothing while the earlier one installs; once the earlier one is
/// deleted (and has cleaned up), the later one installs.
#[tokio::test]
async fn a_second_katainstall_on_the_same_node_waits_in_conflict_until_the_first_is_gone() {
    let _lock = NODE_LOCK.lock().await;
    let client = client().await;
    crate::crds::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "kata-two").await;
    let _guard = NodeGuard { ns: ns.name.clone(), fake_node: None };
    let _ = std::fs::remove_file(MARKER);
    let _operator = Operator::for_kata(&ns.name);
    label_node(&client, NODE, Some(&ns.name)).await;
    let installs = Api::<KataInstall>::all(client.clone());
    let classes = Api::<RuntimeClass>::all(client.clone());
    let daemon_sets = Api::<DaemonSet>::namespaced(client.clone(), &ns.name);
    let (first, second) = (format!("{}-first", ns.name), format!("{}-second", ns.name));
    let without_smoke = |name: &str, shim: &str| {
        let mut install = kata_install(name, &ns.name, &[shim], None);
        install.spec.smoke_test.enabled = Some(false);
        install.spec.overhead.retain(|overhead_shim, _| overhead_shim == shim);
        install
    };

    installs.create(&PostParams::default(), &without_smoke(&first, "qemu")).await.unwrap();
    wait_for(&installs, &first, 120, "the first Installed=True", |k| {
        k.and_then(|k| condition(k, "Installed")).is_some_and(|c| c.0 == "True")
    })
    .await;
    // Another shim, so that only the node is shared.
    installs.create(&PostParams::default(), &without_smoke(&second, "clh")).await.unwrap();
    let blocked = wait_for(&installs, &second, 60, "the second in Conflict", |k| conflict_message(k).is_some()).await;
    let message = conflict_message(Some(&blocked)).unwrap();
    assert!(message.contains(NODE) && message.contains(&first), "names the node and the earlier one: {message}");
    assert_eq!(condition(&blocked, "Verified").unwrap().1, "Conflict");
    assert_eq!(blocked.status.as_ref().unwrap().phase, Some(KataPhase::Degraded));
    assert!(blocked.finalizers().is_empty(), "no finalizer: nothing to clean up");
    // Give it a few reconciles' time to (wrongly) create something.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(daemon_sets.get_opt(&format!("{second}-install")).await.unwrap().is_none(), "no DaemonSet");
    assert!(classes.get_opt("kata-clh").await.unwrap().is_none(), "no RuntimeClass");
    let node = Api::<Node>::all(client.clone()).get(NODE).await.unwrap();
    assert_eq!(node.annotations().get("gantry.dev/kata-install"), Some(&first), "the node is still the first's");
    assert!(event_reasons(&client, &ns.name).await.iter().any(|r| r == "Conflict"), "a Conflict Event");
    let first_now = installs.get(&first).await.unwrap();
    assert_eq!(condition(&first_now, "Installed").unwrap().0, "True", "the earlier one is unaffected");

    installs.delete(&first, &DeleteParams::default()).await.unwrap();
    wait_gone(&installs, &first, 120).await;
    let installed = wait_for(&installs, &second, 120, "the second Installed=True", |k| {
        k.and_then(|k| condition(k, "Installed")).is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(installed.status.unwrap().runtime_classes, vec!["kata-clh".to_string()]);
    let marker = std::fs::read_to_string(MARKER).expect("the second's installer ran");
    assert!(marker.contains("shims=clh"), "{marker}");
    installs.delete(&second, &DeleteParams::default()).await.unwrap();
    wait_gone(&installs, &second, 120).await;
    assert!(classes.get_opt("kata-clh").await.unwrap().is_none(), "its own RuntimeClass removed");
    label_node(&client, NODE, None).await;
    ns.delete().await;
}

/// Deletes a RuntimeClass the test made, however the test ends.
struct RuntimeClassGuard(&'static str);

impl Drop for RuntimeClassGuard {
    fn drop(&mut self) {
        kubectl(&["delete", "runtimeclass", self.0, "--ignore-not-found", "--wait=false"]);
    }
}

/// A RuntimeClass `kata-<shim>` that Gantry did not create (even one that
/// carries Gantry's labels) is reported as a Conflict, is never modified,
/// and survives the KataInstall's deletion.
#[tokio::test]
async fn a_runtime_class_gantry_did_not_create_is_a_conflict_and_left_alone() {
    const FOREIGN: &str = "kata-fc";
    let _lock = NODE_LOCK.lock().await;
    let client = client().await;
    crate::crds::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "kata-foreign").await;
    let _guard = NodeGuard { ns: ns.name.clone(), fake_node: None };
    let classes = Api::<RuntimeClass>::all(client.clone());
    let _ = classes.delete(FOREIGN, &DeleteParams::default()).await;
    wait_gone(&classes, FOREIGN, 30).await;
    let _class_guard = RuntimeClassGuard(FOREIGN);
    let name = ns.name.clone();
    let foreign: RuntimeClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
        "metadata": {"name": FOREIGN, "labels": {"gantry.dev/kata-install": name, "team": "someone-else"}},
        "handler": "someone-elses-fc"
    }))
    .unwrap();
    let foreign = classes.create(&PostParams::default(), &foreign).await.unwrap();
    let _operator = Operator::for_kata(&ns.name);
    label_node(&client, NODE, Some(&ns.name)).await;
    let installs = Api::<KataInstall>::all(client.clone());
    let mut install = kata_install(&name, &ns.name, &["fc"], None);
    install.spec.smoke_test.enabled = Some(false);
    install.spec.overhead.clear();
    installs.create(&PostParams::default(), &install).await.unwrap();

    let blocked = wait_for(&installs, &name, 60, "Installed=Conflict", |k| conflict_message(k).is_some()).await;
    let message = conflict_message(Some(&blocked)).unwrap();
    assert!(message.contains(&format!("RuntimeClass {FOREIGN}")), "names the RuntimeClass: {message}");
    assert!(blocked.finalizers().is_empty());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let daemon_sets = Api::<DaemonSet>::namespaced(client.clone(), &ns.name);
    assert!(daemon_sets.list(&ListParams::default()).await.unwrap().items.is_empty(), "no installer");
    let untouched = classes.get(FOREIGN).await.unwrap();
    assert_eq!(untouched.metadata.resource_version, foreign.metadata.resource_version, "not modified");
    assert_eq!(untouched.handler, "someone-elses-fc");
    assert!(event_reasons(&client, &ns.name).await.iter().any(|r| r == "Conflict"), "a Conflict Event");

    installs.delete(&name, &DeleteParams::default()).await.unwrap();
    wait_gone(&installs, &name, 60).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let survivor = classes.get_opt(FOREIGN).await.unwrap().expect("the foreign RuntimeClass survives the deletion");
    assert_eq!(survivor.metadata.resource_version, foreign.metadata.resource_version, "still not modified");
    classes.delete(FOREIGN, &DeleteParams::default()).await.unwrap();
    label_node(&client, NODE, None).await;
    ns.delete().await;
}

//! `KataInstall`: Kata Containers installed on selected nodes by a DaemonSet.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Kata Containers installed on the selected nodes: an installer DaemonSet,
/// per-node progress, one RuntimeClass per shim and a smoke test. Two
/// KataInstalls that share a node or a shim do not both install: the later
/// one (by creationTimestamp, then name) waits in `Conflict`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gantry.dev",
    version = "v1alpha1",
    kind = "KataInstall",
    doc = "Kata Containers installed on selected nodes, with RuntimeClasses and a smoke test.",
    status = "KataInstallStatus",
    shortname = "kata",
    category = "gantry",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Installed","type":"integer","jsonPath":".status.nodesInstalled"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".status.nodesDesired"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.nodesFailed"}"#,
    printcolumn = r#"{"name":"Verified","type":"string","jsonPath":".status.conditions[?(@.type==\"Verified\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KataInstallSpec {
    /// A kata-deploy compatible installer image. It gets `NODE_NAME`,
    /// `SHIMS` (space-separated) and `DEFAULT_SHIM`, is run with `install`
    /// or `cleanup`, and sees the host's `/opt/kata`. A node counts as
    /// installed once `/opt/kata/bin/containerd-shim-kata-v2` exists (and
    /// as cleaned once it is gone).
    pub installer_image: String,
    /// The shims to install, e.g. `qemu`, `clh`, `fc`. Each gets the
    /// RuntimeClass `kata-<shim>`, so no other KataInstall may list it, and
    /// an existing `kata-<shim>` that is not this KataInstall's (by its
    /// ownerReference's UID) is a `Conflict`, never taken over.
    pub shims: Vec<String>,
    /// The shim the smoke test uses; the first of `shims` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_shim: Option<String>,
    /// Nodes to install on; all nodes when empty. A node that an earlier
    /// KataInstall selects too is a `Conflict`: this one installs nowhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Pod overhead per shim, e.g. `{qemu: {memory: 160Mi, cpu: 250m}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overhead: BTreeMap<String, BTreeMap<String, Quantity>>,
    /// The smoke test run after install.
    #[serde(default)]
    pub smoke_test: SmokeTest,
    /// How long deletion waits for the installer's cleanup on every node
    /// before it gives up and releases the object anyway (default `10m`, at
    /// most `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_timeout: Option<String>,
}

/// An HTTP server pod under the default shim and a client that fetches from it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmokeTest {
    /// Run the smoke test (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Image with `sh`, `httpd` and `nc` (default `busybox:1.36`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Deadline of one smoke test, from its start (default `5m`, at most `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Observed state of a KataInstall.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KataInstallStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Installing, Installed, Degraded or Uninstalling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<KataPhase>,
    /// `Installed` and `Verified`; both False with reason `Conflict` while
    /// an earlier KataInstall shares a node or shim, or a RuntimeClass
    /// `kata-<shim>` is someone else's (nothing is created meanwhile).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Nodes selected.
    #[serde(default)]
    pub nodes_desired: u32,
    /// Nodes with Kata installed.
    #[serde(default)]
    pub nodes_installed: u32,
    /// Nodes where the installer failed.
    #[serde(default)]
    pub nodes_failed: u32,
    /// Per-node state: failed nodes first, then in progress, then installed;
    /// at most 50 entries (the counts are complete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeInstallStatus>,
    /// RuntimeClasses created, one per shim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_classes: Vec<String>,
    /// The latest smoke test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoke: Option<SmokeStatus>,
}

/// One smoke test: which installed node set it verifies and how it went.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmokeStatus {
    /// Identifies the generation and installed node set tested; a new set
    /// (a node joined or was reinstalled) starts a new smoke test.
    pub key: String,
    /// Running, Passed or Failed.
    pub result: SmokeResult,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// What happened: the nodes verified, or the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The phase of a KataInstall.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum KataPhase {
    /// The installer is running on some selected nodes.
    Installing,
    /// Installed on every selected node.
    Installed,
    /// Failed on some node, the smoke test failed, the spec is invalid or in conflict.
    Degraded,
    /// Being removed.
    Uninstalling,
}

/// How one smoke test went.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SmokeResult {
    /// The smoke test is running.
    #[default]
    Running,
    /// The client fetched the expected page.
    Passed,
    /// It failed or timed out; the message says why.
    Failed,
}

/// Where the install (or cleanup) of one node stands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum NodeState {
    /// The installer has not finished yet.
    #[default]
    InProgress,
    /// The installer finished (its pod is Ready).
    Installed,
    /// The installer failed; the message is its error.
    Failed,
    /// Deletion (or the node leaving the selector) is running the cleanup there.
    CleaningUp,
}

/// Install state of one node.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInstallStatus {
    /// Node name.
    pub name: String,
    /// InProgress, Installed, Failed or CleaningUp.
    pub state: NodeState,
    /// The installer's error, when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

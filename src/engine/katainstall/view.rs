//! What the KataInstall planner reads: the KataInstall itself ([`View`])
//! and what the controller saw in the cluster ([`Observed`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::api::katainstall::{KataInstallSpec, KataInstallStatus};
use crate::engine::job::JobState;

/// The KataInstall being planned.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.generation`.
    pub generation: i64,
    /// `metadata.creationTimestamp`: the earlier of two conflicting KataInstalls goes ahead.
    pub created: Option<DateTime<Utc>>,
    /// The desired state.
    pub spec: &'a KataInstallSpec,
    /// The status as last written.
    pub status: &'a KataInstallStatus,
    /// `metadata.deletionTimestamp`.
    pub deleting_since: Option<DateTime<Utc>>,
    /// Whether `FINALIZER` is set.
    pub has_finalizer: bool,
}

/// Everything the controller saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Every node in the cluster.
    pub nodes: Vec<NodeInfo>,
    /// The pods of this KataInstall's DaemonSets.
    pub pods: Vec<InstallerPod>,
    /// This KataInstall's DaemonSets, with their config label.
    pub daemon_sets: BTreeMap<Role, Option<String>>,
    /// This KataInstall's RuntimeClasses (owned by its UID) by name, with their config label.
    pub runtime_classes: BTreeMap<String, Option<String>>,
    /// The names of the RuntimeClasses that are not this KataInstall's: never touched.
    pub foreign_runtime_classes: BTreeSet<String>,
    /// Every other KataInstall in the cluster.
    pub other_installs: Vec<OtherInstall>,
    /// Smoke server pods.
    pub smoke_servers: Vec<SmokeServer>,
    /// Smoke client Jobs.
    pub smoke_clients: Vec<SmokeClient>,
}

/// A node as observed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The `gantry.dev/kata-install` annotation: which KataInstall ran there.
    pub owner: Option<String>,
}

impl NodeInfo {
    /// Whether `selector` (a `nodeSelector`; empty selects every node) selects this node.
    pub fn selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

/// Which installer DaemonSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `<name>`: the installer in `install` mode on the selected nodes.
    Install,
    /// `<name>-cleanup`: `cleanup` mode on the nodes marked for cleanup.
    Cleanup,
}

impl Role {
    /// The `gantry.dev/kata-role` label value (and the installer's argument).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Install => "install",
            Role::Cleanup => "cleanup",
        }
    }
}

/// How a pod is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Its readiness probe passes (the installer finished its work).
    Ready,
    /// Scheduled or starting; the text says where it is.
    Pending(String),
    /// It failed; the text is the container's error.
    Failed(String),
}

/// An installer pod as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallerPod {
    /// The node it is bound to.
    pub node: String,
    /// Its DaemonSet.
    pub role: Role,
    /// Its `gantry.dev/kata-config` label.
    pub config: Option<String>,
    /// Ready, pending or failed.
    pub state: PodState,
}

/// The smoke test's HTTP server pod.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeServer {
    /// Its `gantry.dev/smoke-key` label.
    pub key: String,
    /// Its pod IP, once it has one.
    pub ip: Option<String>,
    /// The node it runs on.
    pub node: Option<String>,
    /// Ready (serving), pending or failed.
    pub state: PodState,
}

/// The smoke test's client Job.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeClient {
    /// Its `gantry.dev/smoke-key` label.
    pub key: String,
    /// Running, succeeded or failed.
    pub state: JobState,
    /// Why it failed.
    pub message: Option<String>,
}

/// Another KataInstall in the cluster (whatever the operator's selector:
/// nodes and RuntimeClass names are shared by all).
#[derive(Debug, Clone, PartialEq)]
pub struct OtherInstall {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.creationTimestamp`.
    pub created: Option<DateTime<Utc>>,
    /// Its spec.
    pub spec: KataInstallSpec,
}

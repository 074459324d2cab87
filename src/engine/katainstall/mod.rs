//! The KataInstall planner: spec, nodes, installer pods, RuntimeClasses and
//! smoke objects in; what to apply or delete, the status and the Events out.
//! Pure: the controller observes and applies.
//!
//! How a node is tracked: the installer DaemonSet's pod on it is Ready once
//! the installer finished (kata-deploy installs, then sleeps), so Ready means
//! installed. Installed nodes get `katacontainers.io/kata-runtime=true`; every
//! node the installer ran on (installed or failed) gets the annotation
//! `gantry.dev/kata-install=<name>`, which is how deletion finds the nodes to
//! clean up.
//!
//! Where things are: [`view`] is what the planner reads, [`validate`] checks
//! the spec, [`plan`] decides (`plan/mod.rs` lists its passes in order, one
//! file each), [`events`] words the Events, [`pods`] reads a pod's state for
//! the controller; the tests beside them go by concern.

pub mod events;
pub mod plan;
pub mod pods;
pub mod validate;
pub mod view;

use std::time::Duration;

use crate::api::katainstall::{KataInstallSpec, KataInstallStatus};
use crate::engine::naming::fnv1a;

pub use plan::plan;
pub use plan::tenancy::{Conflict, CONFLICT_RESYNC};
pub use pods::pod_state;
pub use validate::validate;
pub use view::{InstallerPod, NodeInfo, Observed, OtherInstall, PodState, Role, SmokeClient, SmokeServer, View};

/// What the KataInstall planner returns.
pub type Plan = crate::engine::plan::Plan<KataInstallStatus, Action>;

/// Label on every object a KataInstall owns (DaemonSets, pods, Jobs,
/// RuntimeClasses), value the KataInstall's name; also the annotation on
/// the nodes its installer ran on.
pub const LABEL_KATA_INSTALL: &str = "gantry.dev/kata-install";
/// What an object is for: `install`, `cleanup`, `smoke-server`, `smoke-client`.
pub const LABEL_KATA_ROLE: &str = "gantry.dev/kata-role";
/// Hash of the spec fields an object was made from; a change rolls it.
pub const LABEL_KATA_CONFIG: &str = "gantry.dev/kata-config";
/// Which smoke test a smoke object belongs to.
pub const LABEL_SMOKE_KEY: &str = "gantry.dev/smoke-key";
/// The node label kata-deploy uses: `true` when installed, `cleanup` while
/// the cleanup runs there. RuntimeClasses schedule on `true`.
pub const NODE_RUNTIME_LABEL: &str = "katacontainers.io/kata-runtime";
/// The value of `NODE_RUNTIME_LABEL` on a node marked for the cleanup DaemonSet.
pub const MARKED_FOR_CLEANUP: &str = "cleanup";
/// Held from before anything is installed until cleanup is done.
pub const FINALIZER: &str = "gantry.dev/kata-cleanup";
/// Most nodes listed in status (the counts stay complete).
pub const MAX_NODES_LISTED: usize = 50;
/// How long a smoke test may take when `smokeTest.timeout` is unset.
pub const DEFAULT_SMOKE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long deletion waits for cleanup when `cleanupTimeout` is unset.
pub const DEFAULT_CLEANUP_TIMEOUT: Duration = Duration::from_secs(600);
/// Look again this often even when nothing changes.
pub const RESYNC: Duration = Duration::from_secs(300);

/// Condition: Kata is installed on every selected node.
pub const CONDITION_INSTALLED: &str = "Installed";
/// Condition: the latest smoke test passed.
pub const CONDITION_VERIFIED: &str = "Verified";

/// The reasons of the `Installed` and `Verified` conditions and of the
/// Events, by the condition or Event that carries them.
pub mod reasons {
    /// Both conditions and a Warning: the spec is invalid.
    pub use crate::engine::spec_error::REASON_INVALID_SPEC as INVALID_SPEC;
    /// Both conditions and a Warning: an earlier KataInstall shares a node
    /// or shim, or a RuntimeClass `kata-<shim>` is someone else's.
    pub const CONFLICT: &str = "Conflict";
    /// Both conditions and an Event: deletion is running the cleanup.
    pub const UNINSTALLING: &str = "Uninstalling";

    /// `Installed` False: no node matches the selector.
    pub const NO_NODES_SELECTED: &str = "NoNodesSelected";
    /// `Installed` False: the installer failed on some node.
    pub const INSTALL_FAILED: &str = "InstallFailed";
    /// `Installed` True.
    pub const ALL_NODES_INSTALLED: &str = "AllNodesInstalled";
    /// `Installed` False: the installer is still running somewhere.
    pub const INSTALLING: &str = "Installing";

    /// `Verified` Unknown: `spec.smokeTest.enabled` is false.
    pub const SMOKE_TEST_DISABLED: &str = "SmokeTestDisabled";
    /// `Verified` Unknown: no node has Kata yet.
    pub const WAITING_FOR_INSTALL: &str = "WaitingForInstall";
    /// `Verified` Unknown: the smoke test runs.
    pub const SMOKE_TEST_RUNNING: &str = "SmokeTestRunning";
    /// `Verified` True, and its Event.
    pub const SMOKE_TEST_PASSED: &str = "SmokeTestPassed";
    /// `Verified` False, and its Warning.
    pub const SMOKE_TEST_FAILED: &str = "SmokeTestFailed";

    /// Event: a smoke test started.
    pub const SMOKE_TEST_STARTED: &str = "SmokeTestStarted";
    /// Event: the phase became Installed.
    pub const INSTALLED: &str = "Installed";
    /// Warning: the phase became Degraded.
    pub const DEGRADED: &str = "Degraded";
    /// Event: Kata is installed on a node.
    pub const NODE_INSTALLED: &str = "NodeInstalled";
    /// Warning: the installer failed on a node.
    pub const NODE_INSTALL_FAILED: &str = "NodeInstallFailed";
    /// Event: more nodes changed than are told one by one.
    pub const NODES_CHANGED: &str = "NodesChanged";
    /// Event: a node's cleanup finished and it was unmarked.
    pub const NODE_CLEANED_UP: &str = "NodeCleanedUp";
    /// Warning: deletion unmarked nodes without a finished cleanup.
    pub const CLEANUP_SKIPPED: &str = "CleanupSkipped";
    /// Event: every node is clean; the finalizer goes.
    pub const UNINSTALLED: &str = "Uninstalled";
}

/// How a node should be marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeMark {
    /// Runtime label `true`, owner annotation set.
    Installed,
    /// The installer ran here but failed: annotation set, runtime label removed.
    Touched,
    /// Runtime label `cleanup` (the cleanup DaemonSet's selector), annotation set.
    Cleanup,
    /// Runtime label and annotation removed.
    Clear,
}

/// Something to do in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Add `FINALIZER` (before anything else is created).
    AddFinalizer,
    /// Create or update a DaemonSet made from the spec whose hash is `config`.
    ApplyDaemonSet { role: Role, config: String },
    /// Delete a DaemonSet.
    DeleteDaemonSet(Role),
    /// Set or remove the runtime label and owner annotation of a node.
    MarkNode { node: String, mark: NodeMark },
    /// Create or update the RuntimeClass `kata-<shim>`.
    ApplyRuntimeClass { shim: String, config: String },
    /// Delete one of this KataInstall's RuntimeClasses.
    DeleteRuntimeClass { name: String },
    /// Create the HTTP server pod of smoke test `key`.
    CreateSmokeServer { key: String },
    /// Create the client Job of smoke test `key`, fetching from `server_ip`.
    CreateSmokeClient { key: String, server_ip: String },
    /// Delete smoke objects, except those of `keep_key`.
    DeleteSmoke { keep_key: Option<String> },
    /// Remove `FINALIZER`: cleanup is done.
    RemoveFinalizer,
}

/// The RuntimeClass name of a shim.
pub fn runtime_class_name(shim: &str) -> String {
    format!("kata-{shim}")
}

/// A stable short hash (FNV-1a, 64 bits, hex; each part ends with a NUL)
/// of `parts`; stable across builds, unlike std's hasher, so operator
/// upgrades do not roll installers.
pub fn short_hash(parts: &[&str]) -> String {
    let bytes: Vec<u8> = parts.iter().flat_map(|part| part.bytes().chain([0u8])).collect();
    format!("{:016x}", fnv1a(&bytes))[..10].to_string()
}

/// The hash of what the installer DaemonSets are made from.
pub fn install_config(spec: &KataInstallSpec) -> String {
    let selector = serde_json::to_string(&spec.node_selector).unwrap_or_default();
    let default = validate::default_shim(spec).unwrap_or_default();
    short_hash(&[&spec.installer_image, &spec.shims.join(" "), default, &selector])
}

/// The hash of what a shim's RuntimeClass is made from.
pub fn runtime_class_config(spec: &KataInstallSpec, shim: &str) -> String {
    let overhead = spec.overhead.get(shim).map(|o| serde_json::to_string(o).unwrap_or_default()).unwrap_or_default();
    short_hash(&[shim, &overhead])
}

#[cfg(test)]
mod tests;

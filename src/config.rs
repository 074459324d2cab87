//! The operator's configuration: what cluster admins own, read from
//! `gantry run --config FILE` (YAML; the Helm chart mounts a ConfigMap).
//! Every field is optional; flags given on the command line win.
//!
//! ```yaml
//! watchNamespace: ci            # PipelineRuns and ImageBuilds in this namespace only
//! defaultStageTimeout: 2h       # per-attempt deadline when a run sets none
//! reconcileConcurrency: 8       # reconciles of one kind at once (default 16; 0: no limit)
//! apiQps: 50                    # API requests per second from the operator (default 500; 0: no limit)
//! nestedVirt:
//!   allowedNamespaces: [ci]     # nowhere else may a stage ask for /dev/kvm
//!   nodeSelector: {feature.node.kubernetes.io/cpu-cpuid.VMX: "true"}
//!   mode: DevicePlugin          # or HostPath (a /dev/kvm char-device volume)
//!   deviceResource: devices.kubevirt.io/kvm
//! kataInstaller:                # host access of the KataInstall installer DaemonSet
//!   privileged: true            # the real kata-deploy rewrites containerd's config and restarts it
//!   hostPID: true
//!   hostPaths: [/etc/containerd, /etc/crio]   # besides /opt/kata, always mounted
//! notify:                       # where PipelineRuns' `spec.notify` may send CloudEvents
//!   maxTargets: 5               # targets per run (default 5)
//!   internalCIDRs: [10.96.0.0/12, 10.244.0.0/16]   # the cluster's service and pod ranges
//!   allowedDestinations: [resultsdb.ci.svc.cluster.local, '*.results.example', 10.88.0.1/32]
//!   allowPublic: true           # anything outside the refused ranges (default true)
//! ```
//!
//! `notify`: loopback, link-local (169.254/16, fe80::/10), unspecified,
//! multicast and broadcast addresses are always refused, and so is
//! everything in `internalCIDRs`, which defaults to every private range
//! (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) because the cluster's
//! service and pod ranges are among them on nearly every cluster; set it to
//! those ranges to open the rest. `allowedDestinations` (host names,
//! `*.domain`, IPs, CIDRs) are allowed even inside refused ranges. See
//! `crate::engine::pipelinerun::destinations`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::engine::duration::{parse_duration, parse_duration_at_most, MAX_TIMEOUT};
use crate::engine::nested_virt::NestedVirtPlacement;
use crate::engine::pipelinerun::destinations::DestinationPolicy;
use crate::engine::settings::Settings;

/// The whole file.
#[derive(Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorConfig {
    /// Reconcile PipelineRuns and ImageBuilds in this namespace only.
    #[serde(default)]
    pub watch_namespace: Option<String>,
    /// Per-attempt stage deadline when neither the stage nor the run's defaults set one.
    #[serde(default)]
    pub default_stage_timeout: Option<String>,
    /// Most reconciles of one kind running at once (default
    /// [`DEFAULT_RECONCILE_CONCURRENCY`]); 0 means no limit.
    #[serde(default)]
    pub reconcile_concurrency: Option<u16>,
    /// Most API requests the operator starts per second, in bursts of a tenth
    /// of that every 100 ms (default [`DEFAULT_API_QPS`]); 0 means no limit.
    #[serde(default)]
    pub api_qps: Option<u32>,
    /// How stages and builds that ask for `nestedVirt` get virtualization.
    #[serde(default)]
    pub nested_virt: NestedVirtPolicy,
    /// What the KataInstall installer may do on the host besides writing `/opt/kata`.
    #[serde(default)]
    pub kata_installer: KataInstallerHostAccess,
    /// Where `spec.notify` may send CloudEvents, and how many targets a run may have.
    #[serde(default)]
    pub notify: DestinationPolicy,
}

/// Host access granted to the KataInstall installer DaemonSet. By default it
/// mounts only `/opt/kata` and is not privileged, which suits installers that
/// only drop files; the real kata-deploy also rewrites the container
/// runtime's config and restarts it, which needs what this grants.
#[derive(Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KataInstallerHostAccess {
    /// Run the installer container privileged.
    #[serde(default)]
    pub privileged: bool,
    /// Share the host's process namespace (kata-deploy restarts the runtime through it).
    #[serde(default, rename = "hostPID")]
    pub host_pid: bool,
    /// More host directories, each mounted at the same path (absolute, not `/`).
    #[serde(default)]
    pub host_paths: Vec<String>,
}

/// The one place that decides how a pod gets virtualization.
#[derive(Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NestedVirtPolicy {
    /// Namespaces whose pods may ask for nested virtualization; none by default.
    #[serde(default)]
    pub allowed_namespaces: Vec<String>,
    /// Where virtualization-capable nodes are (default: NFD's VMX label).
    #[serde(default = "default_virt_node_selector")]
    pub node_selector: BTreeMap<String, String>,
    /// How `/dev/kvm` reaches the pod.
    #[serde(default)]
    pub mode: NestedVirtMode,
    /// The device-plugin resource requested in `DevicePlugin` mode.
    #[serde(default = "default_device_resource")]
    pub device_resource: String,
}

impl Default for NestedVirtPolicy {
    fn default() -> Self {
        NestedVirtPolicy {
            allowed_namespaces: Vec::new(),
            node_selector: default_virt_node_selector(),
            mode: NestedVirtMode::default(),
            device_resource: default_device_resource(),
        }
    }
}

/// How `/dev/kvm` reaches a pod.
#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum NestedVirtMode {
    /// Request one unit of a device-plugin resource (e.g. KubeVirt's `devices.kubevirt.io/kvm`).
    #[default]
    DevicePlugin,
    /// Mount the node's `/dev/kvm` as a char-device hostPath volume (no privileges).
    HostPath,
}

/// A host directory an admin may hand to the installer: absolute, normalized,
/// and not the whole host.
fn check_host_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must be an absolute path");
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    if parts.is_empty() {
        return Err("would mount the whole host filesystem");
    }
    if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        return Err("must not contain empty, `.` or `..` segments");
    }
    Ok(())
}

fn default_virt_node_selector() -> BTreeMap<String, String> {
    BTreeMap::from([("feature.node.kubernetes.io/cpu-cpuid.VMX".to_string(), "true".to_string())])
}

fn default_device_resource() -> String {
    "devices.kubevirt.io/kvm".to_string()
}

/// Reconciles of one kind at once unless the configuration says otherwise:
/// enough to keep the API server busy, few enough that a burst of changes
/// cannot open hundreds of requests at once.
pub const DEFAULT_RECONCILE_CONCURRENCY: u16 = 16;

/// API requests per second unless the configuration says otherwise: a
/// ceiling against a runaway loop, high enough not to be the bottleneck
/// (2000 runs moving at the API server's pace on a 2-core control plane
/// take some 300 a second); the API server's priority and fairness is what
/// shares it between clients. The kube client has no limit of its own.
pub const DEFAULT_API_QPS: u32 = 500;

impl OperatorConfig {
    /// Reconciles of one kind at once; `None`: no limit.
    pub fn reconcile_concurrency(&self) -> Option<u16> {
        Some(self.reconcile_concurrency.unwrap_or(DEFAULT_RECONCILE_CONCURRENCY)).filter(|n| *n > 0)
    }

    /// API requests per second; `None`: no limit.
    pub fn api_qps(&self) -> Option<u32> {
        Some(self.api_qps.unwrap_or(DEFAULT_API_QPS)).filter(|n| *n > 0)
    }

    /// Reads and checks the file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and checks YAML text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: OperatorConfig = serde_yaml::from_str(text)?;
        if let Some(t) = &config.default_stage_timeout {
            parse_duration_at_most(t, MAX_TIMEOUT).map_err(|e| anyhow::anyhow!("defaultStageTimeout: {e}"))?;
        }
        if config.nested_virt.mode == NestedVirtMode::DevicePlugin && config.nested_virt.device_resource.is_empty() {
            anyhow::bail!("nestedVirt.deviceResource: must name a resource in DevicePlugin mode");
        }
        for (i, path) in config.kata_installer.host_paths.iter().enumerate() {
            check_host_path(path).map_err(|e| anyhow::anyhow!("kataInstaller.hostPaths[{i}]: {path:?} {e}"))?;
        }
        Ok(config)
    }

    /// Whether pods in `namespace` may ask for nested virtualization.
    pub fn nested_virt_allowed(&self, namespace: &str) -> bool {
        self.nested_virt.allowed_namespaces.iter().any(|n| n == namespace)
    }

    /// What this configuration means for a run in `namespace`.
    pub fn settings_for(&self, namespace: &str) -> Settings {
        Settings {
            default_stage_timeout: self.default_stage_timeout.as_deref().and_then(|t| parse_duration(t).ok()),
            nested_virt: self.nested_virt_allowed(namespace).then(|| NestedVirtPlacement {
                node_selector: self.nested_virt.node_selector.clone(),
                device_resource: match self.nested_virt.mode {
                    NestedVirtMode::DevicePlugin => Some(self.nested_virt.device_resource.clone()),
                    NestedVirtMode::HostPath => None,
                },
            }),
            notify: self.notify.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_means_defaults_and_no_nested_virt_anywhere() {
        let config = OperatorConfig::parse("{}").unwrap();
        assert_eq!(config, OperatorConfig::default());
        assert_eq!(config.reconcile_concurrency(), Some(DEFAULT_RECONCILE_CONCURRENCY));
        assert_eq!(config.api_qps(), Some(DEFAULT_API_QPS));
        let unlimited = OperatorConfig::parse("{reconcileConcurrency: 0, apiQps: 0}").unwrap();
        assert_eq!((unlimited.reconcile_concurrency(), unlimited.api_qps()), (None, None));
        assert!(!config.nested_virt_allowed("default"));
        assert_eq!(config.nested_virt.node_selector["feature.node.kubernetes.io/cpu-cpuid.VMX"], "true");
        let notify = config.settings_for("default").notify;
        assert!(notify.check_url("http://169.254.169.254/").is_err() && notify.check_url("http://10.96.0.1/").is_err());
    }

    #[test]
    fn the_documented_example_parses() {
        let example: String = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```yaml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").strip_prefix(' ').unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let config = OperatorConfig::parse(&example).unwrap();
        assert_eq!(config.watch_namespace.as_deref(), Some("ci"));
        assert_eq!(config.reconcile_concurrency(), Some(8));
        assert_eq!(config.api_qps(), Some(50));
        assert!(config.nested_virt_allowed("ci"));
        assert!(!config.nested_virt_allowed("default"));
        let ci = config.settings_for("ci");
        assert_eq!(ci.default_stage_timeout, Some(std::time::Duration::from_secs(7200)));
        assert_eq!(ci.nested_virt.unwrap().device_resource.as_deref(), Some("devices.kubevirt.io/kvm"));
        assert_eq!(config.settings_for("default").nested_virt, None);
        let kata = &config.kata_installer;
        assert!(kata.privileged && kata.host_pid);
        assert_eq!(kata.host_paths, ["/etc/containerd", "/etc/crio"]);
        let notify = &config.settings_for("ci").notify;
        assert_eq!(notify.max_targets, 5);
        assert!(notify.check_url("http://10.1.2.3/").is_ok(), "outside the cluster's ranges");
        assert!(notify.check_url("http://10.244.0.9/").is_err(), "a pod");
        assert!(notify.check_url("http://10.88.0.1:8080/").is_ok(), "allowed explicitly");
        assert!(notify.host_listed("resultsdb.ci.svc.cluster.local"));
    }

    #[test]
    fn the_kata_installer_gets_no_host_access_unless_granted() {
        assert_eq!(OperatorConfig::default().kata_installer, KataInstallerHostAccess::default());
        assert!(!KataInstallerHostAccess::default().privileged);
        for (path, why) in [
            ("etc/containerd", "absolute"),
            ("/", "whole host"),
            ("//", "whole host"),
            ("/etc/../root", ".."),
            ("/etc//crio", "empty"),
        ] {
            let yaml = format!("kataInstaller: {{hostPaths: [/opt/x, {path:?}]}}");
            let err = format!("{:#}", OperatorConfig::parse(&yaml).unwrap_err());
            assert!(err.contains("kataInstaller.hostPaths[1]") && err.contains(why), "{path}: {err}");
        }
        assert!(OperatorConfig::parse("kataInstaller: {hostPaths: [/etc/containerd/]}").is_ok());
    }

    #[test]
    fn mistakes_are_reported_with_the_field() {
        let typo = OperatorConfig::parse("nestedvirt: {}").unwrap_err();
        assert!(format!("{typo:#}").contains("unknown field `nestedvirt`"), "{typo:#}");
        let timeout = OperatorConfig::parse("defaultStageTimeout: soon").unwrap_err();
        assert!(format!("{timeout:#}").contains("defaultStageTimeout"), "{timeout:#}");
        let mode = OperatorConfig::parse("nestedVirt: {mode: Privileged}").unwrap_err();
        assert!(format!("{mode:#}").contains("Privileged"), "{mode:#}");
        let cidr = OperatorConfig::parse("notify: {internalCIDRs: [10.96.0.0/33]}").unwrap_err();
        assert!(format!("{cidr:#}").contains("10.96.0.0/33"), "{cidr:#}");
    }
}

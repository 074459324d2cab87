//! The operator's configuration: what cluster admins own, read from
//! `gantry run --config FILE` (YAML; the Helm chart mounts a ConfigMap).
//! Every field is optional; flags given on the command line win.
//!
//! ```yaml
//! watchNamespace: ci            # PipelineRuns and ImageBuilds in this namespace only
//! defaultStageTimeout: 2h       # per-attempt deadline when a run sets none
//! reconcileConcurrency: 8       # reconciles of one kind at once (0: no limit)
//! nestedVirt:
//!   allowedNamespaces: [ci]     # nowhere else may a stage ask for /dev/kvm
//!   nodeSelector: {feature.node.kubernetes.io/cpu-cpuid.VMX: "true"}
//!   mode: DevicePlugin          # or HostPath (a /dev/kvm char-device volume)
//!   deviceResource: devices.kubevirt.io/kvm
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::engine::duration::parse_duration;
use crate::engine::launch::NestedVirtPlacement;
use crate::engine::observed::Settings;

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
    /// Most reconciles of one kind running at once; 0 means no limit.
    #[serde(default)]
    pub reconcile_concurrency: Option<u16>,
    /// How stages and builds that ask for `nestedVirt` get virtualization.
    #[serde(default)]
    pub nested_virt: NestedVirtPolicy,
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

fn default_virt_node_selector() -> BTreeMap<String, String> {
    BTreeMap::from([("feature.node.kubernetes.io/cpu-cpuid.VMX".to_string(), "true".to_string())])
}

fn default_device_resource() -> String {
    "devices.kubevirt.io/kvm".to_string()
}

impl OperatorConfig {
    /// Reads and checks the file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and checks YAML text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: OperatorConfig = serde_yaml::from_str(text)?;
        if let Some(t) = &config.default_stage_timeout {
            parse_duration(t).map_err(|e| anyhow::anyhow!("defaultStageTimeout: {e}"))?;
        }
        if config.nested_virt.mode == NestedVirtMode::DevicePlugin && config.nested_virt.device_resource.is_empty() {
            anyhow::bail!("nestedVirt.deviceResource: must name a resource in DevicePlugin mode");
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
        assert!(!config.nested_virt_allowed("default"));
        assert_eq!(config.nested_virt.node_selector["feature.node.kubernetes.io/cpu-cpuid.VMX"], "true");
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
        assert_eq!(config.reconcile_concurrency, Some(8));
        assert!(config.nested_virt_allowed("ci"));
        assert!(!config.nested_virt_allowed("default"));
        let ci = config.settings_for("ci");
        assert_eq!(ci.default_stage_timeout, Some(std::time::Duration::from_secs(7200)));
        assert_eq!(ci.nested_virt.unwrap().device_resource.as_deref(), Some("devices.kubevirt.io/kvm"));
        assert_eq!(config.settings_for("default").nested_virt, None);
    }

    #[test]
    fn mistakes_are_reported_with_the_field() {
        let typo = OperatorConfig::parse("nestedvirt: {}").unwrap_err();
        assert!(format!("{typo:#}").contains("unknown field `nestedvirt`"), "{typo:#}");
        let timeout = OperatorConfig::parse("defaultStageTimeout: soon").unwrap_err();
        assert!(format!("{timeout:#}").contains("defaultStageTimeout"), "{timeout:#}");
        let mode = OperatorConfig::parse("nestedVirt: {mode: Privileged}").unwrap_err();
        assert!(format!("{mode:#}").contains("Privileged"), "{mode:#}");
    }
}

//! The one place that says how a pod gets virtualization: the operator's
//! admin-owned policy picks nodes and either a device-plugin resource or the
//! node's `/dev/kvm`; never `privileged`.

use std::collections::BTreeMap;

/// How a pod gets virtualization, as the operator's policy decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedVirtPlacement {
    /// Where virtualization-capable nodes are.
    pub node_selector: BTreeMap<String, String>,
    /// Request one of this device-plugin resource, or (None) mount the
    /// node's `/dev/kvm` as a char-device hostPath.
    pub device_resource: Option<String>,
}

//! What the operator's admin-owned configuration means for one object: the
//! part of `config::OperatorConfig` a planner needs, resolved for its namespace.

/// What the operator's admin-owned configuration means for one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Per-attempt deadline when neither stage nor run defaults set one.
    pub default_stage_timeout: Option<std::time::Duration>,
    /// How stages get virtualization; `None`: not allowed in this namespace.
    pub nested_virt: Option<super::nested_virt::NestedVirtPlacement>,
    /// Where `spec.notify` may send CloudEvents, and how many targets a run may have.
    pub notify: super::pipelinerun::destinations::DestinationPolicy,
}

//! The KataInstall planner's scenarios, one file per concern, on shared
//! fixtures: a spec, nodes, installer pods, and [`Cluster`], the simulated
//! cluster a [`Sim`] steps through the scenarios that take several
//! reconciles.

mod cleanup;
mod fuzz;
mod install;
mod nodes;
mod runtime_classes;
mod smoke;
mod tenancy;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

// `plan` is what every scenario calls the plan it checks.
use super::plan as plan_kata;
use super::*;
use crate::api::katainstall::{KataInstallStatus, KataPhase};
use crate::engine::testing::{t0, Sim, World};

fn spec() -> KataInstallSpec {
    let mut spec = KataInstallSpec {
        installer_image: "local/kata-installer:1".into(),
        shims: vec!["qemu".into()],
        node_selector: BTreeMap::from([("kata".into(), "yes".into())]),
        ..Default::default()
    };
    spec.smoke_test.timeout = Some("5m".into());
    spec
}

fn node(name: &str, selected: bool) -> NodeInfo {
    let mut labels = BTreeMap::new();
    if selected {
        labels.insert("kata".into(), "yes".into());
    }
    NodeInfo { name: name.into(), labels, owner: None }
}

fn installed_node(name: &str) -> NodeInfo {
    let mut n = node(name, true);
    n.labels.insert(NODE_RUNTIME_LABEL.into(), "true".into());
    n.owner = Some("kata".into());
    n
}

fn pod(node: &str, state: PodState) -> InstallerPod {
    InstallerPod { node: node.into(), role: Role::Install, config: Some(install_config(&spec())), state }
}

fn view<'a>(spec: &'a KataInstallSpec, status: &'a KataInstallStatus) -> View<'a> {
    View { name: "kata", generation: 1, created: None, spec, status, deleting_since: None, has_finalizer: true }
}

fn deleting<'a>(spec: &'a KataInstallSpec, status: &'a KataInstallStatus, since: DateTime<Utc>) -> View<'a> {
    View { deleting_since: Some(since), ..view(spec, status) }
}

fn base_observed() -> Observed {
    Observed { daemon_sets: BTreeMap::from([(Role::Install, Some(install_config(&spec())))]), ..Default::default() }
}

fn installed_observed() -> Observed {
    let mut observed = base_observed();
    observed.nodes = vec![installed_node("n1")];
    observed.pods = vec![pod("n1", PodState::Ready)];
    observed.runtime_classes.insert("kata-qemu".into(), Some(runtime_class_config(&spec(), "qemu")));
    observed
}

fn marks(plan: &Plan) -> Vec<(String, NodeMark)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::MarkNode { node, mark } => Some((node.clone(), *mark)),
            _ => None,
        })
        .collect()
}

/// The KataInstall `kata` (generation 1, with [`spec`]) and what the
/// controller observes. A step carries out only the finalizer edits (on the
/// KataInstall itself): each scenario sets the rest of what the cluster
/// shows next, as the DaemonSet controller, the kubelet and the operator's
/// own writes would, so every step observes exactly what the scenario states.
struct Cluster {
    spec: KataInstallSpec,
    observed: Observed,
    created: Option<DateTime<Utc>>,
    deleting_since: Option<DateTime<Utc>>,
    has_finalizer: bool,
}

impl Cluster {
    /// `kata` with [`spec`] and its finalizer, observing `observed`.
    fn new(observed: Observed) -> Self {
        Cluster { spec: spec(), observed, created: None, deleting_since: None, has_finalizer: true }
    }
}

impl World for Cluster {
    type Status = KataInstallStatus;
    type Action = Action;

    fn plan(&self, status: &KataInstallStatus, now: DateTime<Utc>) -> Plan {
        let view = View {
            name: "kata",
            generation: 1,
            created: self.created,
            spec: &self.spec,
            status,
            deleting_since: self.deleting_since,
            has_finalizer: self.has_finalizer,
        };
        plan_kata(&view, &self.observed, now)
    }

    fn apply(&mut self, action: &Action, _now: DateTime<Utc>) {
        match action {
            Action::AddFinalizer => self.has_finalizer = true,
            Action::RemoveFinalizer => self.has_finalizer = false,
            _ => {}
        }
    }
}

#[test]
fn the_config_hashes_are_stable_across_builds() {
    assert_eq!(short_hash(&["qemu", ""]), "71d7ba0626");
    assert_eq!(install_config(&spec()), "042e395489");
}

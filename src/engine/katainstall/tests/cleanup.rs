//! Deletion: the installer stops, each node is cleaned up, then the
//! finalizer goes; a node that left or the deadline ends the waiting.

use std::time::Duration;

use super::*;
use crate::api::katainstall::NodeState;

#[test]
fn cleanup_waits_for_the_installer_then_cleans_each_node_then_releases() {
    let mut sim = Sim::of(Cluster { deleting_since: Some(t0()), ..Cluster::new(installed_observed()) });
    sim.status = KataInstallStatus { phase: Some(KataPhase::Installed), ..Default::default() };
    let plan = sim.step();
    assert!(plan.actions.contains(&Action::DeleteRuntimeClass { name: "kata-qemu".into() }));
    assert!(plan.actions.contains(&Action::DeleteDaemonSet(Role::Install)));
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::ApplyDaemonSet { .. })), "installer still runs");
    assert!(!plan.actions.contains(&Action::RemoveFinalizer));
    assert_eq!(plan.status.phase, Some(KataPhase::Uninstalling));
    assert_eq!(plan.notes[0].reason, "Uninstalling");

    sim.observed.pods.clear();
    sim.observed.daemon_sets.clear();
    sim.observed.runtime_classes.clear();
    let plan = sim.step();
    let config = install_config(&spec());
    assert!(plan.actions.contains(&Action::ApplyDaemonSet { role: Role::Cleanup, config: config.clone() }));
    assert_eq!(marks(plan), vec![("n1".to_string(), NodeMark::Cleanup)]);
    assert!(!plan.actions.contains(&Action::RemoveFinalizer));
    assert_eq!(plan.status.nodes[0].state, NodeState::CleaningUp);

    sim.observed.daemon_sets.insert(Role::Cleanup, Some(config));
    sim.observed.nodes[0].labels.insert(NODE_RUNTIME_LABEL.into(), "cleanup".into());
    sim.observed.pods = vec![InstallerPod { role: Role::Cleanup, ..pod("n1", PodState::Ready) }];
    let plan = sim.step();
    assert_eq!(marks(plan), vec![("n1".to_string(), NodeMark::Clear)]);
    assert!(!plan.actions.contains(&Action::RemoveFinalizer), "released only once the node is unmarked");

    sim.observed.nodes[0].owner = None;
    sim.observed.nodes[0].labels.remove(NODE_RUNTIME_LABEL);
    let plan = sim.step();
    assert_eq!(
        plan.actions,
        vec![Action::DeleteDaemonSet(Role::Cleanup), Action::RemoveFinalizer],
        "the cleanup DaemonSet goes, then the finalizer"
    );
}

#[test]
fn a_node_that_left_does_not_block_deletion_and_the_deadline_ends_waiting() {
    let spec = spec();
    let status = KataInstallStatus::default();
    let mut observed = base_observed();
    observed.daemon_sets.clear();
    let plan = plan_kata(&deleting(&spec, &status, t0()), &observed, t0());
    assert_eq!(plan.actions, vec![Action::RemoveFinalizer], "no marked node left: release at once");

    observed.nodes = vec![installed_node("dead")];
    let mut sim = Sim::of(Cluster { deleting_since: Some(t0()), ..Cluster::new(observed) });
    sim.advance(5 * 60);
    let plan = sim.step();
    assert!(!plan.actions.contains(&Action::RemoveFinalizer));
    assert!(plan.requeue_after.expect("always set") <= Duration::from_secs(300));
    sim.advance(6 * 60);
    let plan = sim.step();
    assert_eq!(marks(plan), vec![("dead".to_string(), NodeMark::Clear)]);
    assert!(plan.notes.iter().any(|n| n.reason == "CleanupSkipped" && n.warning));
}

#[test]
fn without_the_finalizer_deletion_does_nothing() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let v = View { has_finalizer: false, ..deleting(&spec, &status, t0()) };
    assert!(plan_kata(&v, &installed_observed(), t0()).actions.is_empty());
}

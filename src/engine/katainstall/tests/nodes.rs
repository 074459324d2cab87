//! Per-node state from the installer pods, node marks, counts and the node
//! list, and the cleanup of a node that leaves the selector.

use super::*;
use crate::api::katainstall::NodeState;
use crate::engine::testing::condition;

#[test]
fn per_node_state_comes_from_the_installer_pod() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let mut observed = base_observed();
    observed.nodes = vec![node("ready", true), node("crash", true), node("new", true), node("pending", true)];
    observed.pods = vec![
        pod("ready", PodState::Ready),
        pod("crash", PodState::Failed("exit code 1: unknown shim bogus".into())),
        pod("pending", PodState::Pending("pod Pending".into())),
    ];
    let plan = plan_kata(&view(&spec, &status), &observed, t0());
    let s = &plan.status;
    assert_eq!((s.nodes_desired, s.nodes_installed, s.nodes_failed), (4, 1, 1));
    let states: Vec<(&str, NodeState, Option<&str>)> =
        s.nodes.iter().map(|n| (n.name.as_str(), n.state, n.message.as_deref())).collect();
    assert_eq!(
        states,
        vec![
            ("crash", NodeState::Failed, Some("exit code 1: unknown shim bogus")),
            ("new", NodeState::InProgress, Some("waiting for the installer pod")),
            ("pending", NodeState::InProgress, Some("installer pod Pending")),
            ("ready", NodeState::Installed, None),
        ]
    );
    assert_eq!(
        marks(&plan),
        vec![("ready".to_string(), NodeMark::Installed), ("crash".to_string(), NodeMark::Touched)]
    );
    assert_eq!(condition(&s.conditions, CONDITION_INSTALLED), ("False".into(), "InstallFailed".into()));
    let message = &s.conditions[0].message;
    assert!(message.contains("crash") && message.contains("unknown shim bogus"), "{message}");
    assert_eq!(s.phase, Some(KataPhase::Degraded));
    let reasons: Vec<&str> = plan.notes.iter().map(|n| n.reason.as_str()).collect();
    assert!(reasons.contains(&"NodeInstalled") && reasons.contains(&"NodeInstallFailed"), "{reasons:?}");
    assert!(reasons.contains(&"Degraded"), "{reasons:?}");
}

#[test]
fn a_pod_of_an_older_config_does_not_count_as_installed() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let mut observed = base_observed();
    observed.nodes = vec![node("n1", true)];
    observed.pods = vec![InstallerPod { config: Some("old".into()), ..pod("n1", PodState::Ready) }];
    let plan = plan_kata(&view(&spec, &status), &observed, t0());
    assert_eq!(plan.status.nodes[0].state, NodeState::InProgress);
    assert_eq!(plan.status.nodes[0].message.as_deref(), Some("the installer is being updated"));
}

#[test]
fn counts_follow_nodes_joining_and_leaving() {
    let mut observed = base_observed();
    observed.nodes = vec![installed_node("n1"), node("other", false)];
    observed.pods = vec![pod("n1", PodState::Ready)];
    let mut sim = Sim::of(Cluster::new(observed));
    let plan = sim.step();
    assert_eq!((plan.status.nodes_desired, plan.status.nodes_installed), (1, 1));
    assert_eq!(plan.status.phase, Some(KataPhase::Installed));
    assert!(marks(plan).is_empty(), "already marked");

    sim.observed.nodes.push(node("joined", true));
    let plan = sim.step();
    assert_eq!((plan.status.nodes_desired, plan.status.nodes_installed), (2, 1));
    assert_eq!(plan.status.phase, Some(KataPhase::Installing));

    sim.observed.nodes.retain(|n| n.name != "joined");
    let plan = sim.step();
    assert_eq!((plan.status.nodes_desired, plan.status.nodes_installed), (1, 1));
    assert!(plan.status.nodes.iter().all(|n| n.name != "joined"));

    // A node that leaves the selector drops out of the counts (its cleanup
    // is `a_node_that_leaves_the_selector_is_cleaned_up_and_reinstalled_when_back`).
    let mut unselected = installed_node("n1");
    unselected.labels.remove("kata");
    sim.observed.nodes = vec![unselected];
    let plan = sim.step();
    assert_eq!(plan.status.nodes_desired, 0);
    assert_eq!(condition(&plan.status.conditions, CONDITION_INSTALLED), ("False".into(), "NoNodesSelected".into()));
}

#[test]
fn a_node_that_leaves_the_selector_is_cleaned_up_and_reinstalled_when_back() {
    let config = install_config(&spec());
    let mut observed = base_observed();
    let mut n1 = installed_node("n1");
    n1.labels.remove("kata");
    observed.nodes = vec![n1, installed_node("n2")];
    observed.pods = vec![pod("n1", PodState::Ready), pod("n2", PodState::Ready)];
    let mut sim = Sim::of(Cluster::new(observed));
    let plan = sim.step();
    assert!(marks(plan).is_empty(), "its installer is still there: not marked yet");
    let entry = plan.status.nodes.iter().find(|n| n.name == "n1").expect("listed while cleaning up");
    assert_eq!(
        (entry.state, entry.message.as_deref()),
        (NodeState::CleaningUp, Some("waiting for the installer to stop"))
    );
    assert_eq!((plan.status.nodes_desired, plan.status.nodes_installed), (1, 1), "only n2 counts");
    assert_eq!(plan.status.phase, Some(KataPhase::Installed));

    // Its installer pod is gone: marked for the cleanup DaemonSet.
    sim.observed.pods.retain(|p| p.node != "n1");
    let plan = sim.step();
    assert_eq!(marks(plan), vec![("n1".to_string(), NodeMark::Cleanup)]);
    assert!(plan.actions.contains(&Action::ApplyDaemonSet { role: Role::Cleanup, config: config.clone() }));

    // Selected again before the cleanup finished: it stays in cleanup (the
    // installer keeps off), listed in progress, and is unmarked when clean.
    sim.observed.daemon_sets.insert(Role::Cleanup, Some(config.clone()));
    sim.observed.nodes[0].labels.insert(NODE_RUNTIME_LABEL.into(), "cleanup".into());
    sim.observed.nodes[0].labels.insert("kata".into(), "yes".into());
    sim.observed.pods.push(InstallerPod { role: Role::Cleanup, ..pod("n1", PodState::Pending("running".into())) });
    let plan = sim.step();
    assert!(marks(plan).is_empty());
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::DeleteDaemonSet(_))), "the cleanup still runs");
    assert_eq!((plan.status.nodes_desired, plan.status.nodes_installed), (2, 1));
    let entry = plan.status.nodes.iter().find(|n| n.name == "n1").unwrap();
    assert_eq!(entry.state, NodeState::InProgress);
    assert!(entry.message.as_deref().unwrap().starts_with("cleaning up an earlier install first"), "{entry:?}");

    sim.observed.pods.last_mut().unwrap().state = PodState::Ready;
    let plan = sim.step();
    assert_eq!(marks(plan), vec![("n1".to_string(), NodeMark::Clear)]);
    assert!(plan.notes.iter().any(|n| n.reason == "NodeCleanedUp"));

    // Unmarked: nothing left to clean, the cleanup DaemonSet goes and the
    // installer runs there again.
    sim.observed.nodes[0].labels.remove(NODE_RUNTIME_LABEL);
    sim.observed.nodes[0].owner = None;
    sim.observed.pods.retain(|p| p.role == Role::Install);
    let plan = sim.step();
    assert!(plan.actions.contains(&Action::DeleteDaemonSet(Role::Cleanup)));
    let entry = plan.status.nodes.iter().find(|n| n.name == "n1").unwrap();
    assert_eq!((entry.state, entry.message.as_deref()), (NodeState::InProgress, Some("waiting for the installer pod")));
}

#[test]
fn node_lists_are_capped_but_counts_are_not() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let mut observed = base_observed();
    observed.nodes = (0..120).map(|i| node(&format!("n{i:03}"), true)).collect();
    let plan = plan_kata(&view(&spec, &status), &observed, t0());
    assert_eq!(plan.status.nodes_desired, 120);
    assert_eq!(plan.status.nodes.len(), MAX_NODES_LISTED);
}

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use super::smoke::smoke_key;
use super::*;
use crate::api::katainstall::{NodeState, SmokeResult, SmokeStatus};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

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

fn view<'a>(spec: &'a KataInstallSpec, status: &'a KataInstallStatus) -> KataView<'a> {
    KataView { name: "kata", generation: 1, created: None, spec, status, deleting_since: None, has_finalizer: true }
}

fn base_observed() -> KataObserved {
    KataObserved { daemon_sets: BTreeMap::from([(Role::Install, Some(install_config(&spec())))]), ..Default::default() }
}

fn condition<'a>(status: &'a KataInstallStatus, type_: &str) -> (&'a str, &'a str) {
    let c = status.conditions.iter().find(|c| c.type_ == type_).expect("condition set");
    (c.status.as_str(), c.reason.as_str())
}

fn marks(plan: &KataPlan) -> Vec<(String, NodeMark)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            KataAction::MarkNode { node, mark } => Some((node.clone(), *mark)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_finalizer_comes_before_anything_else() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let v = KataView { has_finalizer: false, ..view(&spec, &status) };
    let plan = plan_kata(&v, &KataObserved { nodes: vec![node("n1", true)], ..Default::default() }, now());
    assert_eq!(plan.actions, vec![KataAction::AddFinalizer]);
    assert_eq!(plan.status.phase, Some(KataPhase::Installing));
}

#[test]
fn an_invalid_spec_creates_nothing_and_names_the_field() {
    let spec = KataInstallSpec { default_shim: Some("fc".into()), ..spec() };
    let status = KataInstallStatus::default();
    let v = KataView { has_finalizer: false, ..view(&spec, &status) };
    let plan = plan_kata(&v, &KataObserved::default(), now());
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(condition(&plan.status, CONDITION_INSTALLED), ("False", "InvalidSpec"));
    let message = &plan.status.conditions[0].message;
    assert!(message.starts_with("spec.defaultShim:"), "{message}");
    assert_eq!(plan.status.phase, Some(KataPhase::Degraded));
    assert_eq!(plan.notes[0].reason, "InvalidSpec");
    // The same message again publishes no second Event.
    let again = plan_kata(&KataView { status: &plan.status, ..v }, &KataObserved::default(), now());
    assert!(again.notes.is_empty());
}

#[test]
fn the_installer_daemonset_is_applied_when_missing_or_changed_and_only_then() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let plan = plan_kata(&view(&spec, &status), &KataObserved::default(), now());
    let config = install_config(&spec);
    assert!(plan.actions.contains(&KataAction::ApplyDaemonSet { role: Role::Install, config }));
    let plan = plan_kata(&view(&spec, &status), &base_observed(), now());
    assert!(!plan.actions.iter().any(|a| matches!(a, KataAction::ApplyDaemonSet { .. })));
    let changed = KataInstallSpec { shims: vec!["qemu".into(), "clh".into()], ..spec.clone() };
    assert_ne!(install_config(&changed), install_config(&spec));
}

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
    let plan = plan_kata(&view(&spec, &status), &observed, now());
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
    assert_eq!(condition(s, CONDITION_INSTALLED), ("False", "InstallFailed"));
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
    let plan = plan_kata(&view(&spec, &status), &observed, now());
    assert_eq!(plan.status.nodes[0].state, NodeState::InProgress);
    assert_eq!(plan.status.nodes[0].message.as_deref(), Some("the installer is being updated"));
}

#[test]
fn counts_follow_nodes_joining_and_leaving() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let mut observed = base_observed();
    observed.nodes = vec![installed_node("n1"), node("other", false)];
    observed.pods = vec![pod("n1", PodState::Ready)];
    let plan = plan_kata(&view(&spec, &status), &observed, now());
    assert_eq!((plan.status.nodes_desired, plan.status.nodes_installed), (1, 1));
    assert_eq!(plan.status.phase, Some(KataPhase::Installed));
    assert!(marks(&plan).is_empty(), "already marked");

    observed.nodes.push(node("joined", true));
    let plan = plan_kata(&view(&spec, &plan.status), &observed, now());
    assert_eq!((plan.status.nodes_desired, plan.status.nodes_installed), (2, 1));
    assert_eq!(plan.status.phase, Some(KataPhase::Installing));

    observed.nodes.retain(|n| n.name != "joined");
    let plan = plan_kata(&view(&spec, &plan.status), &observed, now());
    assert_eq!((plan.status.nodes_desired, plan.status.nodes_installed), (1, 1));
    assert!(plan.status.nodes.iter().all(|n| n.name != "joined"));

    // A node that leaves the selector drops out of the counts (its cleanup
    // is `a_node_that_leaves_the_selector_is_cleaned_up_and_reinstalled_when_back`).
    let mut unselected = installed_node("n1");
    unselected.labels.remove("kata");
    observed.nodes = vec![unselected];
    let plan = plan_kata(&view(&spec, &plan.status), &observed, now());
    assert_eq!(plan.status.nodes_desired, 0);
    assert_eq!(condition(&plan.status, CONDITION_INSTALLED), ("False", "NoNodesSelected"));
}

#[test]
fn a_node_that_leaves_the_selector_is_cleaned_up_and_reinstalled_when_back() {
    let spec = spec();
    let config = install_config(&spec);
    let mut observed = base_observed();
    let mut n1 = installed_node("n1");
    n1.labels.remove("kata");
    observed.nodes = vec![n1, installed_node("n2")];
    observed.pods = vec![pod("n1", PodState::Ready), pod("n2", PodState::Ready)];
    let status = KataInstallStatus::default();
    let plan = plan_kata(&view(&spec, &status), &observed, now());
    assert!(marks(&plan).is_empty(), "its installer is still there: not marked yet");
    let entry = plan.status.nodes.iter().find(|n| n.name == "n1").expect("listed while cleaning up");
    assert_eq!(
        (entry.state, entry.message.as_deref()),
        (NodeState::CleaningUp, Some("waiting for the installer to stop"))
    );
    assert_eq!((plan.status.nodes_desired, plan.status.nodes_installed), (1, 1), "only n2 counts");
    assert_eq!(plan.status.phase, Some(KataPhase::Installed));

    // Its installer pod is gone: marked for the cleanup DaemonSet.
    observed.pods.retain(|p| p.node != "n1");
    let plan = plan_kata(&view(&spec, &plan.status), &observed, now());
    assert_eq!(marks(&plan), vec![("n1".to_string(), NodeMark::Cleanup)]);
    assert!(plan.actions.contains(&KataAction::ApplyDaemonSet { role: Role::Cleanup, config: config.clone() }));

    // Selected again before the cleanup finished: it stays in cleanup (the
    // installer keeps off), listed in progress, and is unmarked when clean.
    observed.daemon_sets.insert(Role::Cleanup, Some(config.clone()));
    observed.nodes[0].labels.insert(NODE_RUNTIME_LABEL.into(), "cleanup".into());
    observed.nodes[0].labels.insert("kata".into(), "yes".into());
    observed.pods.push(InstallerPod { role: Role::Cleanup, ..pod("n1", PodState::Pending("running".into())) });
    let plan = plan_kata(&view(&spec, &plan.status), &observed, now());
    assert!(marks(&plan).is_empty());
    assert!(!plan.actions.iter().any(|a| matches!(a, KataAction::DeleteDaemonSet(_))), "the cleanup still runs");
    assert_eq!((plan.status.nodes_desired, plan.status.nodes_installed), (2, 1));
    let entry = plan.status.nodes.iter().find(|n| n.name == "n1").unwrap();
    assert_eq!(entry.state, NodeState::InProgress);
    assert!(entry.message.as_deref().unwrap().starts_with("cleaning up an earlier install first"), "{entry:?}");

    observed.pods.last_mut().unwrap().state = PodState::Ready;
    let plan = plan_kata(&view(&spec, &plan.status), &observed, now());
    assert_eq!(marks(&plan), vec![("n1".to_string(), NodeMark::Clear)]);
    assert!(plan.notes.iter().any(|n| n.reason == "NodeCleanedUp"));

    // Unmarked: nothing left to clean, the cleanup DaemonSet goes and the
    // installer runs there again.
    observed.nodes[0].labels.remove(NODE_RUNTIME_LABEL);
    observed.nodes[0].owner = None;
    observed.pods.retain(|p| p.role == Role::Install);
    let plan = plan_kata(&view(&spec, &plan.status), &observed, now());
    assert!(plan.actions.contains(&KataAction::DeleteDaemonSet(Role::Cleanup)));
    let entry = plan.status.nodes.iter().find(|n| n.name == "n1").unwrap();
    assert_eq!((entry.state, entry.message.as_deref()), (NodeState::InProgress, Some("waiting for the installer pod")));
}

#[test]
fn node_lists_are_capped_but_counts_are_not() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let mut observed = base_observed();
    observed.nodes = (0..120).map(|i| node(&format!("n{i:03}"), true)).collect();
    let plan = plan_kata(&view(&spec, &status), &observed, now());
    assert_eq!(plan.status.nodes_desired, 120);
    assert_eq!(plan.status.nodes.len(), MAX_NODES_LISTED);
}

#[test]
fn runtime_classes_appear_once_a_node_is_installed_and_stale_ones_go() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let mut observed = base_observed();
    observed.nodes = vec![node("n1", true)];
    observed.runtime_classes.insert("kata-fc".into(), Some("x".into()));
    let plan = plan_kata(&view(&spec, &status), &observed, now());
    assert!(!plan.actions.iter().any(|a| matches!(a, KataAction::ApplyRuntimeClass { .. })));
    assert!(plan.actions.contains(&KataAction::DeleteRuntimeClass { name: "kata-fc".into() }));

    observed.pods = vec![pod("n1", PodState::Ready)];
    let plan = plan_kata(&view(&spec, &status), &observed, now());
    let config = runtime_class_config(&spec, "qemu");
    assert!(plan.actions.contains(&KataAction::ApplyRuntimeClass { shim: "qemu".into(), config }));
    assert_eq!(plan.status.runtime_classes, vec!["kata-qemu".to_string()]);
}

fn installed_observed() -> KataObserved {
    let mut observed = base_observed();
    observed.nodes = vec![installed_node("n1")];
    observed.pods = vec![pod("n1", PodState::Ready)];
    observed.runtime_classes.insert("kata-qemu".into(), Some(runtime_class_config(&spec(), "qemu")));
    observed
}

fn smoke_actions(plan: &KataPlan) -> Vec<KataAction> {
    plan.actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                KataAction::CreateSmokeServer { .. }
                    | KataAction::CreateSmokeClient { .. }
                    | KataAction::DeleteSmoke { .. }
            )
        })
        .cloned()
        .collect()
}

#[test]
fn the_smoke_test_runs_server_then_client_and_passes() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let mut observed = installed_observed();
    let key = smoke_key(1, &["n1".to_string()]);
    let plan = plan_kata(&view(&spec, &status), &observed, now());
    assert_eq!(smoke_actions(&plan), vec![KataAction::CreateSmokeServer { key: key.clone() }]);
    assert_eq!(condition(&plan.status, CONDITION_VERIFIED), ("Unknown", "SmokeTestRunning"));
    assert_eq!(plan.status.phase, Some(KataPhase::Installed));
    assert!(plan.requeue_after <= Duration::from_secs(300));

    let server = |state| SmokeServer { key: key.clone(), ip: Some("10.88.0.9".into()), node: Some("n1".into()), state };
    observed.smoke_servers = vec![server(PodState::Pending("pod Pending".into()))];
    let plan = plan_kata(&view(&spec, &plan.status), &observed, now());
    assert!(smoke_actions(&plan).is_empty());

    observed.smoke_servers = vec![server(PodState::Ready)];
    let plan = plan_kata(&view(&spec, &plan.status), &observed, now());
    let client = KataAction::CreateSmokeClient { key: key.clone(), server_ip: "10.88.0.9".into() };
    assert_eq!(smoke_actions(&plan), vec![client]);

    observed.smoke_clients = vec![SmokeClient { key: key.clone(), state: JobState::Succeeded, message: None }];
    let plan = plan_kata(&view(&spec, &plan.status), &observed, now());
    assert_eq!(condition(&plan.status, CONDITION_VERIFIED), ("True", "SmokeTestPassed"));
    assert_eq!(smoke_actions(&plan), vec![KataAction::DeleteSmoke { keep_key: None }]);
    let smoke = plan.status.smoke.clone().unwrap();
    assert!(smoke.message.unwrap().contains("kata-qemu on n1"));
    assert!(plan.notes.iter().any(|n| n.reason == "SmokeTestPassed"));

    // Same node set: not repeated.
    observed.smoke_servers.clear();
    observed.smoke_clients.clear();
    let again = plan_kata(&view(&spec, &plan.status), &observed, now());
    assert!(smoke_actions(&again).is_empty());
    assert_eq!(condition(&again.status, CONDITION_VERIFIED), ("True", "SmokeTestPassed"));
}

#[test]
fn a_newly_installed_node_starts_a_new_smoke_test() {
    let spec = spec();
    let key = smoke_key(1, &["n1".to_string()]);
    let status = KataInstallStatus {
        smoke: Some(SmokeStatus { key, result: SmokeResult::Passed, start_time: Some(now()), message: None }),
        ..Default::default()
    };
    let mut observed = installed_observed();
    observed.nodes.push(installed_node("n2"));
    observed.pods.push(pod("n2", PodState::Ready));
    let plan = plan_kata(&view(&spec, &status), &observed, now());
    let new_key = smoke_key(1, &["n1".to_string(), "n2".to_string()]);
    assert_eq!(smoke_actions(&plan), vec![KataAction::CreateSmokeServer { key: new_key.clone() }]);
    assert_eq!(plan.status.smoke.unwrap().key, new_key);
}

#[test]
fn smoke_failures_and_timeouts_are_reported() {
    let spec = spec();
    let key = smoke_key(1, &["n1".to_string()]);
    let running =
        SmokeStatus { key: key.clone(), result: SmokeResult::Running, start_time: Some(now()), message: None };
    let status = KataInstallStatus { smoke: Some(running), ..Default::default() };
    let mut observed = installed_observed();
    observed.smoke_servers = vec![SmokeServer {
        key: key.clone(),
        ip: None,
        node: None,
        state: PodState::Pending("pod Pending (ContainerCreating)".into()),
    }];
    let plan = plan_kata(&view(&spec, &status), &observed, now() + chrono::Duration::seconds(301));
    assert_eq!(condition(&plan.status, CONDITION_VERIFIED), ("False", "SmokeTestFailed"));
    let message = plan.status.smoke.as_ref().unwrap().message.clone().unwrap();
    assert_eq!(message, "timed out after 5m: the server pod is still starting (pod Pending (ContainerCreating))");
    assert_eq!(plan.status.phase, Some(KataPhase::Degraded));

    observed.smoke_clients =
        vec![SmokeClient { key: key.clone(), state: JobState::Failed, message: Some("cannot fetch".into()) }];
    let plan = plan_kata(&view(&spec, &status), &observed, now());
    let message = plan.status.smoke.unwrap().message.unwrap();
    assert!(message.contains("could not fetch the page from the kata-qemu pod: cannot fetch"), "{message}");
}

#[test]
fn a_disabled_smoke_test_runs_nothing() {
    let mut spec = spec();
    spec.smoke_test.enabled = Some(false);
    let status = KataInstallStatus::default();
    let plan = plan_kata(&view(&spec, &status), &installed_observed(), now());
    assert!(smoke_actions(&plan).is_empty());
    assert_eq!(condition(&plan.status, CONDITION_VERIFIED), ("Unknown", "SmokeTestDisabled"));
}

fn deleting<'a>(spec: &'a KataInstallSpec, status: &'a KataInstallStatus, since: DateTime<Utc>) -> KataView<'a> {
    KataView { deleting_since: Some(since), ..view(spec, status) }
}

#[test]
fn cleanup_waits_for_the_installer_then_cleans_each_node_then_releases() {
    let spec = spec();
    let status = KataInstallStatus { phase: Some(KataPhase::Installed), ..Default::default() };
    let mut observed = installed_observed();
    let v = deleting(&spec, &status, now());
    let plan = plan_kata(&v, &observed, now());
    assert!(plan.actions.contains(&KataAction::DeleteRuntimeClass { name: "kata-qemu".into() }));
    assert!(plan.actions.contains(&KataAction::DeleteDaemonSet(Role::Install)));
    assert!(!plan.actions.iter().any(|a| matches!(a, KataAction::ApplyDaemonSet { .. })), "installer still runs");
    assert!(!plan.actions.contains(&KataAction::RemoveFinalizer));
    assert_eq!(plan.status.phase, Some(KataPhase::Uninstalling));
    assert_eq!(plan.notes[0].reason, "Uninstalling");

    observed.pods.clear();
    observed.daemon_sets.clear();
    observed.runtime_classes.clear();
    let plan = plan_kata(&v, &observed, now());
    let config = install_config(&spec);
    assert!(plan.actions.contains(&KataAction::ApplyDaemonSet { role: Role::Cleanup, config: config.clone() }));
    assert_eq!(marks(&plan), vec![("n1".to_string(), NodeMark::Cleanup)]);
    assert!(!plan.actions.contains(&KataAction::RemoveFinalizer));
    assert_eq!(plan.status.nodes[0].state, NodeState::CleaningUp);

    observed.daemon_sets.insert(Role::Cleanup, Some(config));
    observed.nodes[0].labels.insert(NODE_RUNTIME_LABEL.into(), "cleanup".into());
    observed.pods = vec![InstallerPod { role: Role::Cleanup, ..pod("n1", PodState::Ready) }];
    let plan = plan_kata(&v, &observed, now());
    assert_eq!(marks(&plan), vec![("n1".to_string(), NodeMark::Clear)]);
    assert!(!plan.actions.contains(&KataAction::RemoveFinalizer), "released only once the node is unmarked");

    observed.nodes[0].owner = None;
    observed.nodes[0].labels.remove(NODE_RUNTIME_LABEL);
    let plan = plan_kata(&v, &observed, now());
    assert_eq!(
        plan.actions,
        vec![KataAction::DeleteDaemonSet(Role::Cleanup), KataAction::RemoveFinalizer],
        "the cleanup DaemonSet goes, then the finalizer"
    );
}

#[test]
fn a_node_that_left_does_not_block_deletion_and_the_deadline_ends_waiting() {
    let spec = spec();
    let status = KataInstallStatus::default();
    let mut observed = base_observed();
    observed.daemon_sets.clear();
    let plan = plan_kata(&deleting(&spec, &status, now()), &observed, now());
    assert_eq!(plan.actions, vec![KataAction::RemoveFinalizer], "no marked node left: release at once");

    observed.nodes = vec![installed_node("dead")];
    let plan = plan_kata(&deleting(&spec, &status, now()), &observed, now() + chrono::Duration::minutes(5));
    assert!(!plan.actions.contains(&KataAction::RemoveFinalizer));
    assert!(plan.requeue_after <= Duration::from_secs(300));
    let late = now() + chrono::Duration::minutes(11);
    let plan = plan_kata(&deleting(&spec, &status, now()), &observed, late);
    assert_eq!(marks(&plan), vec![("dead".to_string(), NodeMark::Clear)]);
    assert!(plan.notes.iter().any(|n| n.reason == "CleanupSkipped" && n.warning));
}

#[test]
fn without_the_finalizer_deletion_does_nothing() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let v = KataView { has_finalizer: false, ..deleting(&spec, &status, now()) };
    assert!(plan_kata(&v, &installed_observed(), now()).actions.is_empty());
}

mod tenancy;

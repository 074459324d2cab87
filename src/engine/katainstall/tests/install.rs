//! Before anything is installed: the finalizer first, an invalid spec
//! makes nothing, and the install DaemonSet follows the spec.

use super::*;
use crate::engine::testing::condition;

#[test]
fn the_finalizer_comes_before_anything_else() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let v = View { has_finalizer: false, ..view(&spec, &status) };
    let plan = plan_kata(&v, &Observed { nodes: vec![node("n1", true)], ..Default::default() }, t0());
    assert_eq!(plan.actions, vec![Action::AddFinalizer]);
    assert_eq!(plan.status.phase, Some(KataPhase::Installing));
}

#[test]
fn an_invalid_spec_creates_nothing_and_names_the_field() {
    let spec = KataInstallSpec { default_shim: Some("fc".into()), ..spec() };
    let status = KataInstallStatus::default();
    let v = View { has_finalizer: false, ..view(&spec, &status) };
    let plan = plan_kata(&v, &Observed::default(), t0());
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(condition(&plan.status.conditions, CONDITION_INSTALLED), ("False".into(), "InvalidSpec".into()));
    let message = &plan.status.conditions[0].message;
    assert!(message.starts_with("spec.defaultShim:"), "{message}");
    assert_eq!(plan.status.phase, Some(KataPhase::Degraded));
    assert_eq!(plan.notes[0].reason, "InvalidSpec");
    // The same message again publishes no second Event.
    let again = plan_kata(&View { status: &plan.status, ..v }, &Observed::default(), t0());
    assert!(again.notes.is_empty());
}

#[test]
fn the_installer_daemonset_is_applied_when_missing_or_changed_and_only_then() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let plan = plan_kata(&view(&spec, &status), &Observed::default(), t0());
    let config = install_config(&spec);
    assert!(plan.actions.contains(&Action::ApplyDaemonSet { role: Role::Install, config }));
    let plan = plan_kata(&view(&spec, &status), &base_observed(), t0());
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::ApplyDaemonSet { .. })));
    let changed = KataInstallSpec { shims: vec!["qemu".into(), "clh".into()], ..spec.clone() };
    assert_ne!(install_config(&changed), install_config(&spec));
}

#[test]
fn an_invalid_spec_with_a_long_message_is_reported_once() {
    // The condition keeps the message cut to fit status; the Warning is
    // still published only once, not on every reconcile.
    let spec = KataInstallSpec { default_shim: Some("x".repeat(2000)), ..spec() };
    let status = KataInstallStatus::default();
    let first = plan_kata(&view(&spec, &status), &Observed::default(), t0());
    assert_eq!(first.notes.len(), 1, "{:?}", first.notes);
    assert!(first.notes[0].message.len() > crate::engine::conditions::MAX_MESSAGE_BYTES);
    let again = plan_kata(&view(&spec, &first.status), &Observed::default(), t0());
    assert!(again.notes.is_empty(), "{:?}", again.notes);
}

#[test]
fn the_installed_event_says_where_kata_is_installed() {
    let mut sim = Sim::of(Cluster::new(installed_observed()));
    let plan = sim.step();
    assert_eq!(plan.status.phase, Some(KataPhase::Installed));
    let installed = plan.notes.iter().find(|n| n.reason == "Installed").expect("an Installed Event");
    assert_eq!(installed.message, "Kata installed on 1 node(s)");
}

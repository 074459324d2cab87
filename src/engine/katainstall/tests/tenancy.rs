//! Two KataInstalls on one node or one shim, and RuntimeClasses Gantry does
//! not own.

use std::collections::BTreeSet;

use super::*;
use crate::engine::katainstall::plan::tenancy::conflicts;
use crate::engine::testing::{condition, t};

/// `minute` minutes after `t0()`.
fn at(minute: u32) -> Option<DateTime<Utc>> {
    Some(t(i64::from(minute) * 60))
}

/// An earlier KataInstall `name` with `spec` (created at minute 0).
fn earlier(name: &str, spec: KataInstallSpec) -> OtherInstall {
    OtherInstall { name: name.into(), created: at(0), spec }
}

/// The planned KataInstall `kata`, created at minute 30, with nothing made yet.
fn later<'a>(spec: &'a KataInstallSpec, status: &'a KataInstallStatus) -> View<'a> {
    View { created: at(30), has_finalizer: false, ..view(spec, status) }
}

fn other_selector(value: &str) -> KataInstallSpec {
    KataInstallSpec { node_selector: BTreeMap::from([("kata".into(), value.into())]), ..spec() }
}

fn creates_nothing(plan: &Plan) {
    assert!(
        plan.actions.is_empty(),
        "no finalizer, DaemonSet, RuntimeClass, node mark or smoke test: {:?}",
        plan.actions
    );
}

#[test]
fn the_later_of_two_installs_on_one_node_is_in_conflict_and_creates_nothing() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let first = KataInstallSpec { shims: vec!["clh".into()], ..spec.clone() };
    let observed = Observed {
        nodes: vec![node("n1", true), node("n2", false)],
        other_installs: vec![earlier("first", first)],
        ..Default::default()
    };
    let plan = plan_kata(&later(&spec, &status), &observed, t0());
    creates_nothing(&plan);
    assert_eq!(condition(&plan.status.conditions, CONDITION_INSTALLED), ("False".into(), reasons::CONFLICT.into()));
    assert_eq!(condition(&plan.status.conditions, CONDITION_VERIFIED), ("False".into(), reasons::CONFLICT.into()));
    assert_eq!(plan.status.phase, Some(KataPhase::Degraded));
    let message = &plan.status.conditions[0].message;
    assert_eq!(message, "node(s) n1 also selected by KataInstall first, created earlier");
    assert_eq!((plan.notes.len(), plan.notes[0].reason.as_str(), plan.notes[0].warning), (1, "Conflict", true));
    // The same conflict again: no second Event.
    let again = plan_kata(&View { status: &plan.status, ..later(&spec, &status) }, &observed, t0());
    assert!(again.notes.is_empty(), "{:?}", again.notes);
}

#[test]
fn the_earlier_install_is_unaffected_by_the_later_one() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let observed = Observed {
        nodes: vec![node("n1", true)],
        other_installs: vec![OtherInstall { name: "second".into(), created: at(45), spec: spec.clone() }],
        ..Default::default()
    };
    let plan = plan_kata(&later(&spec, &status), &observed, t0());
    assert_eq!(plan.actions, vec![Action::AddFinalizer], "it goes ahead");
    assert!(conflicts(&later(&spec, &status), &observed).is_empty());
}

#[test]
fn the_later_install_proceeds_once_the_earlier_one_is_gone() {
    let observed = Observed {
        nodes: vec![node("n1", true)],
        other_installs: vec![earlier("first", spec())],
        ..Default::default()
    };
    // `later`: created at minute 30, no finalizer yet.
    let mut sim = Sim::of(Cluster { created: at(30), has_finalizer: false, ..Cluster::new(observed) });
    let blocked = sim.step();
    creates_nothing(blocked);
    sim.observed.other_installs.clear();
    let plan = sim.step();
    assert_eq!(plan.actions, vec![Action::AddFinalizer]);
    // The finalizer is on now.
    let plan = sim.step();
    let config = install_config(&spec());
    assert!(plan.actions.contains(&Action::ApplyDaemonSet { role: Role::Install, config }), "{:?}", plan.actions);
    assert_eq!(condition(&plan.status.conditions, CONDITION_INSTALLED), ("False".into(), "Installing".into()));
}

#[test]
fn installs_that_share_a_shim_conflict_even_on_different_nodes() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let first = KataInstallSpec { shims: vec!["clh".into(), "qemu".into()], ..other_selector("elsewhere") };
    let observed =
        Observed { nodes: vec![node("n1", true)], other_installs: vec![earlier("first", first)], ..Default::default() };
    let found = conflicts(&later(&spec, &status), &observed);
    assert_eq!(found, vec![Conflict::SharedShims { install: "first".into(), shims: vec!["qemu".into()] }]);
    creates_nothing(&plan_kata(&later(&spec, &status), &observed, t0()));
}

#[test]
fn installs_on_different_nodes_with_different_shims_do_not_conflict() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let first = KataInstallSpec { shims: vec!["clh".into()], ..other_selector("elsewhere") };
    // A selector that matches no existing node claims no node, even if it
    // would match one of ours: "the same node" means an existing one.
    let observed =
        Observed { nodes: vec![node("n1", true)], other_installs: vec![earlier("first", first)], ..Default::default() };
    assert!(conflicts(&later(&spec, &status), &observed).is_empty());
}

#[test]
fn an_empty_selector_selects_every_node() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let everywhere = KataInstallSpec { shims: vec!["clh".into()], node_selector: BTreeMap::new(), ..spec.clone() };
    let observed = Observed {
        nodes: vec![node("n1", true)],
        other_installs: vec![earlier("everywhere", everywhere)],
        ..Default::default()
    };
    let found = conflicts(&later(&spec, &status), &observed);
    assert_eq!(found, vec![Conflict::SharedNodes { install: "everywhere".into(), nodes: vec!["n1".into()] }]);
}

#[test]
fn the_name_breaks_a_tie_and_invalid_installs_claim_nothing() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let same_time = |name: &str| OtherInstall { name: name.into(), created: at(30), spec: spec.clone() };
    let observed = Observed {
        nodes: vec![node("n1", true)],
        other_installs: vec![same_time("zeta"), same_time("alpha")],
        ..Default::default()
    };
    let found = conflicts(&later(&spec, &status), &observed);
    let installs: Vec<&str> = found
        .iter()
        .map(|c| match c {
            Conflict::SharedNodes { install, .. } | Conflict::SharedShims { install, .. } => install.as_str(),
            Conflict::ForeignRuntimeClass { name } => name.as_str(),
        })
        .collect();
    assert_eq!(installs, ["alpha", "alpha"], "alpha < kata < zeta");
    let invalid = KataInstallSpec { default_shim: Some("fc".into()), ..spec.clone() };
    let observed = Observed {
        nodes: vec![node("n1", true)],
        other_installs: vec![earlier("broken", invalid)],
        ..Default::default()
    };
    assert!(conflicts(&later(&spec, &status), &observed).is_empty());
}

#[test]
fn a_node_the_earlier_installer_still_cleans_up_is_claimed() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let mut n1 = node("n1", true);
    n1.owner = Some("first".into());
    let observed = Observed {
        nodes: vec![n1],
        other_installs: vec![earlier("first", KataInstallSpec { shims: vec!["clh".into()], ..other_selector("gone") })],
        ..Default::default()
    };
    let found = conflicts(&later(&spec, &status), &observed);
    assert_eq!(found, vec![Conflict::SharedNodes { install: "first".into(), nodes: vec!["n1".into()] }]);
}

#[test]
fn a_runtime_class_gantry_does_not_own_is_a_conflict_and_never_touched() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let mut observed = installed_observed();
    observed.runtime_classes.clear();
    observed.foreign_runtime_classes = BTreeSet::from(["kata-qemu".to_string(), "runc".to_string()]);
    let v = View { has_finalizer: true, ..view(&spec, &status) };
    let plan = plan_kata(&v, &observed, t0());
    creates_nothing(&plan);
    assert_eq!(condition(&plan.status.conditions, CONDITION_INSTALLED), ("False".into(), reasons::CONFLICT.into()));
    let message = &plan.status.conditions[0].message;
    assert!(message.contains("RuntimeClass kata-qemu") && !message.contains("runc"), "{message}");
    // Deletion removes only what this KataInstall owns.
    let gone = plan_kata(&deleting(&spec, &status, t0()), &observed, t0());
    assert!(!gone.actions.iter().any(|a| matches!(a, Action::DeleteRuntimeClass { .. })), "{:?}", gone.actions);
}

#[test]
fn a_runtime_class_of_a_shim_no_longer_listed_is_deleted_only_when_owned() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let mut observed = installed_observed();
    observed.foreign_runtime_classes = BTreeSet::from(["kata-fc".to_string()]);
    let plan = plan_kata(&view(&spec, &status), &observed, t0());
    assert!(
        !plan.actions.iter().any(|a| matches!(a, Action::DeleteRuntimeClass { .. })),
        "kata-fc is someone else's: {:?}",
        plan.actions
    );
    assert!(conflicts(&view(&spec, &status), &observed).is_empty(), "fc is not one of our shims");
}

//! RuntimeClasses: made once Kata runs somewhere, stale ones deleted.

use super::*;

#[test]
fn runtime_classes_appear_once_a_node_is_installed_and_stale_ones_go() {
    let (spec, status) = (spec(), KataInstallStatus::default());
    let mut observed = base_observed();
    observed.nodes = vec![node("n1", true)];
    observed.runtime_classes.insert("kata-fc".into(), Some("x".into()));
    let plan = plan_kata(&view(&spec, &status), &observed, t0());
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::ApplyRuntimeClass { .. })));
    assert!(plan.actions.contains(&Action::DeleteRuntimeClass { name: "kata-fc".into() }));

    observed.pods = vec![pod("n1", PodState::Ready)];
    let plan = plan_kata(&view(&spec, &status), &observed, t0());
    let config = runtime_class_config(&spec, "qemu");
    assert!(plan.actions.contains(&Action::ApplyRuntimeClass { shim: "qemu".into(), config }));
    assert_eq!(plan.status.runtime_classes, vec!["kata-qemu".to_string()]);
}

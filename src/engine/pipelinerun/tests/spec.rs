//! Invalid specs create nothing; the admin's policy decides nested virtualization; a finished result stands.

use super::*;

#[test]
fn nested_virt_is_refused_unless_the_policy_allows_it_then_placed() {
    let mut virt = stage("kola", &[]);
    virt.nested_virt = true;
    let mut refused = Sim::new(spec(vec![virt.clone()]));
    refused.step();
    assert_eq!(refused.condition().1, "InvalidSpec");
    assert!(refused.created_jobs.is_empty());

    let mut allowed = Sim::new(spec(vec![virt, stage("plain", &[])]));
    let placement = crate::engine::nested_virt::NestedVirtPlacement {
        node_selector: BTreeMap::from([("kvm".to_string(), "true".to_string())]),
        device_resource: Some("devices.kubevirt.io/kvm".into()),
    };
    allowed.settings.nested_virt = Some(placement.clone());
    allowed.step();
    let launches = allowed.launches();
    assert_eq!(launches[0].nested_virt, Some(placement));
    assert_eq!(launches[1].nested_virt, None, "only stages that ask get it");
}

#[test]
fn an_invalid_spec_fails_with_invalid_spec_and_creates_nothing() {
    let mut sim = Sim::new(spec(vec![stage("a", &["b"]), stage("b", &["a"])]));
    let plan = sim.step().clone();
    assert!(plan.actions.is_empty());
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
    assert_eq!(sim.condition(), ("False".into(), "InvalidSpec".into()));
    assert!(sim.status.message.as_deref().unwrap().contains("cycle"), "{:?}", sim.status.message);
    assert!(plan.notes.iter().any(|n| n.reason == "InvalidSpec"));
}

#[test]
fn a_timeout_of_years_is_an_invalid_spec_not_an_overflow() {
    for (field, mut s) in
        [("spec.timeout", spec(vec![stage("a", &[])])), ("spec.defaults.timeout", spec(vec![stage("a", &[])]))]
    {
        if field == "spec.timeout" {
            s.timeout = Some("100000000d".into());
        } else {
            s.defaults.timeout = Some("100000000d".into());
        }
        let mut sim = Sim::new(s);
        sim.step();
        assert_eq!(sim.status.phase, Some(RunPhase::Failed));
        assert_eq!(sim.condition().1, "InvalidSpec");
        let message = sim.status.message.clone().unwrap_or_default();
        assert!(message.starts_with(&format!("{field}: \"100000000d\": longer than the limit of 30d")), "{message}");
        assert!(sim.created_jobs.is_empty());
    }
}

#[test]
fn a_finished_run_keeps_its_result_when_its_spec_becomes_invalid() {
    let mut sim = Sim::new(spec(vec![stage("a", &[])]));
    sim.step();
    sim.succeed("a");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    // A stricter operator (after an upgrade) now refuses this spec.
    sim.spec.timeout = Some("60d".into());
    sim.rerun = Some("a".into());
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded), "the result it had stands");
    assert_eq!(sim.condition(), ("True".into(), "Succeeded".into()));
    assert!(sim.created_jobs.len() == 1, "no rerun of an invalid spec");
    assert!(
        sim.notes.iter().any(|n| n.reason == "RerunIgnored" && n.message.contains("spec.timeout")),
        "{:?}",
        sim.notes
    );
    assert_eq!(sim.rerun, None, "the request is answered");
}

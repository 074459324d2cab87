//! An invalid spec starts nothing, and status names the field.

use super::*;

#[test]
fn invalid_specs_start_nothing_and_name_the_field() {
    for (mutate, field) in [
        (
            Box::new(|s: &mut ImageBuildSpec| s.output = "reg/app:latest".into()) as Box<dyn Fn(&mut ImageBuildSpec)>,
            "spec.output",
        ),
        (Box::new(|s: &mut ImageBuildSpec| s.builder.image = None), "spec.builder.image"),
        (Box::new(|s: &mut ImageBuildSpec| s.suffix_prefix = "C-1".into()), "spec.suffixPrefix"),
        (Box::new(|s: &mut ImageBuildSpec| s.timeout = Some("soon".into())), "spec.timeout"),
        (Box::new(|s: &mut ImageBuildSpec| s.nested_virt = true), "spec.nestedVirt"),
        (
            Box::new(|s: &mut ImageBuildSpec| {
                s.retention.obsolete_after = Some("1d".into());
                s.retention.prune_after = Some("1d".into());
            }),
            "spec.retention.pruner",
        ),
        (Box::new(|s: &mut ImageBuildSpec| s.retention.prune_after = Some("1d".into())), "spec.retention.pruneAfter"),
    ] {
        let mut s = spec();
        mutate(&mut s);
        let mut sim = Sim::new(s);
        let plan = sim.step();
        assert!(plan.actions.is_empty(), "{field}");
        let ready = sim.status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.reason, "InvalidSpec");
        assert!(ready.message.starts_with(field), "{}", ready.message);
    }
}

//! The spec rules, each failure naming its stage and field.

use super::limits::is_quantity;
use super::*;
use crate::api::common::ContainerRun;
use crate::api::pipelinerun::{ObjectRef, Param};
use k8s_openapi::api::core::v1::EnvVar;

fn stage(name: &str, needs: &[&str]) -> Stage {
    Stage {
        name: name.into(),
        needs: needs.iter().map(|s| s.to_string()).collect(),
        run: Some(ContainerRun { image: Some("img:1".into()), ..Default::default() }),
        ..Default::default()
    }
}

fn check(stages: Vec<Stage>) -> Result<Graph, SpecError> {
    validate(&PipelineRunSpec { stages, ..Default::default() }, false, &DestinationPolicy::default())
}

fn error_of(spec: PipelineRunSpec) -> String {
    validate(&spec, false, &DestinationPolicy::default()).expect_err("invalid").to_string()
}

fn with_arg(name: &str, needs: &[&str], arg: &str) -> Stage {
    let mut s = stage(name, needs);
    s.run.as_mut().unwrap().args = vec![arg.into()];
    s
}

#[test]
fn a_valid_chain_passes() {
    let mut sdk = stage("sdk", &[]);
    sdk.outputs = vec!["image".into()];
    let spec = PipelineRunSpec {
        params: vec![Param { name: "arch".into(), value: "amd64".into() }],
        stages: vec![sdk, with_arg("packages", &["sdk"], "$(stages.sdk.outputs.image) $(params.arch)")],
        timeout: Some("2h".into()),
        ..Default::default()
    };
    assert!(validate(&spec, false, &DestinationPolicy::default()).is_ok());
}

#[test]
fn structural_errors_name_the_stage_and_field() {
    let cases: Vec<(Vec<Stage>, &str)> = vec![
        (vec![], "spec.stages: a run needs at least one stage"),
        (vec![stage("a", &[]), stage("a", &[])], "spec.stages[a].name: duplicate stage name"),
        (vec![stage("Bad_Name", &[])], "spec.stages[Bad_Name].name: must be a DNS label"),
        (vec![stage("a", &["pakages"])], "spec.stages[a].needs: \"pakages\" is not a stage of this run"),
        (vec![stage("a", &["b"]), stage("b", &["a"])], "stages need each other in a cycle"),
        ((0..65).map(|i| stage(&format!("s{i}"), &[])).collect(), "65 stages; at most 64"),
    ];
    for (stages, expected) in cases {
        let got = check(stages).expect_err(expected).to_string();
        assert!(got.contains(expected), "expected {expected:?} in {got:?}");
    }
}

#[test]
fn a_cycle_message_lists_the_stages_in_order() {
    let got = check(vec![stage("a", &["c"]), stage("b", &["a"]), stage("c", &["b"])]).unwrap_err();
    assert!(got.field.starts_with("spec.stages["), "{got}");
    assert!(got.message.contains(" -> "), "{got}");
}

#[test]
fn bad_substitutions_are_rejected_before_any_job() {
    let mut sdk = stage("sdk", &[]);
    sdk.outputs = vec!["image".into()];
    let cases = vec![
        (with_arg("b", &[], "$(params.nope)"), "spec.stages[b].run.args[0]: $(params.nope): no param \"nope\""),
        (with_arg("b", &[], "$(stages.ghost.outputs.x)"), "\"ghost\" is not a stage of this run"),
        (with_arg("b", &[], "$(stages.sdk.outputs.image)"), "add \"sdk\" to needs"),
        (with_arg("b", &["sdk"], "$(stages.sdk.outputs.tag)"), "does not declare output \"tag\""),
        (with_arg("b", &["sdk"], "$(stages.sdk.output)"), "is not $(params.NAME)"),
        (with_arg("b", &["sdk"], "$(params.x"), "unclosed"),
    ];
    for (consumer, expected) in cases {
        let spec = PipelineRunSpec { stages: vec![sdk.clone(), consumer], ..Default::default() };
        let got = error_of(spec);
        assert!(got.contains(expected), "expected {expected:?} in {got:?}");
    }
}

#[test]
fn env_values_are_checked_too() {
    let mut s = stage("a", &[]);
    s.run.as_mut().unwrap().env =
        vec![EnvVar { name: "X".into(), value: Some("$(params.p)".into()), value_from: None }];
    let got = check(vec![s]).unwrap_err().to_string();
    assert!(got.starts_with("spec.stages[a].run.env[X]"), "{got}");
}

#[test]
fn a_skipped_stage_whose_outputs_are_used_is_invalid() {
    let mut vms = stage("vms", &[]);
    vms.outputs = vec!["disk".into()];
    let spec = PipelineRunSpec {
        stages: vec![vms, with_arg("upload", &["vms"], "$(stages.vms.outputs.disk)")],
        skip: vec!["vms".into()],
        ..Default::default()
    };
    assert!(error_of(spec).contains("stage \"vms\" is in spec.skip, so it writes no outputs"));
}

#[test]
fn field_values_are_checked() {
    let mut no_image = stage("a", &[]);
    no_image.run = None;
    assert!(check(vec![no_image]).unwrap_err().to_string().contains("spec.stages[a].run.image: no image"));

    let mut retries = stage("a", &[]);
    retries.retries = Some(11);
    assert!(check(vec![retries]).unwrap_err().to_string().contains("spec.stages[a].retries"));

    let mut timeout = stage("a", &[]);
    timeout.timeout = Some("soon".into());
    assert!(check(vec![timeout]).unwrap_err().to_string().contains("spec.stages[a].timeout"));

    let mut virt = stage("a", &[]);
    virt.nested_virt = true;
    assert!(check(vec![virt.clone()]).unwrap_err().to_string().contains("spec.stages[a].nestedVirt: nested virt"));
    let allowed = PipelineRunSpec { stages: vec![virt], ..Default::default() };
    assert!(validate(&allowed, true, &DestinationPolicy::default()).is_ok(), "allowed where the policy says so");

    let mut build = stage("a", &[]);
    build.image_build = Some(ObjectRef { name: "x".into() });
    let got = check(vec![build.clone()]).unwrap_err().to_string();
    assert!(got.starts_with("spec.stages[a].run: a imageBuild stage runs nothing itself"), "{got}");
    build.run = None;
    assert!(check(vec![build.clone()]).is_ok());
    build.image_build = Some(ObjectRef { name: "Not_A_Name".into() });
    assert!(check(vec![build]).unwrap_err().to_string().starts_with("spec.stages[a].imageBuild.name"));

    let mut kata = stage("k", &[]);
    kata.run = None;
    kata.kata_install = Some(ObjectRef { name: "kata".into() });
    kata.outputs = vec!["x".into()];
    let got = check(vec![kata]).unwrap_err().to_string();
    assert!(got.starts_with("spec.stages[k].outputs") && got.contains("runtimeClass"), "{got}");

    let mut service = stage("cluster", &[]);
    service.service = Some(crate::api::pipelinerun::ServiceStage { replicas: 0, readiness_probe: None });
    assert!(check(vec![service.clone()]).unwrap_err().to_string().starts_with("spec.stages[cluster].service.replicas"));
    service.service.as_mut().unwrap().replicas = 3;
    let user = with_arg("e2e", &["cluster"], "$(stages.cluster.outputs.addresses)");
    assert!(check(vec![service.clone(), user]).is_ok(), "a service provides addresses");
    service.results = Some(crate::api::pipelinerun::ResultsFormat::Tap);
    assert!(check(vec![service]).unwrap_err().to_string().starts_with("spec.stages[cluster].results"));

    let mut finally = stage("report", &[]);
    finally.finally = true;
    let got = check(vec![finally, stage("a", &["report"])]).unwrap_err().to_string();
    assert!(got.contains("spec.stages[a].needs: \"report\" is a finally stage"), "{got}");

    let spec = PipelineRunSpec { stages: vec![stage("a", &[])], skip: vec!["b".into()], ..Default::default() };
    assert!(error_of(spec).contains("spec.skip: \"b\" is not a stage"));

    let spec = PipelineRunSpec {
        stages: vec![stage("a", &[])],
        workspace: Some(crate::api::pipelinerun::Workspace { size: "lots".into(), storage_class_name: None }),
        ..Default::default()
    };
    assert!(error_of(spec).contains("spec.workspace.size: \"lots\""));
    assert!(is_quantity("20Gi") && is_quantity("1.5G") && is_quantity("100") && !is_quantity("Gi"));

    let huge = with_arg("a", &[], &"x".repeat(MAX_STAGE_TEXT_BYTES + 1));
    assert!(check(vec![huge]).unwrap_err().to_string().contains("spec.stages[a].run: "));
}

#[test]
fn notify_targets_follow_the_operators_destination_policy() {
    let with_targets = |urls: &[&str]| PipelineRunSpec {
        stages: vec![stage("a", &[])],
        notify: urls.iter().map(|u| crate::api::pipelinerun::NotifyTarget { url: u.to_string() }).collect(),
        ..Default::default()
    };
    let policy = DestinationPolicy::default();
    let first = |urls: &[&str]| validate(&with_targets(urls), false, &policy).unwrap_err();
    assert!(validate(&with_targets(&["https://resultsdb.example/api"]), false, &policy).is_ok());
    let metadata = first(&["http://169.254.169.254/latest/meta-data"]);
    assert_eq!(metadata.field, "spec.notify[0].url");
    assert!(metadata.message.contains("169.254.169.254 is not an allowed"), "{metadata}");
    assert_eq!(first(&["https://ok.example/", "http://127.0.0.1:1/"]).field, "spec.notify[1].url");
    assert_eq!(first(&["ftp://x.example/"]).message, "must be an http:// or https:// URL");
    let six = ["https://a.example/"; 6];
    let too_many = first(&six);
    assert_eq!(too_many.field, "spec.notify");
    assert!(too_many.message.starts_with("6 targets; at most 5"), "{too_many}");
    let lab: DestinationPolicy = serde_yaml::from_str("allowedDestinations: [127.0.0.1]").unwrap();
    assert!(validate(&with_targets(&["http://127.0.0.1:1/"]), false, &lab).is_ok(), "allowed explicitly");
}

#[test]
fn gate_fields_are_only_for_gated_runs_and_merge_stages_run_last() {
    use crate::api::pipelinerun::{Concurrency, ConcurrencyPolicy};
    let gated = |policy, window, stages: Vec<Stage>| PipelineRunSpec {
        concurrency: Some(Concurrency { group: "fuel-7.0".into(), policy, window }),
        stages,
        ..Default::default()
    };
    let merge = |name: &str, needs: &[&str]| Stage { merge: true, ..stage(name, needs) };
    let ok = gated(
        ConcurrencyPolicy::Gate,
        Some(20),
        vec![with_arg("test", &[], "$(gate.ahead)"), merge("submit", &["test"])],
    );
    assert!(validate(&ok, false, &DestinationPolicy::default()).is_ok(), "a gated run with a merge stage");
    let cases: Vec<(PipelineRunSpec, &str)> = vec![
        (
            gated(ConcurrencyPolicy::Queue, Some(5), vec![stage("a", &[])]),
            "spec.concurrency.window: only for policy Gate",
        ),
        (
            gated(ConcurrencyPolicy::Gate, Some(0), vec![stage("a", &[])]),
            "spec.concurrency.window: must be 1 to 1000, not 0",
        ),
        (
            gated(ConcurrencyPolicy::Queue, None, vec![merge("a", &[])]),
            "spec.stages[a].merge: only for runs with concurrency.policy Gate",
        ),
        (
            gated(ConcurrencyPolicy::Gate, None, vec![Stage { finally: true, ..merge("a", &[]) }]),
            "spec.stages[a].merge: a merge stage cannot be a finally stage",
        ),
        (
            gated(ConcurrencyPolicy::Gate, None, vec![merge("submit", &[]), stage("after", &["submit"])]),
            "spec.stages[after].needs: \"submit\" is a merge stage",
        ),
        (
            gated(ConcurrencyPolicy::Allow, None, vec![with_arg("a", &[], "$(gate.ahead)")]),
            "$(gate.ahead): only for concurrency.policy Gate",
        ),
        (gated(ConcurrencyPolicy::Gate, None, vec![with_arg("a", &[], "$(gate.behind)")]), "is not $(params.NAME)"),
    ];
    for (spec, expected) in cases {
        let error = error_of(spec);
        assert!(error.contains(expected), "{error:?} should contain {expected:?}");
    }
}

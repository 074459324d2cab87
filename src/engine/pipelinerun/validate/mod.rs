//! Validation of a PipelineRun spec. An invalid spec never creates a Job:
//! the run goes Failed with reason `InvalidSpec` and the message of the
//! first problem found, which names the stage and field.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::dag::{Graph, GraphError};
use super::destinations::DestinationPolicy;
use super::stage_kind::{
    provides_output, stage_kind, StageKind, IMAGE_BUILD_OUTPUTS, KATA_INSTALL_OUTPUTS, SERVICE_OUTPUTS,
};
use super::substitute::{references, Reference};
use crate::api::pipelinerun::{PipelineRunSpec, Stage};
use crate::engine::duration::{format_duration, parse_duration_at_most, MAX_TIMEOUT};
use crate::engine::naming::is_dns_label;

/// Most stages a run may have (status stays bounded, see `MAX_HISTORY`).
pub const MAX_STAGES: usize = 64;
/// Most params a run may have.
pub const MAX_PARAMS: usize = 64;
/// Most retries a stage may ask for.
pub const MAX_RETRIES: u32 = 10;
/// Most pods a service stage may run.
pub const MAX_SERVICE_REPLICAS: u32 = 16;
/// Most outputs a stage may declare.
pub const MAX_OUTPUTS: usize = 16;
/// Most env entries a stage may set (its own plus defaults).
pub const MAX_ENV: usize = 100;
/// Most bytes of image, command, args and env values per stage.
pub const MAX_STAGE_TEXT_BYTES: usize = 64 * 1024;
/// Longest `ttlSecondsAfterFinished`: a year.
pub const MAX_TTL_SECONDS: i64 = 365 * 24 * 60 * 60;
/// Longest base delay before a retry (`retryDelaySeconds`); the doubling
/// delay is capped at the same value.
pub const MAX_RETRY_DELAY_SECONDS: u32 = 600;

pub use crate::engine::spec_error::SpecError;

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError { field: field.into(), message: message.into() }
}

fn stage_field(stage: &Stage, field: &str) -> String {
    if field.is_empty() {
        format!("spec.stages[{}]", stage.name)
    } else {
        format!("spec.stages[{}].{field}", stage.name)
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Checks the whole spec; `Ok` means the planner may create Jobs for it.
/// `nested_virt_allowed`: whether the operator's policy lets this run's
/// namespace ask for nested virtualization; `destinations`: where
/// `spec.notify` may point.
pub fn validate(
    spec: &PipelineRunSpec,
    nested_virt_allowed: bool,
    destinations: &DestinationPolicy,
) -> Result<Graph, SpecError> {
    check_run_fields(spec)?;
    check_notify(spec, destinations)?;
    let mut seen = HashSet::new();
    for stage in &spec.stages {
        if !is_dns_label(&stage.name) {
            return Err(err(
                format!("spec.stages[{}].name", stage.name),
                "must be a DNS label: lowercase letters, digits and '-', at most 63 characters",
            ));
        }
        if !seen.insert(stage.name.as_str()) {
            return Err(err(stage_field(stage, "name"), "duplicate stage name"));
        }
    }
    let graph = Graph::build(&spec.stages).map_err(|e| match e {
        GraphError::UnknownNeed { stage, missing } => {
            err(format!("spec.stages[{stage}].needs"), format!("\"{missing}\" is not a stage of this run"))
        }
        GraphError::Cycle { .. } => unreachable!("build does not detect cycles"),
    })?;
    graph.topological_order(&spec.stages).map_err(|e| match e {
        GraphError::Cycle { stages } => err(
            format!("spec.stages[{}].needs", stages[0]),
            format!("stages need each other in a cycle: {} -> {}", stages.join(" -> "), stages[0]),
        ),
        GraphError::UnknownNeed { .. } => unreachable!("needs were resolved above"),
    })?;
    for (i, stage) in spec.stages.iter().enumerate() {
        check_stage(spec, stage, nested_virt_allowed)?;
        check_finally_order(spec, &graph, i)?;
    }
    check_skip_list(spec)?;
    check_references(spec, &graph)?;
    Ok(graph)
}

fn check_run_fields(spec: &PipelineRunSpec) -> Result<(), SpecError> {
    if spec.stages.is_empty() {
        return Err(err("spec.stages", "a run needs at least one stage"));
    }
    if spec.stages.len() > MAX_STAGES {
        return Err(err("spec.stages", format!("{} stages; at most {MAX_STAGES} are allowed", spec.stages.len())));
    }
    if spec.params.len() > MAX_PARAMS {
        return Err(err("spec.params", format!("{} params; at most {MAX_PARAMS} are allowed", spec.params.len())));
    }
    let mut params = HashSet::new();
    for p in &spec.params {
        if !is_identifier(&p.name) {
            return Err(err(format!("spec.params[{}].name", p.name), "must be letters, digits, '_' or '-'"));
        }
        if !params.insert(&p.name) {
            return Err(err(format!("spec.params[{}].name", p.name), "duplicate param name"));
        }
    }
    check_duration("spec.timeout", spec.timeout.as_deref())?;
    check_duration("spec.defaults.timeout", spec.defaults.timeout.as_deref())?;
    check_retries("spec.defaults.retries", spec.defaults.retries)?;
    check_retry_delay("spec.defaults.retryDelaySeconds", spec.defaults.retry_delay_seconds)?;
    if let Some(ttl) = spec.ttl_seconds_after_finished {
        if !(0..=MAX_TTL_SECONDS).contains(&ttl) {
            let most = format_duration(std::time::Duration::from_secs(MAX_TTL_SECONDS.unsigned_abs()));
            return Err(err("spec.ttlSecondsAfterFinished", format!("must be 0 to {MAX_TTL_SECONDS} ({most})")));
        }
    }
    if let Some(ws) = &spec.workspace {
        if !is_quantity(&ws.size) {
            return Err(err("spec.workspace.size", format!("\"{}\" is not a size like 20Gi or 500Mi", ws.size)));
        }
    }
    if let Some(c) = &spec.concurrency {
        if !is_identifier(&c.group) {
            return Err(err("spec.concurrency.group", "must be 1-63 letters, digits, '_' or '-'"));
        }
    }
    Ok(())
}

/// At most the admin's number of targets, each an http(s) URL the
/// destination policy allows (IP literals are checked here, names again
/// when they are resolved).
fn check_notify(spec: &PipelineRunSpec, destinations: &DestinationPolicy) -> Result<(), SpecError> {
    if spec.notify.len() > destinations.max_targets {
        return Err(err(
            "spec.notify",
            format!(
                "{} targets; at most {} are allowed (the operator's notify policy)",
                spec.notify.len(),
                destinations.max_targets
            ),
        ));
    }
    for (i, target) in spec.notify.iter().enumerate() {
        destinations.check_url(&target.url).map_err(|e| err(format!("spec.notify[{i}].url"), e))?;
    }
    Ok(())
}

/// A storage quantity: a decimal number with an optional binary or decimal suffix.
fn is_quantity(s: &str) -> bool {
    const SUFFIXES: [&str; 13] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", ""];
    SUFFIXES.iter().any(|suffix| {
        s.strip_suffix(suffix).is_some_and(|num| {
            let mut parts = num.splitn(2, '.');
            let whole = parts.next().unwrap_or("");
            let frac = parts.next();
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
        })
    })
}

fn check_duration(field: &str, value: Option<&str>) -> Result<(), SpecError> {
    match value {
        Some(v) => parse_duration_at_most(v, MAX_TIMEOUT).map(|_| ()).map_err(|e| err(field, e)),
        None => Ok(()),
    }
}

fn check_retries(field: &str, retries: Option<u32>) -> Result<(), SpecError> {
    match retries {
        Some(r) if r > MAX_RETRIES => Err(err(field, format!("{r} retries; at most {MAX_RETRIES} are allowed"))),
        _ => Ok(()),
    }
}

fn check_retry_delay(field: &str, seconds: Option<u32>) -> Result<(), SpecError> {
    match seconds {
        Some(s) if s > MAX_RETRY_DELAY_SECONDS => {
            Err(err(field, format!("{s} seconds; at most {MAX_RETRY_DELAY_SECONDS} are allowed")))
        }
        _ => Ok(()),
    }
}

/// A DNS-1123 subdomain (the names of Kubernetes objects).
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// `imageBuild` and `kataInstall` stages run nothing themselves: they take
/// a name, and fields about pods make no sense on them.
fn check_reference_stage(stage: &Stage) -> Result<(), SpecError> {
    let (field, name) = match stage_kind(stage) {
        StageKind::ImageBuild { name } => ("imageBuild", name),
        StageKind::KataInstall { name } => ("kataInstall", name),
        _ => return Ok(()),
    };
    let set = [
        ("run", stage.run.is_some()),
        ("service", stage.service.is_some()),
        ("imageBuild", field != "imageBuild" && stage.image_build.is_some()),
        ("kataInstall", field != "kataInstall" && stage.kata_install.is_some()),
        ("outputs", !stage.outputs.is_empty()),
        ("results", stage.results.is_some()),
        ("nestedVirt", stage.nested_virt),
        ("retries", stage.retries.is_some()),
    ];
    if let Some((other, _)) = set.iter().find(|(_, set)| *set) {
        let fixed = match field {
            "imageBuild" => IMAGE_BUILD_OUTPUTS.join(", "),
            _ => KATA_INSTALL_OUTPUTS.join(", "),
        };
        return Err(err(
            stage_field(stage, other),
            format!("a {field} stage runs nothing itself: remove {other} (its outputs are fixed: {fixed})"),
        ));
    }
    if !is_dns_subdomain(name) {
        return Err(err(
            stage_field(stage, &format!("{field}.name")),
            format!("\"{name}\" is not a valid object name"),
        ));
    }
    check_duration(&stage_field(stage, "timeout"), stage.timeout.as_deref())
}

fn check_service_stage(stage: &Stage) -> Result<(), SpecError> {
    let Some(service) = &stage.service else { return Ok(()) };
    if service.replicas == 0 || service.replicas > MAX_SERVICE_REPLICAS {
        return Err(err(stage_field(stage, "service.replicas"), format!("must be 1 to {MAX_SERVICE_REPLICAS}")));
    }
    for (field, set) in
        [("results", stage.results.is_some()), ("finally", stage.finally), ("outputs", !stage.outputs.is_empty())]
    {
        if set {
            return Err(err(
                stage_field(stage, field),
                format!(
                    "not for a service stage (it stays up until its dependents finish; its outputs are fixed: {})",
                    SERVICE_OUTPUTS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn check_stage(spec: &PipelineRunSpec, stage: &Stage, nested_virt_allowed: bool) -> Result<(), SpecError> {
    if stage_kind(stage).is_reference() {
        return check_reference_stage(stage);
    }
    check_service_stage(stage)?;
    if stage.nested_virt && !nested_virt_allowed {
        return Err(err(
            stage_field(stage, "nestedVirt"),
            "nested virtualization is not allowed in this namespace (the operator's nestedVirt.allowedNamespaces)",
        ));
    }
    let run = stage.run.clone().unwrap_or_default();
    if run.image.as_deref().or(spec.defaults.image.as_deref()).is_none_or(str::is_empty) {
        return Err(err(stage_field(stage, "run.image"), "no image: set it here or in spec.defaults.image"));
    }
    check_retries(&stage_field(stage, "retries"), stage.retries)?;
    check_retry_delay(&stage_field(stage, "retryDelaySeconds"), stage.retry_delay_seconds)?;
    check_duration(&stage_field(stage, "timeout"), stage.timeout.as_deref())?;
    if stage.outputs.len() > MAX_OUTPUTS {
        return Err(err(stage_field(stage, "outputs"), format!("at most {MAX_OUTPUTS} outputs are allowed")));
    }
    let mut outputs = HashSet::new();
    for o in &stage.outputs {
        if !is_identifier(o) {
            return Err(err(stage_field(stage, "outputs"), format!("\"{o}\" must be letters, digits, '_' or '-'")));
        }
        if !outputs.insert(o) {
            return Err(err(stage_field(stage, "outputs"), format!("\"{o}\" is declared twice")));
        }
    }
    if run.env.len() + spec.defaults.env.len() > MAX_ENV {
        return Err(err(stage_field(stage, "run.env"), format!("at most {MAX_ENV} variables are allowed")));
    }
    let text_bytes: usize = templates(spec, stage).iter().map(|(_, t)| t.len()).sum();
    if text_bytes > MAX_STAGE_TEXT_BYTES {
        return Err(err(
            stage_field(stage, "run"),
            format!("image, command, args and env add up to {text_bytes} bytes; at most {MAX_STAGE_TEXT_BYTES}"),
        ));
    }
    Ok(())
}

/// A non-finally stage must not need a finally stage (finally stages run last).
fn check_finally_order(spec: &PipelineRunSpec, graph: &Graph, i: usize) -> Result<(), SpecError> {
    let stage = &spec.stages[i];
    if stage.finally {
        return Ok(());
    }
    match graph.needs[i].iter().find(|&&n| spec.stages[n].finally) {
        Some(&n) => Err(err(
            stage_field(stage, "needs"),
            format!("\"{}\" is a finally stage; only finally stages may need it", spec.stages[n].name),
        )),
        None => Ok(()),
    }
}

fn check_skip_list(spec: &PipelineRunSpec) -> Result<(), SpecError> {
    let names: HashSet<&str> = spec.stages.iter().map(|s| s.name.as_str()).collect();
    match spec.skip.iter().find(|s| !names.contains(s.as_str())) {
        Some(s) => Err(err("spec.skip", format!("\"{s}\" is not a stage of this run"))),
        None => Ok(()),
    }
}

/// Every template of a stage, with the field it sits in.
fn templates(spec: &PipelineRunSpec, stage: &Stage) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if stage_kind(stage).is_reference() {
        return out;
    }
    let run = stage.run.clone().unwrap_or_default();
    if let Some(image) = run.image.or_else(|| spec.defaults.image.clone()) {
        out.push(("run.image".to_string(), image));
    }
    out.extend(run.command.iter().enumerate().map(|(i, c)| (format!("run.command[{i}]"), c.clone())));
    out.extend(run.args.iter().enumerate().map(|(i, a)| (format!("run.args[{i}]"), a.clone())));
    for env in spec.defaults.env.iter().chain(&run.env) {
        if let Some(v) = &env.value {
            out.push((format!("run.env[{}]", env.name), v.clone()));
        }
    }
    out
}

/// Params must be declared; outputs must come from a stage this one needs
/// (directly or not) that declares them and is not listed in `spec.skip`.
fn check_references(spec: &PipelineRunSpec, graph: &Graph) -> Result<(), SpecError> {
    let params: HashSet<&str> = spec.params.iter().map(|p| p.name.as_str()).collect();
    let index: HashMap<&str, usize> = spec.stages.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let skipped: BTreeSet<&str> = spec.skip.iter().map(String::as_str).collect();
    for (i, stage) in spec.stages.iter().enumerate() {
        let ancestors = graph.ancestors(i);
        for (field, template) in templates(spec, stage) {
            let field = stage_field(stage, &field);
            for reference in references(&template).map_err(|e| err(&field, e.to_string()))? {
                match &reference {
                    Reference::Param(p) if !params.contains(p.as_str()) => {
                        return Err(err(&field, format!("{reference}: no param \"{p}\" in spec.params")));
                    }
                    Reference::Param(_) => {}
                    Reference::Output { stage: from, output } => {
                        let Some(&j) = index.get(from.as_str()) else {
                            return Err(err(&field, format!("{reference}: \"{from}\" is not a stage of this run")));
                        };
                        if !ancestors.contains(&j) {
                            return Err(err(
                                &field,
                                format!("{reference}: add \"{from}\" to needs (directly or through another stage)"),
                            ));
                        }
                        if !provides_output(&spec.stages[j], output) {
                            return Err(err(
                                &field,
                                format!("{reference}: stage \"{from}\" does not declare output \"{output}\""),
                            ));
                        }
                        if skipped.contains(from.as_str()) && !skipped.contains(stage.name.as_str()) {
                            return Err(err(
                                &field,
                                format!("{reference}: stage \"{from}\" is in spec.skip, so it writes no outputs"),
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        assert!(check(vec![service.clone()])
            .unwrap_err()
            .to_string()
            .starts_with("spec.stages[cluster].service.replicas"));
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
}

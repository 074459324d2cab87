//! Everything needed to start one attempt of a stage: the rendered
//! container and its context environment. Pure; `resources::job` turns it
//! into a Job manifest.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};

use super::dag::Graph;
use super::gate::ahead_value;
use super::substitute::{is_safe_output, references, render, Reference, RenderError};
use crate::api::pipelinerun::{PipelineRunSpec, PipelineRunStatus, Stage};
use crate::engine::duration::parse_duration;
use crate::engine::naming::{job_name, workspace_claim_name};
use crate::engine::nested_virt::NestedVirtPlacement;
use crate::engine::outputs::OUTPUTS_PATH;
use crate::engine::settings::Settings;

/// One attempt of one stage, ready to become a Job.
#[derive(Debug, Clone, PartialEq)]
pub struct StageLaunch {
    /// The run's name.
    pub run: String,
    /// The stage's name.
    pub stage: String,
    /// The attempt number (from 1).
    pub attempt: u32,
    /// The Job's name.
    pub job_name: String,
    /// Rendered image.
    pub image: String,
    /// Rendered command.
    pub command: Vec<String>,
    /// Rendered args.
    pub args: Vec<String>,
    /// Context variables, then defaults' and the stage's own (rendered).
    pub env: Vec<EnvVar>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Requests and limits.
    pub resources: Option<ResourceRequirements>,
    /// ServiceAccount to run as.
    pub service_account_name: Option<String>,
    /// Deadline of the attempt.
    pub timeout: Option<Duration>,
    /// The run's shared workspace claim, when it has one.
    pub workspace_claim: Option<String>,
    /// Virtualization for the pod, when the stage asks for it.
    pub nested_virt: Option<NestedVirtPlacement>,
    /// For a service stage: how many pods, and when one is ready.
    pub service: Option<crate::api::pipelinerun::ServiceStage>,
}

/// `GANTRY_PARAM_ARCH` for `arch`: upper case, anything else than letters
/// and digits becomes `_`.
pub fn env_name(prefix: &str, parts: &[&str]) -> String {
    let mut name = prefix.to_string();
    for part in parts {
        name.push('_');
        name.extend(part.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }));
    }
    name
}

fn env(name: impl Into<String>, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

/// A stage's per-attempt deadline: its own, else the run's default, else the
/// operator's.
pub fn stage_timeout(spec: &PipelineRunSpec, stage: &Stage, settings: &Settings) -> Option<Duration> {
    stage
        .timeout
        .as_deref()
        .or(spec.defaults.timeout.as_deref())
        .and_then(|t| parse_duration(t).ok())
        .or(settings.default_stage_timeout)
}

/// Outputs are written by other stages' containers, which may run code the
/// run's author does not control: substituted into an image, a command or
/// args (often `sh -c` scripts) they must be plain data.
fn check_outputs_are_data(
    image: &str,
    command: &[String],
    args: &[String],
    lookup: &impl Fn(&Reference) -> Option<String>,
) -> Result<(), RenderError> {
    let fields = std::iter::once(("run.image".to_string(), image))
        .chain(command.iter().enumerate().map(|(i, c)| (format!("run.command[{i}]"), c.as_str())))
        .chain(args.iter().enumerate().map(|(i, a)| (format!("run.args[{i}]"), a.as_str())));
    for (field, template) in fields {
        for reference in references(template)? {
            let Reference::Output { stage, output } = &reference else { continue };
            let Some(value) = lookup(&reference) else { continue };
            if !is_safe_output(&value) {
                let env = env_name("GANTRY_OUTPUT", &[stage, output]);
                let value = crate::engine::text::truncate(&value, 64);
                return Err(RenderError::Unsafe { reference, field, value, env });
            }
        }
    }
    Ok(())
}

/// Renders stage `index` of the run `run` (UID `run_uid`) for `attempt`.
/// `status` holds the current status of every stage (for upstream outputs)
/// and, for a `Gate` run, what its try is tested on. Fails when a referenced
/// output was not written.
#[allow(clippy::too_many_arguments)]
pub fn launch(
    run: &str,
    run_uid: &str,
    settings: &Settings,
    spec: &PipelineRunSpec,
    graph: &Graph,
    status: &PipelineRunStatus,
    index: usize,
    attempt: u32,
) -> Result<StageLaunch, RenderError> {
    let stages = &status.stages;
    let gate_ahead = status.gate.as_ref().map(|g| ahead_value(&g.ahead));
    let stage = &spec.stages[index];
    let run_spec = stage.run.clone().unwrap_or_default();
    let params: BTreeMap<&str, &str> = spec.params.iter().map(|p| (p.name.as_str(), p.value.as_str())).collect();
    let lookup = |r: &Reference| match r {
        Reference::Param(p) => params.get(p.as_str()).map(|v| v.to_string()),
        Reference::Output { stage, output } => {
            stages.iter().find(|s| &s.name == stage).and_then(|s| s.outputs.get(output)).cloned()
        }
        Reference::GateAhead => gate_ahead.clone(),
    };
    let image = run_spec.image.clone().or_else(|| spec.defaults.image.clone()).unwrap_or_default();
    if !stage.allow_unsafe_outputs {
        check_outputs_are_data(&image, &run_spec.command, &run_spec.args, &lookup)?;
    }
    let render_all = |items: &[String]| items.iter().map(|t| render(t, lookup)).collect::<Result<Vec<_>, _>>();

    let mut vars = vec![
        env("GANTRY_RUN", run),
        env("GANTRY_STAGE", &stage.name),
        env("GANTRY_ATTEMPT", attempt.to_string()),
        env("GANTRY_OUTPUTS", OUTPUTS_PATH),
    ];
    if let Some(source) = &spec.source {
        vars.push(env("GANTRY_SOURCE_REPO", source.repo.clone().unwrap_or_default()));
        vars.push(env("GANTRY_SOURCE_REVISION", source.revision.clone().unwrap_or_default()));
    }
    if let Some(gate) = &status.gate {
        vars.push(env("GANTRY_GATE_AHEAD", ahead_value(&gate.ahead)));
        vars.push(env("GANTRY_GATE_TRY", gate.try_number.to_string()));
    }
    vars.extend(spec.params.iter().map(|p| env(env_name("GANTRY_PARAM", &[&p.name]), &p.value)));
    for ancestor in graph.ancestors(index) {
        let upstream = &spec.stages[ancestor].name;
        if let Some(status) = stages.iter().find(|s| &s.name == upstream) {
            vars.extend(status.outputs.iter().map(|(k, v)| env(env_name("GANTRY_OUTPUT", &[upstream, k]), v)));
        }
    }
    for user in spec.defaults.env.iter().chain(&run_spec.env) {
        let mut user = user.clone();
        if let Some(v) = &user.value {
            user.value = Some(render(v, lookup)?);
        }
        vars.push(user);
    }
    let timeout = stage_timeout(spec, stage, settings);
    Ok(StageLaunch {
        run: run.to_string(),
        stage: stage.name.clone(),
        attempt,
        job_name: job_name(run, run_uid, &stage.name, attempt),
        image: render(&image, lookup)?,
        command: render_all(&run_spec.command)?,
        args: render_all(&run_spec.args)?,
        env: vars,
        working_dir: run_spec.working_dir.clone(),
        resources: run_spec.resources.clone(),
        service_account_name: stage.service_account_name.clone().or_else(|| spec.defaults.service_account_name.clone()),
        timeout,
        workspace_claim: spec.workspace.as_ref().map(|_| workspace_claim_name(run, run_uid)),
        nested_virt: if stage.nested_virt { settings.nested_virt.clone() } else { None },
        service: stage.service.clone(),
    })
}

//! The ImageBuild planner: spec, last status and the build Jobs in; the next
//! status, the Jobs to create or delete and the Events out. Pure.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::conditions::{set_condition, ConditionStatus, MAX_MESSAGE_BYTES};
use super::duration::{format_duration, later, parse_duration, parse_duration_at_most, MAX_RETENTION, MAX_TIMEOUT};
use super::imagebuild::{build_due, build_suffix, lifecycle, BuildTrigger};
use super::launch::NestedVirtPlacement;
use super::naming::{build_job_name, ANNOTATION_REBUILD};
use super::observed::{JobOutcome, JobState, Settings};
use super::outputs::parse_outputs;
use super::planner::{Note, TIMEOUT_GRACE};
use super::text::truncate;
use super::validate::SpecError;
use crate::api::imagebuild::{BuildPhase, BuildRecord, ImageBuildSpec, ImageBuildStatus, Lifecycle, PruneRecord};

/// Builds kept in status when `retention.keepLast` is unset.
pub const DEFAULT_KEEP_LAST: u32 = 5;
/// Most builds `retention.keepLast` may keep.
pub const MAX_KEEP_LAST: u32 = 50;
/// Outputs a builder may report.
pub const BUILD_OUTPUTS: [&str; 2] = ["digest", "manifest"];

/// The ImageBuild being planned.
#[derive(Debug, Clone)]
pub struct BuildView<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.generation`.
    pub generation: i64,
    /// The desired state.
    pub spec: &'a ImageBuildSpec,
    /// The status as last written.
    pub status: &'a ImageBuildStatus,
    /// The `gantry.dev/rebuild` annotation, when set.
    pub rebuild: Option<&'a str>,
    /// The admin's settings for this namespace.
    pub settings: &'a Settings,
}

/// A build or prune Job as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildJob {
    /// The build's suffix (its label).
    pub suffix: String,
    /// The generation it builds (its label).
    pub generation: i64,
    /// The Job's outcome; `outputs` is what the builder reported.
    pub outcome: JobOutcome,
    /// A prune Job (true) or a build Job.
    pub prune: bool,
    /// The `gantry.dev/rebuild` request this build answered (its annotation).
    pub rebuild_request: Option<String>,
    /// The reference it builds (its `gantry.dev/image` annotation).
    pub image: Option<String>,
}

/// One build to start.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildLaunch {
    /// The ImageBuild's name.
    pub build: String,
    /// The Job's name.
    pub job_name: String,
    /// The unique suffix.
    pub suffix: String,
    /// The generation built.
    pub generation: i64,
    /// The full reference to push: `output:suffix`.
    pub image: String,
    /// Deadline of the build, Pending time included.
    pub timeout: Option<Duration>,
    /// Virtualization for the builder, when asked for and allowed.
    pub nested_virt: Option<NestedVirtPlacement>,
    /// The `gantry.dev/rebuild` request this build answers, recorded on the
    /// Job so that adopting it also marks the request handled.
    pub rebuild_request: Option<String>,
}

/// The prune Job of an obsolete image.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneLaunch {
    /// The ImageBuild's name.
    pub build: String,
    /// The Job's name.
    pub job_name: String,
    /// The suffix of the build whose image is deleted.
    pub suffix: String,
    /// The reference to delete.
    pub image: String,
    /// Its digest.
    pub digest: Option<String>,
}

/// Something to do in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildAction {
    /// Create the builder Job.
    CreateJob(Box<BuildLaunch>),
    /// Create the prune Job.
    CreatePruneJob(Box<PruneLaunch>),
    /// Delete a builder Job that must stop.
    DeleteJob { name: String },
}

/// The planner's answer.
pub type BuildPlan = super::plan::Plan<ImageBuildStatus, BuildAction>;

fn err(field: &str, message: impl Into<String>) -> SpecError {
    SpecError { field: field.into(), message: message.into() }
}

/// Checks an ImageBuild spec; the message names the field.
pub fn validate_build(spec: &ImageBuildSpec, nested_virt_allowed: bool) -> Result<(), SpecError> {
    let last = spec.output.rsplit('/').next().unwrap_or("");
    if spec.output.is_empty() || spec.output.contains('@') || last.contains(':') {
        return Err(err("spec.output", "must be a repository without tag or digest, e.g. registry:5000/fedora-cache"));
    }
    if spec.builder.image.as_deref().is_none_or(str::is_empty) {
        return Err(err("spec.builder.image", "the builder needs an image"));
    }
    let prefix_ok = spec.suffix_prefix.len() <= 8
        && spec.suffix_prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !prefix_ok {
        return Err(err("spec.suffixPrefix", "at most 8 lowercase letters or digits, e.g. c or b"));
    }
    for (field, value, limit) in [
        ("spec.timeout", spec.timeout.as_deref(), MAX_TIMEOUT),
        ("spec.retention.obsoleteAfter", spec.retention.obsolete_after.as_deref(), MAX_RETENTION),
        ("spec.retention.pruneAfter", spec.retention.prune_after.as_deref(), MAX_RETENTION),
    ] {
        if let Some(v) = value {
            parse_duration_at_most(v, limit).map_err(|e| err(field, e))?;
        }
    }
    let retention = &spec.retention;
    if retention.prune_after.is_some() && retention.obsolete_after.is_none() {
        return Err(err("spec.retention.pruneAfter", "counts from obsolescence: set obsoleteAfter too"));
    }
    match &retention.pruner {
        None if retention.prune_after.is_some() => {
            return Err(err("spec.retention.pruner", "pruneAfter needs a pruner container that deletes the image"))
        }
        Some(p) if p.image.as_deref().is_none_or(str::is_empty) => {
            return Err(err("spec.retention.pruner.image", "the pruner needs an image"))
        }
        _ => {}
    }
    if spec.retention.keep_last.is_some_and(|k| k == 0 || k > MAX_KEEP_LAST) {
        return Err(err("spec.retention.keepLast", format!("must be 1 to {MAX_KEEP_LAST}")));
    }
    if spec.nested_virt && !nested_virt_allowed {
        return Err(err(
            "spec.nestedVirt",
            "nested virtualization is not allowed in this namespace (the operator's nestedVirt.allowedNamespaces)",
        ));
    }
    Ok(())
}

/// Whether `d` is a `sha256:` digest.
pub fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Plans one reconcile of an ImageBuild.
pub fn plan_build(view: &BuildView, jobs: &[BuildJob], now: DateTime<Utc>) -> BuildPlan {
    let mut status = view.status.clone();
    status.observed_generation = Some(view.generation);
    let mut actions = Vec::new();
    let mut wake: Vec<DateTime<Utc>> = Vec::new();
    if let Err(e) = validate_build(view.spec, view.settings.nested_virt.is_some()) {
        let message = e.to_string();
        status.phase = Some(BuildPhase::Failed);
        let ready = ConditionStatus::from(status.latest_image.is_some());
        set_condition(&mut status.conditions, "Ready", ready, "InvalidSpec", &message, Some(view.generation), now);
        set_condition(
            &mut status.conditions,
            "Building",
            ConditionStatus::False,
            "InvalidSpec",
            &message,
            Some(view.generation),
            now,
        );
        return finish(view, status, actions, now, wake);
    }

    adopt(&mut status, jobs);
    if let Some(last) = status.builds.last_mut().filter(|b| b.phase == "Building") {
        let job = jobs.iter().find(|j| j.outcome.name == last.job_name);
        let timeout = view.spec.timeout.as_deref().and_then(|t| parse_duration(t).ok());
        integrate(last, job, timeout, now, &mut actions, &mut wake);
        if last.phase == "Ready" {
            status.latest_image = Some(record_image(view, last));
            status.digest = last.digest.clone();
        }
    }

    if let Some(trigger) = build_due(view.generation, view.rebuild, status.handled_rebuild.as_deref(), &status) {
        let suffix = build_suffix(&view.spec.suffix_prefix, now, &status.builds);
        let launch = BuildLaunch {
            build: view.name.to_string(),
            job_name: build_job_name(view.name, &suffix),
            suffix: suffix.clone(),
            generation: view.generation,
            image: format!("{}:{suffix}", view.spec.output),
            timeout: view.spec.timeout.as_deref().and_then(|t| parse_duration(t).ok()),
            nested_virt: if view.spec.nested_virt { view.settings.nested_virt.clone() } else { None },
            // Whatever started this build, it answers the current rebuild request.
            rebuild_request: view.rebuild.map(str::to_string),
        };
        if let Some(request) = view.rebuild {
            status.handled_rebuild = Some(request.to_string());
        }
        status.builds.push(BuildRecord {
            suffix,
            job_name: launch.job_name.clone(),
            phase: "Building".into(),
            image: Some(launch.image.clone()),
            generation: Some(view.generation),
            start_time: Some(now),
            message: Some(trigger_message(&trigger)),
            ..Default::default()
        });
        actions.push(BuildAction::CreateJob(Box::new(launch)));
    }
    let dropped = trim_history(view, &mut status);
    prune_dropped(view, &status, &dropped, &mut actions);

    summarize(view, &mut status, now);
    retire(view, &mut status, jobs, now, &mut actions, &mut wake);
    finish(view, status, actions, now, wake)
}

/// Keeps the last `keepLast` builds, oldest out first, and the build of
/// `latestImage` while it is the image in use (so status holds at most one
/// more); returns the records that left.
fn trim_history(view: &BuildView, status: &mut ImageBuildStatus) -> Vec<BuildRecord> {
    let keep = view.spec.retention.keep_last.unwrap_or(DEFAULT_KEEP_LAST) as usize;
    let older = status.builds.len().saturating_sub(keep);
    let latest = status.latest_image.clone();
    let (mut index, mut dropped) = (0, Vec::new());
    status.builds.retain(|b| {
        let in_use = latest.as_deref() == Some(record_image(view, b).as_str());
        index += 1;
        if index > older || in_use {
            return true;
        }
        dropped.push(b.clone());
        false
    });
    dropped
}

/// Builds beyond `keepLast` leave the history and their Jobs are deleted;
/// with a pruner, their images leave the registry too (one prune Job each,
/// not tracked in status).
fn prune_dropped(view: &BuildView, status: &ImageBuildStatus, dropped: &[BuildRecord], actions: &mut Vec<BuildAction>) {
    actions.extend(dropped.iter().map(|b| BuildAction::DeleteJob { name: b.job_name.clone() }));
    let retention = &view.spec.retention;
    if retention.pruner.is_none() || retention.permanent {
        return;
    }
    for record in dropped.iter().filter(|b| b.phase == "Ready") {
        let image = record_image(view, record);
        if status.latest_image.as_deref() == Some(image.as_str()) {
            continue;
        }
        actions.push(BuildAction::CreatePruneJob(Box::new(PruneLaunch {
            build: view.name.to_string(),
            job_name: build_job_name(view.name, &format!("prune-{}", record.suffix)),
            suffix: record.suffix.clone(),
            image,
            digest: record.digest.clone(),
        })));
    }
}

/// The retention lifecycle of the latest image: Used → Obsolete (unused for
/// `obsoleteAfter`) → a prune Job (after `pruneAfter` more) → Pruned. One
/// prune Job per image; a failed one is reported, not retried.
fn retire(
    view: &BuildView,
    status: &mut ImageBuildStatus,
    jobs: &[BuildJob],
    now: DateTime<Utc>,
    actions: &mut Vec<BuildAction>,
    wake: &mut Vec<DateTime<Utc>>,
) {
    let Some(image) = status.latest_image.clone() else { return };
    let suffix = image.rsplit(':').next().unwrap_or_default().to_string();
    // A prune Job the status does not know (its write was lost): take it over.
    if let Some(job) = jobs.iter().find(|j| j.prune && j.suffix == suffix) {
        if status.prune.as_ref().is_none_or(|p| p.job_name != job.outcome.name) {
            status.prune = Some(PruneRecord {
                image: image.clone(),
                job_name: job.outcome.name.clone(),
                phase: "Running".into(),
                start_time: job.outcome.created,
                ..Default::default()
            });
        }
    }
    if let Some(prune) = status.prune.as_mut().filter(|p| p.image == image && p.phase == "Running") {
        match jobs.iter().find(|j| j.prune && j.outcome.name == prune.job_name) {
            None => {
                prune.phase = "Failed".into();
                prune.message = Some(format!("Job {} disappeared before it finished", prune.job_name));
                prune.completion_time = Some(now);
            }
            Some(job) if job.outcome.state == JobState::Active => {}
            Some(job) => {
                let ok = job.outcome.state == JobState::Succeeded;
                prune.phase = if ok { "Succeeded" } else { "Failed" }.into();
                prune.message =
                    (!ok).then(|| truncate(job.outcome.message.as_deref().unwrap_or("failed"), MAX_MESSAGE_BYTES));
                prune.completion_time = Some(job.outcome.finished.unwrap_or(now));
            }
        }
    }
    let this_image = status.prune.as_ref().filter(|p| p.image == image);
    let pruned = this_image.is_some_and(|p| p.phase == "Succeeded");
    let used = status.last_used.or_else(|| status.builds.iter().rev().find_map(|b| b.completion_time));
    let state = lifecycle(&view.spec.retention, used, pruned, now);
    status.lifecycle = Some(state.lifecycle);
    wake.extend(state.next_change);
    if pruned {
        let message = format!("{image} was deleted by its prune Job; annotate {ANNOTATION_REBUILD} to build it again");
        set_condition(
            &mut status.conditions,
            "Ready",
            ConditionStatus::False,
            "Pruned",
            &message,
            Some(view.generation),
            now,
        );
    }
    let (Some(_), true, None) = (&view.spec.retention.pruner, state.prune_due, this_image) else { return };
    let launch = PruneLaunch {
        build: view.name.to_string(),
        job_name: build_job_name(view.name, &format!("prune-{suffix}")),
        suffix,
        image: image.clone(),
        digest: status.digest.clone(),
    };
    status.prune = Some(PruneRecord {
        image,
        job_name: launch.job_name.clone(),
        phase: "Running".into(),
        start_time: Some(now),
        ..Default::default()
    });
    actions.push(BuildAction::CreatePruneJob(Box::new(launch)));
}

/// The reference a build pushed: recorded since the build started; for
/// records older than that, the current output with the build's suffix.
fn record_image(view: &BuildView, record: &BuildRecord) -> String {
    record.image.clone().unwrap_or_else(|| format!("{}:{}", view.spec.output, record.suffix))
}

fn trigger_message(trigger: &BuildTrigger) -> String {
    match trigger {
        BuildTrigger::First => "first build".into(),
        BuildTrigger::SpecChanged { from, to } => format!("spec changed (generation {from} -> {to})"),
        BuildTrigger::Requested(v) => format!("rebuild requested ({v})"),
    }
}

/// Jobs the status does not list (its write was lost, or the cached object
/// predates it): take them over, with the rebuild request they answered.
/// Only a Job newer than the newest build can be one whose write was lost:
/// older ones belong to builds that left the history (`keepLast`).
fn adopt(status: &mut ImageBuildStatus, jobs: &[BuildJob]) {
    // creationTimestamp has second resolution; start times do not.
    let newest = status
        .builds
        .last()
        .and_then(|b| b.start_time)
        .and_then(|t| t.checked_sub_signed(chrono::TimeDelta::seconds(1)));
    let mut unknown: Vec<&BuildJob> = jobs
        .iter()
        .filter(|j| !j.prune && status.builds.iter().all(|b| b.job_name != j.outcome.name))
        .filter(|j| newest.is_none_or(|newest| j.outcome.created.is_some_and(|c| c >= newest)))
        .collect();
    unknown.sort_by_key(|j| j.outcome.created);
    for job in unknown {
        status.builds.push(BuildRecord {
            suffix: job.suffix.clone(),
            job_name: job.outcome.name.clone(),
            phase: "Building".into(),
            generation: Some(job.generation),
            start_time: job.outcome.created,
            image: job.image.clone(),
            ..Default::default()
        });
        if job.rebuild_request.is_some() {
            status.handled_rebuild = job.rebuild_request.clone();
        }
    }
}

fn integrate(
    record: &mut BuildRecord,
    job: Option<&BuildJob>,
    timeout: Option<Duration>,
    now: DateTime<Utc>,
    actions: &mut Vec<BuildAction>,
    wake: &mut Vec<DateTime<Utc>>,
) {
    let fail = |record: &mut BuildRecord, why: String, at: Option<DateTime<Utc>>| {
        record.phase = "Failed".into();
        record.message = Some(truncate(&why, MAX_MESSAGE_BYTES));
        record.completion_time = Some(at.unwrap_or(now));
    };
    let Some(job) = job else {
        return fail(record, format!("Job {} disappeared before it finished", record.job_name), None);
    };
    match job.outcome.state {
        JobState::Active => {
            let Some(timeout) = timeout else { return };
            let started = job.outcome.created.unwrap_or(now);
            let deadline = later(started, timeout.saturating_add(TIMEOUT_GRACE));
            if now >= deadline {
                actions.push(BuildAction::DeleteJob { name: job.outcome.name.clone() });
                let why =
                    format!("build did not finish within {} (still Pending or running)", format_duration(timeout));
                fail(record, why, None);
            } else {
                wake.push(deadline);
            }
        }
        JobState::Failed => {
            let why = job.outcome.message.clone().unwrap_or_else(|| format!("Job {} failed", job.outcome.name));
            fail(record, why, job.outcome.finished)
        }
        JobState::Succeeded => {
            let declared: Vec<String> = BUILD_OUTPUTS.iter().map(|s| s.to_string()).collect();
            match parse_outputs(job.outcome.outputs.as_deref().unwrap_or(""), &declared) {
                Err(e) => fail(record, format!("bad outputs: {e}"), job.outcome.finished),
                Ok(outputs) => match outputs.get("digest") {
                    Some(d) if is_digest(d) => {
                        record.phase = "Ready".into();
                        record.digest = Some(d.clone());
                        record.message = None;
                        record.completion_time = Some(job.outcome.finished.unwrap_or(now));
                    }
                    Some(d) => fail(
                        record,
                        format!("the builder reported digest {d:?}, not sha256:<64 hex>"),
                        job.outcome.finished,
                    ),
                    None => fail(
                        record,
                        "the builder reported no digest (append digest=sha256:... to $GANTRY_OUTPUTS)".into(),
                        job.outcome.finished,
                    ),
                },
            }
        }
    }
}

/// Phase, conditions and lifecycle from the build history.
fn summarize(view: &BuildView, status: &mut ImageBuildStatus, now: DateTime<Utc>) {
    let generation = Some(view.generation);
    let last = status.builds.last().cloned();
    let phase = match last.as_ref().map(|b| b.phase.as_str()) {
        None => BuildPhase::Pending,
        Some("Building") => BuildPhase::Building,
        Some("Ready") => BuildPhase::Ready,
        _ => BuildPhase::Failed,
    };
    status.phase = Some(phase);
    let conditions = &mut status.conditions;
    match (&status.latest_image, &last) {
        (Some(image), Some(b)) if b.phase == "Failed" => {
            let m = format!("{image} is usable; the latest build failed: {}", b.message.clone().unwrap_or_default());
            set_condition(conditions, "Ready", ConditionStatus::True, "LatestBuildFailed", &m, generation, now)
        }
        (Some(image), _) => set_condition(conditions, "Ready", ConditionStatus::True, "Built", image, generation, now),
        (None, Some(b)) if b.phase == "Failed" => set_condition(
            conditions,
            "Ready",
            ConditionStatus::False,
            "BuildFailed",
            b.message.as_deref().unwrap_or(""),
            generation,
            now,
        ),
        (None, _) => set_condition(
            conditions,
            "Ready",
            ConditionStatus::False,
            "NotBuilt",
            "no build has succeeded yet",
            generation,
            now,
        ),
    }
    match &last {
        Some(b) if b.phase == "Building" => {
            let m = format!("building {} ({})", record_image(view, b), b.message.clone().unwrap_or_default());
            set_condition(conditions, "Building", ConditionStatus::True, "Building", &m, generation, now)
        }
        _ => set_condition(conditions, "Building", ConditionStatus::False, "Idle", "no build running", generation, now),
    }
}

fn finish(
    view: &BuildView,
    status: ImageBuildStatus,
    actions: Vec<BuildAction>,
    now: DateTime<Utc>,
    wake: Vec<DateTime<Utc>>,
) -> BuildPlan {
    let mut notes = Vec::new();
    let before = view.status;
    for record in &status.builds {
        let old = before.builds.iter().find(|b| b.job_name == record.job_name);
        if old.is_some_and(|o| o.phase == record.phase) {
            continue;
        }
        let (warning, reason) = match record.phase.as_str() {
            "Building" => (false, "BuildStarted"),
            "Ready" => (false, "BuildSucceeded"),
            _ => (true, "BuildFailed"),
        };
        let mut message = record_image(view, record);
        if let Some(m) = &record.message {
            message.push_str(": ");
            message.push_str(m);
        }
        notes.push(Note { warning, reason: reason.into(), message, stage: None, job: Some(record.job_name.clone()) });
    }
    if before.phase != Some(BuildPhase::Failed) && status.phase == Some(BuildPhase::Failed) && status.builds.is_empty()
    {
        let message =
            status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.message.clone()).unwrap_or_default();
        notes.push(Note { warning: true, reason: "InvalidSpec".into(), message, stage: None, job: None });
    }
    let old_prune = before.prune.as_ref().map(|p| (&p.job_name, &p.phase));
    if let Some(prune) = status.prune.as_ref().filter(|p| old_prune != Some((&p.job_name, &p.phase))) {
        let (warning, reason, what) = match prune.phase.as_str() {
            "Running" => (false, "PruneStarted", "deleting"),
            "Succeeded" => (false, "PruneSucceeded", "deleted"),
            _ => (true, "PruneFailed", "could not delete"),
        };
        let mut message = format!("{what} {}", prune.image);
        if let Some(m) = &prune.message {
            message.push_str(": ");
            message.push_str(m);
        }
        notes.push(Note { warning, reason: reason.into(), message, stage: None, job: Some(prune.job_name.clone()) });
    }
    if before.lifecycle != status.lifecycle {
        if let (Some(l), Some(image)) = (status.lifecycle, status.latest_image.as_deref()) {
            let retention = &view.spec.retention;
            let message = match l {
                Lifecycle::Used => format!("{image} is in use"),
                Lifecycle::Obsolete => format!(
                    "{image} was not used for {} (retention.obsoleteAfter); last used {}",
                    retention.obsolete_after.as_deref().unwrap_or("?"),
                    status.last_used.map_or("never (counted from its build)".to_string(), |t| t.to_rfc3339()),
                ),
                Lifecycle::Pruned => format!("{image} was deleted from its registry"),
                Lifecycle::Permanent => format!("{image} is kept forever (retention.permanent)"),
            };
            notes.push(Note { warning: false, reason: format!("{l:?}"), message, stage: None, job: None });
        }
    }
    for action in &actions {
        if let BuildAction::CreatePruneJob(prune) = action {
            if status.prune.as_ref().is_none_or(|p| p.job_name != prune.job_name) {
                let keep = view.spec.retention.keep_last.unwrap_or(DEFAULT_KEEP_LAST);
                notes.push(Note {
                    warning: false,
                    reason: "PruneStarted".into(),
                    message: format!(
                        "deleting {}: older than the last {keep} builds (retention.keepLast)",
                        prune.image
                    ),
                    stage: None,
                    job: Some(prune.job_name.clone()),
                });
            }
        }
    }
    let requeue_after =
        wake.iter().min().map(|at| (*at - now).to_std().unwrap_or_default().max(Duration::from_millis(200)));
    BuildPlan { status, actions, notes, requeue_after }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::ContainerRun;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn spec() -> ImageBuildSpec {
        ImageBuildSpec {
            builder: ContainerRun { image: Some("builder:1".into()), ..Default::default() },
            output: "10.88.0.1:5000/fedora-cache".into(),
            suffix_prefix: "c".into(),
            ..Default::default()
        }
    }

    /// A spec keeping the last `n` builds, deleting older images when `pruner`.
    fn keeping(n: u32, pruner: bool) -> ImageBuildSpec {
        let mut s = spec();
        s.retention.keep_last = Some(n);
        if pruner {
            s.retention.pruner = Some(ContainerRun { image: Some("pruner:1".into()), ..Default::default() });
        }
        s
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A tiny simulated cluster for builds.
    struct Sim {
        spec: ImageBuildSpec,
        generation: i64,
        status: ImageBuildStatus,
        jobs: Vec<BuildJob>,
        rebuild: Option<String>,
        now: DateTime<Utc>,
        created: Vec<String>,
        notes: Vec<Note>,
    }

    impl Sim {
        fn new(spec: ImageBuildSpec) -> Self {
            Sim {
                spec,
                generation: 1,
                status: Default::default(),
                jobs: vec![],
                rebuild: None,
                now: t(0),
                created: vec![],
                notes: vec![],
            }
        }

        fn step(&mut self) -> BuildPlan {
            let settings = Settings::default();
            let view = BuildView {
                name: "fedora",
                generation: self.generation,
                spec: &self.spec,
                status: &self.status,
                rebuild: self.rebuild.as_deref(),
                settings: &settings,
            };
            let plan = plan_build(&view, &self.jobs, self.now);
            for action in &plan.actions {
                match action {
                    BuildAction::CreateJob(l) => {
                        self.create(&l.job_name, &l.suffix, l.generation, false);
                        let job = self.jobs.last_mut().unwrap();
                        job.rebuild_request = l.rebuild_request.clone();
                        job.image = Some(l.image.clone());
                    }
                    BuildAction::CreatePruneJob(l) => self.create(&l.job_name, &l.suffix, self.generation, true),
                    BuildAction::DeleteJob { name } => self.jobs.retain(|j| &j.outcome.name != name),
                }
            }
            self.status = plan.status.clone();
            self.notes.extend(plan.notes.clone());
            plan
        }

        fn create(&mut self, name: &str, suffix: &str, generation: i64, prune: bool) {
            assert!(self.jobs.iter().all(|j| j.outcome.name != name), "{name} created twice");
            self.created.push(name.to_string());
            self.jobs.push(BuildJob {
                suffix: suffix.to_string(),
                generation,
                outcome: JobOutcome { name: name.to_string(), created: Some(self.now), ..Default::default() },
                prune,
                rebuild_request: None,
                image: None,
            });
        }

        /// A simulation whose first build has succeeded.
        fn built(spec: ImageBuildSpec) -> Self {
            let mut sim = Sim::new(spec);
            sim.step();
            sim.build_succeeds();
            sim.step();
            sim
        }

        /// The running build succeeds and reports a digest.
        fn build_succeeds(&mut self) {
            self.finish(JobState::Succeeded, &format!("digest={DIGEST}\n"));
        }

        fn finish(&mut self, state: JobState, outputs: &str) {
            let job = self
                .jobs
                .iter_mut()
                .rev()
                .find(|j| !j.prune && j.outcome.state == JobState::Active)
                .expect("a running build");
            job.outcome.state = state;
            job.outcome.finished = Some(self.now);
            job.outcome.outputs = Some(outputs.to_string());
            job.outcome.message =
                (state == JobState::Failed).then(|| "container build in pod x exited with code 2 (Error)".to_string());
        }

        fn condition(&self, type_: &str) -> (String, String) {
            let c = self.status.conditions.iter().find(|c| c.type_ == type_).unwrap();
            (c.status.clone(), c.reason.clone())
        }
    }

    #[test]
    fn the_first_build_runs_and_its_digest_lands_in_status() {
        let mut sim = Sim::new(spec());
        let plan = sim.step();
        let BuildAction::CreateJob(launch) = &plan.actions[0] else { panic!() };
        assert_eq!(launch.image, "10.88.0.1:5000/fedora-cache:c20261121t150000z");
        assert_eq!(sim.status.phase, Some(BuildPhase::Building));
        assert_eq!(sim.condition("Building"), ("True".into(), "Building".into()));
        sim.now = t(30);
        sim.build_succeeds();
        sim.step();
        assert_eq!(sim.status.phase, Some(BuildPhase::Ready));
        assert_eq!(sim.status.latest_image.as_deref(), Some("10.88.0.1:5000/fedora-cache:c20261121t150000z"));
        assert_eq!(sim.status.digest.as_deref(), Some(DIGEST));
        assert_eq!(sim.condition("Ready"), ("True".into(), "Built".into()));
        assert_eq!(sim.status.lifecycle, Some(Lifecycle::Used));
        assert!(sim.step().actions.is_empty(), "nothing more to do: no rebuild loop");
        let reasons: Vec<&str> = sim.notes.iter().map(|n| n.reason.as_str()).collect();
        assert_eq!(reasons, ["BuildStarted", "BuildSucceeded", "Used"]);
    }

    #[test]
    fn a_spec_change_rebuilds_exactly_once_and_a_failure_is_not_retried() {
        let mut sim = Sim::built(spec());
        sim.generation = 2;
        sim.now = t(60);
        sim.step();
        sim.step();
        assert_eq!(sim.created.len(), 2, "one new build for the new generation");
        sim.finish(JobState::Failed, "");
        sim.step();
        sim.now = t(120);
        sim.step();
        assert_eq!(sim.created.len(), 2, "a failed build is not retried by itself");
        assert_eq!(sim.status.phase, Some(BuildPhase::Failed));
        assert_eq!(sim.condition("Ready"), ("True".into(), "LatestBuildFailed".into()), "the old image stays usable");
        let failed = sim.status.builds.last().unwrap();
        assert!(failed.message.as_deref().unwrap().contains("container build in pod x exited with code 2"));
    }

    #[test]
    fn a_rebuild_request_is_honoured_once_per_value() {
        let mut sim = Sim::built(spec());
        sim.rebuild = Some("monday".into());
        sim.now = t(5);
        sim.step();
        sim.build_succeeds();
        sim.step();
        sim.step();
        assert_eq!(sim.created.len(), 2);
        sim.rebuild = Some("tuesday".into());
        sim.now = t(10);
        sim.step();
        assert_eq!(sim.created.len(), 3);
        assert_ne!(sim.created[1], sim.created[2], "each build has its own suffix");
    }

    #[test]
    fn a_missing_or_malformed_digest_fails_the_build() {
        for outputs in ["", "digest=latest\n", "tag=x\n"] {
            let mut sim = Sim::new(spec());
            sim.step();
            sim.finish(JobState::Succeeded, outputs);
            sim.step();
            assert_eq!(sim.status.phase, Some(BuildPhase::Failed), "{outputs:?}");
            assert_eq!(sim.condition("Ready").1, "BuildFailed");
        }
    }

    #[test]
    fn a_build_stuck_pending_past_its_timeout_fails_saying_so() {
        let mut s = spec();
        s.timeout = Some("10m".into());
        let mut sim = Sim::new(s);
        sim.step();
        sim.now = t(600 + 30);
        let plan = sim.step();
        assert!(matches!(plan.actions[0], BuildAction::DeleteJob { .. }));
        let message = sim.status.builds[0].message.clone().unwrap();
        assert!(message.contains("did not finish within 10m"), "{message}");
    }

    #[test]
    fn a_lost_status_write_adopts_the_job_instead_of_building_twice() {
        let mut sim = Sim::new(spec());
        sim.step();
        sim.status = ImageBuildStatus::default();
        sim.now = t(3);
        sim.step();
        assert_eq!(sim.created.len(), 1);
        assert_eq!(sim.status.phase, Some(BuildPhase::Building));
    }

    /// The reconciler reads the ImageBuild from a cache that can lag behind
    /// its own status write; the Jobs it lists are current. A build started
    /// for a rebuild request must not look like an unanswered request then.
    #[test]
    fn a_stale_status_after_a_requested_rebuild_does_not_build_again() {
        let mut sim = Sim::built(spec());
        let before_request = sim.status.clone();
        sim.rebuild = Some("weekly-1".into());
        sim.now = t(10);
        sim.step();
        assert_eq!(sim.created.len(), 2);
        sim.now = t(15);
        sim.build_succeeds();
        sim.status = before_request;
        sim.step();
        sim.step();
        assert_eq!(sim.created.len(), 2, "the requested build is adopted, not repeated");
        assert_eq!(sim.status.handled_rebuild.as_deref(), Some("weekly-1"));
        assert_eq!(sim.status.phase, Some(BuildPhase::Ready));
    }

    #[test]
    fn invalid_specs_start_nothing_and_name_the_field() {
        for (mutate, field) in [
            (
                Box::new(|s: &mut ImageBuildSpec| s.output = "reg/app:latest".into())
                    as Box<dyn Fn(&mut ImageBuildSpec)>,
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
            (
                Box::new(|s: &mut ImageBuildSpec| s.retention.prune_after = Some("1d".into())),
                "spec.retention.pruneAfter",
            ),
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

    #[test]
    fn history_is_capped_at_keep_last() {
        let mut sim = Sim::new(keeping(2, false));
        for i in 0..4 {
            sim.rebuild = Some(format!("r{i}"));
            sim.now = t(i * 10);
            sim.step();
            sim.build_succeeds();
            sim.step();
        }
        assert_eq!(sim.status.builds.len(), 2);
        assert_eq!(sim.created.len(), 4);
        assert_eq!(sim.jobs.len(), 2, "the Jobs of builds that left the history are deleted");
        assert_eq!(sim.status.builds[1].job_name, sim.created[3], "the newest build stays the latest");
    }

    fn retiring(permanent: bool) -> Sim {
        let mut s = spec();
        s.retention = crate::api::imagebuild::Retention {
            obsolete_after: Some("60s".into()),
            prune_after: Some("30s".into()),
            permanent,
            pruner: Some(ContainerRun { image: Some("pruner:1".into()), ..Default::default() }),
            ..Default::default()
        };
        Sim::built(s)
    }

    #[test]
    fn an_unused_image_goes_obsolete_then_one_prune_job_makes_it_pruned() {
        let mut sim = retiring(false);
        assert_eq!(sim.status.lifecycle, Some(Lifecycle::Used));
        assert_eq!(sim.step().requeue_after, Some(Duration::from_secs(60)), "wakes when it turns obsolete");
        sim.now = t(60);
        sim.step();
        assert_eq!(sim.status.lifecycle, Some(Lifecycle::Obsolete));
        assert_eq!(sim.created.len(), 1, "no prune before pruneAfter");
        sim.now = t(90);
        let plan = sim.step();
        let BuildAction::CreatePruneJob(prune) = &plan.actions[0] else { panic!("{:?}", plan.actions) };
        assert_eq!(prune.image, "10.88.0.1:5000/fedora-cache:c20261121t150000z");
        assert_eq!(prune.digest.as_deref(), Some(DIGEST));
        sim.now = t(95);
        sim.step();
        assert_eq!(sim.created.len(), 2, "one prune Job");
        let job = sim.jobs.iter_mut().find(|j| j.prune).unwrap();
        job.outcome.state = JobState::Succeeded;
        sim.step();
        assert_eq!(sim.status.lifecycle, Some(Lifecycle::Pruned));
        assert_eq!(sim.condition("Ready"), ("False".into(), "Pruned".into()));
        sim.now = t(500);
        assert!(sim.step().actions.is_empty());
        let reasons: Vec<&str> = sim.notes.iter().map(|n| n.reason.as_str()).collect();
        assert_eq!(
            reasons,
            ["BuildStarted", "BuildSucceeded", "Used", "Obsolete", "PruneStarted", "PruneSucceeded", "Pruned"]
        );
    }

    #[test]
    fn use_resets_the_clock_and_a_failed_prune_is_reported_not_retried() {
        let mut sim = retiring(false);
        sim.now = t(50);
        sim.status.last_used = Some(t(50));
        sim.now = t(100);
        sim.step();
        assert_eq!(sim.status.lifecycle, Some(Lifecycle::Used), "used at 50s: obsolete only at 110s");
        sim.now = t(140);
        sim.step();
        assert_eq!(sim.created.len(), 2, "prune due at 140s");
        let job = sim.jobs.iter_mut().find(|j| j.prune).unwrap();
        job.outcome.state = JobState::Failed;
        job.outcome.message = Some("container prune in pod p exited with code 1 (Error)".into());
        sim.step();
        sim.now = t(900);
        sim.step();
        assert_eq!(sim.created.len(), 2, "not retried");
        assert_eq!(sim.status.lifecycle, Some(Lifecycle::Obsolete));
        let prune = sim.status.prune.clone().unwrap();
        assert_eq!(prune.phase, "Failed");
        assert!(prune.message.unwrap().contains("pod p"));
        assert!(sim.notes.iter().any(|n| n.reason == "PruneFailed" && n.warning));
    }

    #[test]
    fn a_permanent_image_is_never_obsoleted_or_pruned() {
        let mut sim = retiring(true);
        sim.now = t(86_400 * 365);
        sim.step();
        assert_eq!(sim.status.lifecycle, Some(Lifecycle::Permanent));
        assert_eq!(sim.created.len(), 1);
    }

    #[test]
    fn a_lost_status_write_adopts_the_prune_job() {
        let mut sim = retiring(false);
        sim.now = t(90);
        sim.step();
        sim.status.prune = None;
        sim.now = t(91);
        sim.step();
        assert_eq!(sim.created.len(), 2, "the existing prune Job is adopted");
        assert_eq!(sim.status.prune.as_ref().unwrap().phase, "Running");
    }

    #[test]
    fn builds_beyond_keep_last_have_their_images_pruned_but_never_the_latest() {
        let mut sim = Sim::new(keeping(2, true));
        let mut suffixes = Vec::new();
        for i in 0..3 {
            sim.rebuild = Some(format!("r{i}"));
            sim.now = t(i * 10);
            sim.step();
            sim.build_succeeds();
            sim.step();
            suffixes.push(sim.status.builds.last().unwrap().suffix.clone());
        }
        let pruned: Vec<&str> = sim.jobs.iter().filter(|j| j.prune).map(|j| j.suffix.as_str()).collect();
        assert_eq!(pruned, [suffixes[0].as_str()], "only the build that left the history");
        assert!(sim.notes.iter().any(|n| n.reason == "PruneStarted" && n.message.contains("retention.keepLast")));
        assert!(sim.status.prune.is_none(), "the latest image is untouched");
        assert_eq!(sim.status.lifecycle, Some(Lifecycle::Used));
    }

    #[test]
    fn after_an_output_change_old_builds_keep_and_prune_their_own_reference() {
        let mut sim = Sim::built(keeping(1, true));
        let first = sim.status.latest_image.clone().unwrap();
        assert!(first.starts_with("10.88.0.1:5000/fedora-cache:"), "{first}");

        sim.spec.output = "10.88.0.1:5000/fedora-next".into();
        sim.generation = 2;
        sim.now = t(10);
        sim.step();
        assert_eq!(sim.status.builds.len(), 2, "the build of the image in use stays while the new one runs");
        assert_eq!(sim.status.builds[0].image.as_deref(), Some(first.as_str()));
        assert_eq!(sim.status.latest_image.as_deref(), Some(first.as_str()));

        sim.now = t(20);
        sim.build_succeeds();
        let plan = sim.step();
        let latest = sim.status.latest_image.clone().unwrap();
        assert!(latest.starts_with("10.88.0.1:5000/fedora-next:"), "{latest}");
        let pruned: Vec<&str> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                BuildAction::CreatePruneJob(p) => Some(p.image.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(pruned, [first.as_str()], "the old image is deleted under the name it was pushed as");
    }

    #[test]
    fn a_job_of_a_build_that_left_the_history_is_not_adopted_again() {
        let mut sim = Sim::built(keeping(1, false));
        let old = sim.jobs[0].clone();
        sim.rebuild = Some("again".into());
        sim.now = t(60);
        sim.step();
        sim.build_succeeds();
        sim.step();
        let latest = sim.status.latest_image.clone();
        // Its deletion has not gone through yet.
        sim.jobs.insert(0, old);
        sim.now = t(61);
        sim.step();
        assert_eq!(sim.status.builds.len(), 1);
        assert_eq!(sim.status.latest_image, latest, "the old build did not come back as the latest");
    }

    #[test]
    fn the_build_of_the_image_in_use_stays_until_a_newer_one_is_ready() {
        let mut sim = Sim::built(keeping(1, true));
        let first = sim.status.latest_image.clone().unwrap();
        sim.rebuild = Some("2".into());
        sim.now = t(10);
        sim.step();
        assert_eq!(sim.status.builds.len(), 2, "the running build and the one of the image in use");
        sim.finish(JobState::Failed, "");
        sim.step();
        assert_eq!(sim.status.builds.len(), 2, "a failed rebuild does not push out the image in use");
        assert!(sim.jobs.iter().all(|j| !j.prune));
        sim.rebuild = Some("3".into());
        sim.now = t(20);
        sim.step();
        sim.build_succeeds();
        sim.step();
        assert_eq!(sim.status.builds.len(), 1);
        let pruned: Vec<String> =
            sim.jobs.iter().filter(|j| j.prune).map(|j| format!("10.88.0.1:5000/fedora-cache:{}", j.suffix)).collect();
        assert_eq!(pruned, [first], "the old image goes once the new one is ready");
    }
}

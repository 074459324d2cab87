//! The PipelineRun planner: the run's spec, its last status and what the
//! cluster holds go in; the next status, the actions to apply and the
//! Events to publish come out. Pure and deterministic for a given `now`.
//!
//! One pass: validate → handle a rerun request → adopt Jobs the status does
//! not know yet → integrate finished attempts → stop what must stop
//! (cancel, supersede, timeout, fail-fast) → start what may start → derive
//! the run's phase, condition and summary.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::dag::Graph;
use super::launch::{launch, stage_timeout, StageLaunch};
use super::references::Referenced;
use super::stage_kind::{stage_kind, StageKind};
use super::tap;
use super::validate::{validate, SpecError};
use super::view::{group_order, JobObservation, Observed, View};
use crate::api::pipelinerun::{
    AttemptStatus, ConcurrencyPolicy, PipelineRunSpec, PipelineRunStatus, ResultsFormat, RunPhase, SkipReason, Stage,
    StagePhase, StageStatus,
};
use crate::engine::conditions::{set_condition, ConditionStatus, MAX_MESSAGE_BYTES};
use crate::engine::duration::{later, later_by_secs, parse_duration};
use crate::engine::job::JobState;
use crate::engine::naming::workspace_claim_name;
use crate::engine::outputs::{is_skip, parse_outputs};
use crate::engine::refusal::{refusal_message, Refusal};
use crate::engine::text::truncate;

/// The condition `kubectl wait --for=condition=Succeeded` waits for.
pub const CONDITION_SUCCEEDED: &str = "Succeeded";
/// Finished attempts kept per stage.
pub const MAX_HISTORY: usize = 10;
/// Seconds before the first retry when neither stage nor defaults say.
pub const DEFAULT_RETRY_DELAY_SECS: u32 = 10;
/// Longest wait between retries.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);
/// How often a queued run looks again whether it may start.
pub const QUEUE_POLL: Duration = Duration::from_secs(3);
pub use crate::engine::job::TIMEOUT_GRACE;
pub use crate::engine::note::Note;
/// How often a service stage that is not ready yet looks at its pods.
pub const SERVICE_POLL: Duration = Duration::from_secs(2);
/// How often a stage waiting for an ImageBuild or KataInstall looks again
/// (changes to those objects wake it sooner).
pub const REFERENCE_POLL: Duration = Duration::from_secs(10);

/// Something the controller must do in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the Job for one attempt.
    CreateJob(Box<StageLaunch>),
    /// Delete a Job (and its pods) that must stop.
    DeleteJob { name: String },
    /// Create the run's workspace claim if it does not exist.
    EnsureWorkspace { claim: String, size: String, storage_class: Option<String> },
    /// Mark an older run of the group as superseded by this one.
    Supersede { run: String },
    /// Remove the `gantry.dev/rerun` annotation (it has been handled). The
    /// controller does it only once the status recording the rerun is
    /// written, so a failed write never loses the request.
    ClearRerunAnnotation,
    /// Delete the run itself (its TTL after finishing has passed).
    DeleteRun,
    /// Record that a stage used this ImageBuild's image (its `lastUsed`).
    MarkImageUsed { build: String },
}

/// The planner's answer.
pub type Plan = crate::engine::plan::Plan<PipelineRunStatus, Action>;

/// Why the whole run is being stopped.
#[derive(Debug, Clone, PartialEq)]
enum Stop {
    Cancelled(String),
    TimedOut(String),
    /// The API server would not create the run's workspace claim.
    WorkspaceRefused(String),
}

/// Failed Jobs of the current attempt of stages not yet recorded as finished
/// whose pods are gone (the Job controller deletes them at the deadline), so
/// the failure cannot name the container; the controller adds the pods'
/// last Warning Event to their message before calling [`plan`].
pub fn failures_to_explain(run: &View, observed: &Observed) -> Vec<String> {
    unfinished_current_attempts(run, observed)
        .filter_map(|(status, current)| observed.job(&status.name, current))
        .filter(|j| j.outcome.state == JobState::Failed && j.outcome.pod.is_none())
        .map(|j| j.outcome.name.clone())
        .collect()
}

/// Job names of finished attempts whose logs the planner needs (TAP stages
/// whose current attempt just finished); the controller fetches them into
/// `Observed::logs` before calling [`plan`].
pub fn logs_wanted(run: &View, observed: &Observed) -> Vec<String> {
    let tap = |name: &str| run.spec.stages.iter().any(|s| s.name == name && s.results == Some(ResultsFormat::Tap));
    let mut wanted = Vec::new();
    for (status, current) in unfinished_current_attempts(run, observed).filter(|(s, _)| tap(&s.name)) {
        let finished = observed.job(&status.name, current).is_some_and(|j| j.outcome.state != JobState::Active);
        if finished {
            let first = status.first_attempt.max(1);
            wanted.extend(
                (first..=current).filter_map(|a| observed.job(&status.name, a)).map(|j| j.outcome.name.clone()),
            );
        }
    }
    wanted
}

/// The stages the status has not recorded as finished, each with its current
/// attempt: the newest with a Job, or the one recorded if that is newer.
fn unfinished_current_attempts<'a>(
    run: &'a View,
    observed: &'a Observed,
) -> impl Iterator<Item = (&'a StageStatus, u32)> + 'a {
    let unfinished = run.status.stages.iter().filter(|s| !s.phase.is_finished());
    unfinished.map(|s| (s, observed.latest_attempt(&s.name).unwrap_or(0).max(s.attempt)))
}

/// Plans one reconcile of `run`.
pub fn plan(run: &View, observed: &Observed, now: DateTime<Utc>) -> Plan {
    let mut planner = Planner {
        spec: run.spec,
        run,
        observed,
        now,
        status: run.status.clone(),
        actions: Vec::new(),
        notes: Vec::new(),
        wake_at: Vec::new(),
    };
    planner.status.observed_generation = run.generation;
    match validate(run.spec, run.settings.nested_virt.is_some(), &run.settings.notify) {
        Err(e) => planner.invalid(e),
        Ok(graph) => planner.reconcile(&graph),
    }
    planner.finish()
}

struct Planner<'a> {
    spec: &'a PipelineRunSpec,
    run: &'a View<'a>,
    observed: &'a Observed,
    now: DateTime<Utc>,
    status: PipelineRunStatus,
    actions: Vec<Action>,
    notes: Vec<Note>,
    wake_at: Vec<DateTime<Utc>>,
}

impl Planner<'_> {
    fn note(&mut self, warning: bool, reason: &str, message: impl Into<String>) {
        self.notes.push(Note {
            warning,
            reason: reason.into(),
            message: truncate(&message.into(), 1000),
            stage: None,
            job: None,
        });
    }

    fn invalid(&mut self, e: SpecError) {
        let finished = self.status.phase.is_some_and(RunPhase::is_finished);
        let invalid_before =
            self.status.conditions.iter().any(|c| c.type_ == CONDITION_SUCCEEDED && c.reason == "InvalidSpec");
        if finished && !invalid_before {
            // It finished before its spec became invalid (an edit, or a
            // stricter operator after an upgrade): the result it had stands.
            if let Some(stage) = self.run.rerun {
                self.note(true, "RerunIgnored", format!("rerun of \"{stage}\" ignored: {e}"));
            }
            self.clear_rerun_request();
            return self.expire_after_ttl();
        }
        if self.status.phase != Some(RunPhase::Failed) {
            self.note(true, "InvalidSpec", e.to_string());
        }
        self.status.phase = Some(RunPhase::Failed);
        self.status.message = Some(truncate(&e.to_string(), MAX_MESSAGE_BYTES));
        self.status.completion_time.get_or_insert(self.now);
        self.set_succeeded(ConditionStatus::False, "InvalidSpec", &e.to_string());
        self.clear_rerun_request();
        self.expire_after_ttl();
    }

    fn reconcile(&mut self, graph: &Graph) {
        self.align_stage_entries();
        let finished = self.status.phase.is_some_and(RunPhase::is_finished);
        if let Some(stage) = self.run.rerun {
            if finished {
                self.apply_rerun(graph, stage);
            } else {
                self.note(true, "RerunIgnored", format!("rerun of \"{stage}\" ignored: the run has not finished"));
            }
            self.actions.push(Action::ClearRerunAnnotation);
        } else if finished {
            self.expire_after_ttl();
            return;
        }
        let claim = workspace_claim_name(self.run.name, self.run.uid);
        if let Some(ws) = self.spec.workspace.as_ref().filter(|_| !self.observed.refused.contains_key(&claim)) {
            self.actions.push(Action::EnsureWorkspace {
                claim,
                size: ws.size.clone(),
                storage_class: ws.storage_class_name.clone(),
            });
        }
        self.adopt_jobs();
        self.integrate_attempts();
        let queued = self.apply_concurrency();
        if let Some(stop) = self.run_stop() {
            self.stop_all(&stop);
            self.conclude(Some(stop));
            return;
        }
        self.fail_fast();
        self.advance(graph, queued);
        self.tear_down_services();
        self.conclude(None);
        if queued && !self.status.phase.is_some_and(RunPhase::is_finished) {
            self.status.phase = Some(RunPhase::Queued);
            self.status.message = Some("waiting for older runs of the concurrency group".into());
            self.set_succeeded(ConditionStatus::Unknown, "Queued", "waiting for older runs of the concurrency group");
            self.wake_at.push(later(self.now, QUEUE_POLL));
        }
    }

    /// One status entry per spec stage, in spec order, keeping known ones.
    fn align_stage_entries(&mut self) {
        let mut previous: BTreeMap<String, StageStatus> =
            std::mem::take(&mut self.status.stages).into_iter().map(|s| (s.name.clone(), s)).collect();
        self.status.stages = self
            .spec
            .stages
            .iter()
            .map(|s| {
                previous.remove(&s.name).unwrap_or_else(|| StageStatus { name: s.name.clone(), ..Default::default() })
            })
            .collect();
    }

    fn apply_rerun(&mut self, graph: &Graph, stage: &str) {
        let Some(index) = self.spec.stages.iter().position(|s| s.name == stage) else {
            self.note(true, "RerunIgnored", format!("rerun of \"{stage}\" ignored: no such stage"));
            return;
        };
        let mut reset: Vec<usize> = vec![index];
        reset.extend(graph.descendants(index));
        reset.extend(self.spec.stages.iter().enumerate().filter(|(_, s)| s.finally).map(|(i, _)| i));
        reset.sort_unstable();
        reset.dedup();
        let names: Vec<&str> = reset.iter().map(|&i| self.spec.stages[i].name.as_str()).collect();
        self.note(false, "Rerun", format!("rerunning {}", names.join(", ")));
        for i in reset {
            let entry = &mut self.status.stages[i];
            *entry = StageStatus {
                name: entry.name.clone(),
                attempt: entry.attempt,
                first_attempt: entry.attempt.saturating_add(1),
                history: std::mem::take(&mut entry.history),
                message: Some("rerun requested".into()),
                ..Default::default()
            };
        }
        self.status.phase = Some(RunPhase::Running);
        self.status.completion_time = None;
    }

    /// A Job for a later attempt than the status knows means the status
    /// write after creating it was lost: take it over, never create twice.
    fn adopt_jobs(&mut self) {
        for entry in &mut self.status.stages {
            if entry.phase.is_finished() {
                continue;
            }
            if let Some(latest) = self.observed.latest_attempt(&entry.name) {
                if latest > entry.attempt {
                    entry.attempt = latest;
                    entry.first_attempt = if entry.first_attempt == 0 { latest } else { entry.first_attempt };
                    entry.job_name = self.observed.job(&entry.name, latest).map(|j| j.outcome.name.clone());
                    entry.phase = StagePhase::Running;
                    entry.retry_after = None;
                    entry.start_time.get_or_insert(self.now);
                }
            }
        }
    }

    /// Folds the outcome of each running stage's current attempt into status.
    fn integrate_attempts(&mut self) {
        let observed = self.observed;
        for i in 0..self.spec.stages.len() {
            if self.status.stages[i].phase != StagePhase::Running {
                continue;
            }
            let spec = self.spec;
            let stage = &spec.stages[i];
            let kind = stage_kind(stage);
            if kind.is_reference() {
                self.integrate_reference(i);
                continue;
            }
            let attempt = self.status.stages[i].attempt;
            match observed.job(&stage.name, attempt) {
                None => {
                    let job = self.status.stages[i].job_name.clone().unwrap_or_default();
                    match observed.refused.get(&job) {
                        Some(refusal) => self.refused(i, &job, refusal),
                        None => self.attempt_failed(i, None, format!("Job {job} disappeared before it finished")),
                    }
                }
                Some(job) => match job.outcome.state {
                    JobState::Active => {
                        self.check_stage_deadline(i, job);
                        if let StageKind::Service { replicas } = kind {
                            self.integrate_service(i, job, replicas);
                        }
                    }
                    JobState::Succeeded => self.attempt_succeeded(i, job),
                    JobState::Failed => {
                        let why =
                            job.outcome.message.clone().unwrap_or_else(|| format!("Job {} failed", job.outcome.name));
                        let tap_rescue = self.tap_outcome(i, attempt);
                        match tap_rescue {
                            Some((counts, true, _)) => {
                                // Every test passed in some attempt: the stage passes
                                // even though this attempt's Job failed.
                                self.status.stages[i].tests = Some(counts);
                                self.stage_done(i, Some(job), StagePhase::Succeeded, None, None);
                            }
                            Some((counts, false, _)) => {
                                self.status.stages[i].tests = Some(counts);
                                self.attempt_failed(i, Some(job), why);
                            }
                            None => self.attempt_failed(i, Some(job), why),
                        }
                    }
                },
            }
        }
    }

    /// A service stage is ready once all its pods are: its addresses become
    /// its output and the stages that need it may start.
    fn integrate_service(&mut self, i: usize, job: &JobObservation, replicas: u32) {
        let entry = &mut self.status.stages[i];
        if entry.phase != StagePhase::Running || entry.ready {
            return;
        }
        if job.outcome.ready_addresses.len() < replicas as usize {
            // Pod readiness changes no Job field on older clusters (`status.ready`
            // is 1.23+), so nothing wakes the run: look again soon.
            self.wake_at.push(later(self.now, SERVICE_POLL));
            return;
        }
        entry.ready = true;
        entry.outputs = BTreeMap::from([("addresses".to_string(), job.outcome.ready_addresses.join(","))]);
        let message = format!("{replicas}/{replicas} pods ready: {}", job.outcome.ready_addresses.join(", "));
        entry.message = Some(truncate(&message, MAX_MESSAGE_BYTES));
        let (stage, job_name) = (entry.name.clone(), job.outcome.name.clone());
        self.notes.push(Note {
            warning: false,
            reason: "ServiceReady".into(),
            message: truncate(&format!("stage {stage}: {message}"), 1000),
            stage: Some(stage),
            job: Some(job_name),
        });
    }

    /// Tears down every ready service whose dependents have all finished
    /// (with none, once every other stage has): its Job is deleted and the
    /// stage succeeds.
    fn tear_down_services(&mut self) {
        let spec = self.spec;
        for (i, stage) in spec.stages.iter().enumerate() {
            let entry = &self.status.stages[i];
            if !matches!(stage_kind(stage), StageKind::Service { .. })
                || entry.phase != StagePhase::Running
                || !entry.ready
            {
                continue;
            }
            let mut dependents =
                spec.stages.iter().enumerate().filter(|(_, s)| s.needs.contains(&stage.name)).peekable();
            let done = if dependents.peek().is_some() {
                dependents.all(|(j, _)| self.status.stages[j].phase.is_finished())
            } else {
                spec.stages.iter().enumerate().all(|(j, s)| {
                    j == i || s.finally || s.service.is_some() || self.status.stages[j].phase.is_finished()
                })
            };
            if !done {
                continue;
            }
            let job = self.observed.job(&stage.name, entry.attempt).cloned();
            if let Some(name) = entry.job_name.clone() {
                self.actions.push(Action::DeleteJob { name });
            }
            let why = "torn down: the stages that need it have finished";
            self.record_attempt(i, job.as_ref(), StagePhase::Succeeded, Some(why));
            self.stage_done(i, None, StagePhase::Succeeded, None, Some(why));
        }
    }

    /// Starts an `imageBuild` or `kataInstall` stage: it runs nothing, it
    /// waits for the object.
    fn start_reference(&mut self, i: usize) {
        let entry = &mut self.status.stages[i];
        entry.attempt += 1;
        if entry.first_attempt == 0 {
            entry.first_attempt = entry.attempt;
        }
        entry.job_name = None;
        entry.phase = StagePhase::Running;
        entry.start_time.get_or_insert(self.now);
        entry.completion_time = None;
        self.status.start_time.get_or_insert(self.now);
        self.integrate_reference(i);
    }

    /// Folds the state of the object a reference stage waits for into it.
    fn integrate_reference(&mut self, i: usize) {
        let stage = &self.spec.stages[i];
        let (kind, name, state) = match stage_kind(stage) {
            StageKind::ImageBuild { name } => ("ImageBuild", name, self.observed.image_builds.get(name)),
            StageKind::KataInstall { name } => ("KataInstall", name, self.observed.kata_installs.get(name)),
            _ => return,
        };
        match state {
            Some(Referenced::Ready(outputs)) => {
                self.status.stages[i].outputs = outputs.clone();
                if matches!(stage_kind(stage), StageKind::ImageBuild { .. }) {
                    self.actions.push(Action::MarkImageUsed { build: name.to_string() });
                }
                self.stage_done(i, None, StagePhase::Succeeded, None, None);
            }
            Some(Referenced::Failed(why)) => {
                let why = why.clone();
                self.stage_done(i, None, StagePhase::Failed, None, Some(&why));
            }
            waiting => {
                let why = match waiting {
                    Some(Referenced::Waiting(why)) => why.clone(),
                    _ => format!("waiting for {kind} {name}, which does not exist"),
                };
                let timeout = stage_timeout(self.spec, stage, self.run.settings);
                let started = self.status.stages[i].start_time.unwrap_or(self.now);
                let deadline = timeout.map(|t| later(started, t));
                if let (Some(t), Some(deadline)) = (timeout, deadline) {
                    if self.now >= deadline {
                        let why = format!("timed out after {}: {why}", crate::engine::duration::format_duration(t));
                        return self.stage_done(i, None, StagePhase::Failed, None, Some(&why));
                    }
                    self.wake_at.push(deadline);
                }
                self.status.stages[i].message = Some(truncate(&why, MAX_MESSAGE_BYTES));
                self.wake_at.push(later(self.now, REFERENCE_POLL));
            }
        }
    }

    /// The operator's own clock: covers time a pod spends Pending, which
    /// `activeDeadlineSeconds` does not count before the Job starts.
    fn check_stage_deadline(&mut self, i: usize, job: &JobObservation) {
        let Some(timeout) = stage_timeout(self.spec, &self.spec.stages[i], self.run.settings) else {
            return;
        };
        let started = job.outcome.created.unwrap_or(self.now);
        let deadline = later(started, timeout.saturating_add(TIMEOUT_GRACE));
        if self.now >= deadline {
            self.actions.push(Action::DeleteJob { name: job.outcome.name.clone() });
            let t = crate::engine::duration::format_duration(timeout);
            self.attempt_failed(i, Some(job), format!("timed out after {t} (Job {})", job.outcome.name));
        } else {
            self.wake_at.push(deadline);
        }
    }

    /// TAP results merged over the current try: (counts, all passed, problems).
    fn tap_outcome(&self, i: usize, attempt: u32) -> Option<(crate::api::common::TestCounts, bool, Vec<String>)> {
        let stage = &self.spec.stages[i];
        if stage.results != Some(ResultsFormat::Tap) {
            return None;
        }
        let first = self.status.stages[i].first_attempt.max(1);
        let jobs: Vec<&str> = (first..=attempt)
            .filter_map(|a| self.observed.job(&stage.name, a))
            .map(|j| j.outcome.name.as_str())
            .collect();
        let reports: Vec<tap::TapReport> =
            jobs.iter().map(|j| tap::parse(self.observed.logs.get(*j).map(String::as_str).unwrap_or(""))).collect();
        let mut merged = tap::merge(&reports);
        if !merged.all_passed && jobs.iter().any(|j| self.observed.logs_cut.contains(*j)) {
            let budget = super::log_tail::MAX_LOG_BYTES / (1024 * 1024);
            merged
                .problems
                .push(format!("the log is longer than {budget} MiB: TAP was read from its last {budget} MiB"));
        }
        Some((merged.counts, merged.all_passed, merged.problems))
    }

    fn attempt_succeeded(&mut self, i: usize, job: &JobObservation) {
        let stage = &self.spec.stages[i];
        if job.outcome.outputs_lost && !stage.outputs.is_empty() {
            let why = format!("Job {} succeeded, but its pod is gone with the outputs it wrote", job.outcome.name);
            return self.attempt_failed(i, Some(job), why);
        }
        let outputs = match parse_outputs(job.outcome.outputs.as_deref().unwrap_or(""), &stage.outputs) {
            Ok(o) => o,
            Err(e) => return self.attempt_failed(i, Some(job), format!("bad outputs: {e}")),
        };
        if let Some((counts, all_passed, problems)) = self.tap_outcome(i, job.attempt) {
            let failed = counts.failed;
            self.status.stages[i].tests = Some(counts);
            if !all_passed {
                let mut why = problems;
                if failed > 0 {
                    why.insert(0, format!("{failed} test(s) failed"));
                }
                return self.attempt_failed(i, Some(job), why.join("; "));
            }
        }
        let skip = is_skip(&outputs);
        self.status.stages[i].outputs = outputs;
        if skip {
            self.stage_done(
                i,
                Some(job),
                StagePhase::Skipped,
                Some(SkipReason::Requested),
                Some("stage reported skip"),
            );
        } else {
            self.stage_done(i, Some(job), StagePhase::Succeeded, None, None);
        }
    }

    fn record_attempt(&mut self, i: usize, job: Option<&JobObservation>, phase: StagePhase, message: Option<&str>) {
        let entry = &mut self.status.stages[i];
        let record = AttemptStatus {
            attempt: entry.attempt,
            job_name: entry.job_name.clone().unwrap_or_default(),
            phase,
            start_time: job.and_then(|j| j.outcome.created).or(entry.start_time),
            completion_time: Some(job.and_then(|j| j.outcome.finished).unwrap_or(self.now)),
            message: message.map(|m| truncate(m, 200)),
        };
        entry.history.retain(|h| h.attempt != record.attempt);
        entry.history.push(record);
        let excess = entry.history.len().saturating_sub(MAX_HISTORY);
        entry.history.drain(..excess);
    }

    fn stage_done(
        &mut self,
        i: usize,
        job: Option<&JobObservation>,
        phase: StagePhase,
        skip: Option<SkipReason>,
        message: Option<&str>,
    ) {
        if job.is_some() {
            self.record_attempt(i, job, phase, message);
        }
        let entry = &mut self.status.stages[i];
        entry.phase = phase;
        entry.skip_reason = skip;
        entry.retry_after = None;
        entry.message = message.map(|m| truncate(m, MAX_MESSAGE_BYTES));
        entry.completion_time = Some(job.and_then(|j| j.outcome.finished).unwrap_or(self.now));
    }

    /// The API server would not create the stage's Job `job`: the stage
    /// fails at once (trying the same manifest again would fare no better),
    /// and fail-fast, gating and finally treat it like any failed stage.
    fn refused(&mut self, i: usize, job: &str, refusal: &Refusal) {
        let reason = if refusal.conflict { "JobConflict" } else { "JobRefused" };
        let why = refusal_message(job, refusal);
        self.record_attempt(i, None, StagePhase::Failed, Some(&why));
        self.stage_done(i, None, StagePhase::Failed, None, Some(&why));
        let stage = self.spec.stages[i].name.clone();
        self.notes.push(Note {
            warning: true,
            reason: reason.into(),
            message: truncate(&format!("stage {stage}: {why}"), 1000),
            stage: Some(stage),
            job: Some(job.to_string()),
        });
    }

    fn attempt_failed(&mut self, i: usize, job: Option<&JobObservation>, why: String) {
        self.record_attempt(i, job, StagePhase::Failed, Some(&why));
        let stage = &self.spec.stages[i];
        let entry = &self.status.stages[i];
        let tries = entry.attempt.saturating_add(1).saturating_sub(entry.first_attempt.max(1));
        let retries = stage.retries.or(self.spec.defaults.retries).unwrap_or(0);
        if tries <= retries {
            let base = stage
                .retry_delay_seconds
                .or(self.spec.defaults.retry_delay_seconds)
                .unwrap_or(DEFAULT_RETRY_DELAY_SECS);
            let delay = retry_delay(base, tries);
            let at = later(self.now, delay);
            let entry = &mut self.status.stages[i];
            entry.phase = StagePhase::Waiting;
            entry.retry_after = Some(at);
            entry.message =
                Some(truncate(&format!("attempt {} failed, retrying: {why}", entry.attempt), MAX_MESSAGE_BYTES));
            self.wake_at.push(at);
        } else {
            self.stage_done(i, None, StagePhase::Failed, None, Some(&why));
        }
    }

    /// `Queue`: wait while an older run of the group is unfinished.
    /// `CancelRunning`: supersede older unfinished runs. Returns whether
    /// this run must wait.
    fn apply_concurrency(&mut self) -> bool {
        let Some(concurrency) = &self.spec.concurrency else {
            return false;
        };
        let started = self.status.stages.iter().any(|s| s.attempt > 0);
        let me = group_order(self.run.created, self.status.start_time, self.run.name);
        let older: Vec<_> = self
            .observed
            .group
            .iter()
            .filter(|m| !m.finished && group_order(m.created, m.started, &m.name) < me)
            .collect();
        match concurrency.policy {
            ConcurrencyPolicy::Allow => false,
            ConcurrencyPolicy::Queue => !started && !older.is_empty(),
            ConcurrencyPolicy::CancelRunning => {
                for m in older.iter().filter(|m| !m.superseded) {
                    self.actions.push(Action::Supersede { run: m.name.clone() });
                    self.note(
                        false,
                        "Superseded",
                        format!("cancelling older run {} of group {}", m.name, concurrency.group),
                    );
                }
                false
            }
        }
    }

    fn run_stop(&self) -> Option<Stop> {
        if self.spec.cancel {
            return Some(Stop::Cancelled("cancelled by spec.cancel".into()));
        }
        if let Some(newer) = self.run.superseded_by {
            return Some(Stop::Cancelled(format!("superseded by run {newer}")));
        }
        let claim = workspace_claim_name(self.run.name, self.run.uid);
        if let Some(refusal) = self.spec.workspace.as_ref().and(self.observed.refused.get(&claim)) {
            return Some(Stop::WorkspaceRefused(format!("workspace claim {claim} not created: {}", refusal.message)));
        }
        let (timeout, deadline) = self.run_deadline()?;
        (self.now >= deadline).then(|| {
            Stop::TimedOut(format!("run timed out after {}", crate::engine::duration::format_duration(timeout)))
        })
    }

    /// The run's timeout and the deadline it sets (its clock starts at creation).
    fn run_deadline(&self) -> Option<(Duration, DateTime<Utc>)> {
        let timeout = self.spec.timeout.as_deref().and_then(|t| parse_duration(t).ok())?;
        Some((timeout, later(self.run.created, timeout)))
    }

    /// Stops every unfinished stage, finally stages included.
    fn stop_all(&mut self, stop: &Stop) {
        let why = match stop {
            Stop::Cancelled(m) | Stop::TimedOut(m) | Stop::WorkspaceRefused(m) => m.clone(),
        };
        for i in 0..self.spec.stages.len() {
            self.cancel_stage(i, &why);
        }
    }

    fn cancel_stage(&mut self, i: usize, why: &str) {
        let entry = &self.status.stages[i];
        if entry.phase.is_finished() {
            return;
        }
        if entry.phase == StagePhase::Running {
            if let Some(name) = entry.job_name.clone() {
                self.actions.push(Action::DeleteJob { name });
                let job = self.observed.job(&entry.name, entry.attempt).cloned();
                self.record_attempt(i, job.as_ref(), StagePhase::Cancelled, Some(why));
            }
        }
        self.stage_done(i, None, StagePhase::Cancelled, None, Some(why));
    }

    /// With `failFast`, a failed gating stage stops every other unfinished
    /// stage except the finally stages.
    fn fail_fast(&mut self) {
        if !self.spec.fail_fast {
            return;
        }
        let failed = self
            .spec
            .stages
            .iter()
            .zip(&self.status.stages)
            .find(|(s, st)| !s.finally && is_gating(s) && st.phase == StagePhase::Failed)
            .map(|(s, _)| s.name.clone());
        if let Some(failed) = failed {
            let why = format!("fail-fast: stage {failed} failed");
            for i in 0..self.spec.stages.len() {
                if !self.spec.stages[i].finally && !self.kept_for_finally(i) {
                    self.cancel_stage(i, &why);
                }
            }
        }
    }

    /// Starts every stage whose needs are met (in dependency order).
    fn advance(&mut self, graph: &Graph, queued: bool) {
        let mut order = graph.topological_order(&self.spec.stages).expect("validated");
        // Finally stages last: they start once every other stage is settled,
        // including the ones settled (skipped, cancelled) in this same pass.
        order.sort_by_key(|&i| self.spec.stages[i].finally);
        for i in order {
            let phase = self.status.stages[i].phase;
            if phase.is_finished() || phase == StagePhase::Running {
                continue;
            }
            let stage = &self.spec.stages[i];
            if self.spec.skip.contains(&stage.name) {
                self.stage_done(i, None, StagePhase::Skipped, Some(SkipReason::Listed), Some("listed in spec.skip"));
                continue;
            }
            match self.readiness(graph, i) {
                Readiness::Blocked => continue,
                Readiness::Skip(reason, message) => {
                    self.stage_done(i, None, StagePhase::Skipped, Some(reason), Some(&message));
                    continue;
                }
                Readiness::Cancel(message) => {
                    self.stage_done(i, None, StagePhase::Cancelled, None, Some(&message));
                    continue;
                }
                Readiness::Ready => {}
            }
            if queued {
                continue;
            }
            if let Some(at) = self.status.stages[i].retry_after {
                if self.now < at {
                    self.wake_at.push(at);
                    continue;
                }
            }
            self.start(graph, i);
        }
    }

    /// Whether stage `i` is a service that runs and is ready.
    fn serving(&self, i: usize) -> bool {
        let entry = &self.status.stages[i];
        self.spec.stages[i].service.is_some() && entry.phase == StagePhase::Running && entry.ready
    }

    /// Whether stage `i` is a ready service that a finally stage needs: it
    /// stays up for the finally stages (fail-fast leaves it alone too).
    fn kept_for_finally(&self, i: usize) -> bool {
        let name = &self.spec.stages[i].name;
        self.serving(i) && self.spec.stages.iter().any(|s| s.finally && s.needs.contains(name))
    }

    fn readiness(&self, graph: &Graph, i: usize) -> Readiness {
        let stage = &self.spec.stages[i];
        if stage.finally {
            // A service a finally stage needs stays up for it (collecting a
            // test cluster's logs, say): it is torn down after its last dependent.
            let others_done = (0..self.spec.stages.len()).all(|j| {
                self.spec.stages[j].finally || self.status.stages[j].phase.is_finished() || self.kept_for_finally(j)
            });
            let needs_done =
                graph.needs[i].iter().all(|&n| self.status.stages[n].phase.is_finished() || self.serving(n));
            return if others_done && needs_done { Readiness::Ready } else { Readiness::Blocked };
        }
        let mut verdict = Readiness::Ready;
        for &n in &graph.needs[i] {
            let (need, st) = (&self.spec.stages[n], &self.status.stages[n]);
            match st.phase {
                StagePhase::Succeeded => {}
                StagePhase::Skipped if !st.skip_reason.is_some_and(SkipReason::propagates) => {}
                StagePhase::Skipped => {
                    verdict = verdict.or(Readiness::Skip(SkipReason::Upstream, format!("{} was skipped", need.name)))
                }
                StagePhase::Failed if !is_gating(need) => {
                    verdict = verdict.or(Readiness::Skip(
                        SkipReason::UpstreamFailedNonGating,
                        format!("{} (non-gating) failed", need.name),
                    ))
                }
                StagePhase::Failed | StagePhase::Cancelled => {
                    verdict = verdict.or(Readiness::Cancel(format!("needs {}, which did not succeed", need.name)))
                }
                // A service is needed while it runs, once it is ready.
                StagePhase::Running if st.ready => {}
                StagePhase::Pending | StagePhase::Waiting | StagePhase::Running => return Readiness::Blocked,
            }
        }
        verdict
    }

    fn start(&mut self, graph: &Graph, i: usize) {
        if stage_kind(&self.spec.stages[i]).is_reference() {
            return self.start_reference(i);
        }
        let entry = &self.status.stages[i];
        let attempt = entry.attempt.saturating_add(1);
        match launch(self.run.name, self.run.uid, self.run.settings, self.spec, graph, &self.status.stages, i, attempt)
        {
            Err(e) => {
                let why = format!("cannot start: {e}");
                self.stage_done(i, None, StagePhase::Failed, None, Some(&why));
            }
            Ok(l) => {
                let entry = &mut self.status.stages[i];
                if entry.first_attempt == 0 {
                    entry.first_attempt = attempt;
                }
                entry.attempt = attempt;
                entry.job_name = Some(l.job_name.clone());
                if self.observed.foreign_jobs.contains(&l.job_name) {
                    let refusal = Refusal { conflict: true, message: taken_message(&l.job_name) };
                    return self.refused(i, &l.job_name, &refusal);
                }
                entry.phase = StagePhase::Running;
                entry.retry_after = None;
                entry.start_time.get_or_insert(self.now);
                entry.completion_time = None;
                entry.message = None;
                entry.ready = false;
                self.status.start_time.get_or_insert(self.now);
                self.actions.push(Action::CreateJob(Box::new(l)));
            }
        }
    }

    /// Sets the run's phase, condition, message and summary fields.
    fn conclude(&mut self, stop: Option<Stop>) {
        let total = self.spec.stages.len();
        let done = self.status.stages.iter().filter(|s| s.phase.is_finished()).count();
        self.status.progress = Some(format!("{done}/{total}"));
        let running: Vec<&str> =
            self.status.stages.iter().filter(|s| s.phase == StagePhase::Running).map(|s| s.name.as_str()).collect();
        self.status.current_stage = (!running.is_empty()).then(|| running.join(","));

        if done < total {
            let started = self.status.stages.iter().any(|s| s.attempt > 0);
            let (phase, reason) = if started { (RunPhase::Running, "Running") } else { (RunPhase::Pending, "Pending") };
            let message = if running.is_empty() {
                "waiting for stages to start".to_string()
            } else {
                format!("running: {}", running.join(", "))
            };
            self.status.phase = Some(phase);
            self.status.message = Some(truncate(&message, MAX_MESSAGE_BYTES));
            self.set_succeeded(ConditionStatus::Unknown, reason, &message);
            if let Some((_, deadline)) = self.run_deadline() {
                self.wake_at.push(deadline);
            }
            return;
        }

        let failed: Vec<&str> = self
            .spec
            .stages
            .iter()
            .zip(&self.status.stages)
            .filter(|(s, st)| is_gating(s) && st.phase == StagePhase::Failed)
            .map(|(s, _)| s.name.as_str())
            .collect();
        let (phase, reason, message) = match stop {
            Some(Stop::Cancelled(m)) => (RunPhase::Cancelled, "Cancelled", m),
            Some(Stop::TimedOut(m)) => (RunPhase::Failed, "TimedOut", m),
            Some(Stop::WorkspaceRefused(m)) => (RunPhase::Failed, "WorkspaceRefused", m),
            None if !failed.is_empty() => {
                let first = self.status.stages.iter().find(|s| s.name == failed[0]);
                let detail = first.and_then(|s| s.message.clone()).unwrap_or_default();
                (RunPhase::Failed, "Failed", format!("stage {} failed: {detail}", failed.join(", ")))
            }
            None => {
                let skipped = self.status.stages.iter().filter(|s| s.phase == StagePhase::Skipped).count();
                let non_gating_failed = self.status.stages.iter().filter(|s| s.phase == StagePhase::Failed).count();
                let mut m = format!("{total} stages done");
                if skipped > 0 {
                    m.push_str(&format!(", {skipped} skipped"));
                }
                if non_gating_failed > 0 {
                    m.push_str(&format!(", {non_gating_failed} non-gating failed"));
                }
                (RunPhase::Succeeded, "Succeeded", m)
            }
        };
        let status_value = ConditionStatus::from(phase == RunPhase::Succeeded);
        self.status.phase = Some(phase);
        self.status.message = Some(truncate(&message, MAX_MESSAGE_BYTES));
        self.status.completion_time = Some(self.now);
        self.set_succeeded(status_value, reason, &message);
        self.expire_after_ttl();
    }

    fn set_succeeded(&mut self, status: ConditionStatus, reason: &str, message: &str) {
        let generation = self.run.generation;
        set_condition(&mut self.status.conditions, CONDITION_SUCCEEDED, status, reason, message, generation, self.now);
    }

    fn clear_rerun_request(&mut self) {
        if self.run.rerun.is_some() {
            self.actions.push(Action::ClearRerunAnnotation);
        }
    }

    fn expire_after_ttl(&mut self) {
        let (Some(ttl), Some(done)) = (self.spec.ttl_seconds_after_finished, self.status.completion_time) else {
            return;
        };
        let expiry = later_by_secs(done, ttl);
        if self.now >= expiry {
            self.actions.push(Action::DeleteRun);
        } else {
            self.wake_at.push(expiry);
        }
    }

    /// Adds Events for every stage and run phase change, and the wake-up time.
    fn finish(mut self) -> Plan {
        let before = &self.run.status;
        for entry in &self.status.stages {
            let old = before.stages.iter().find(|s| s.name == entry.name);
            let changed = old.is_none_or(|o| o.phase != entry.phase || o.attempt != entry.attempt);
            if !changed || (entry.phase == StagePhase::Pending && old.is_none()) {
                continue;
            }
            let (warning, reason) = match entry.phase {
                StagePhase::Pending => (false, "StagePending"),
                StagePhase::Waiting => (true, "StageRetrying"),
                StagePhase::Running => (false, "StageStarted"),
                StagePhase::Succeeded => (false, "StageSucceeded"),
                StagePhase::Failed => (true, "StageFailed"),
                StagePhase::Skipped => (false, "StageSkipped"),
                StagePhase::Cancelled => (true, "StageCancelled"),
            };
            let mut message = format!("stage {} attempt {}", entry.name, entry.attempt);
            if let Some(m) = &entry.message {
                message.push_str(": ");
                message.push_str(m);
            }
            self.notes.push(Note {
                warning,
                reason: reason.into(),
                message: truncate(&message, 1000),
                stage: Some(entry.name.clone()),
                job: entry.job_name.clone(),
            });
        }
        if before.phase != self.status.phase {
            if let Some(phase) = self.status.phase {
                let warning = matches!(phase, RunPhase::Failed | RunPhase::Cancelled);
                let message = self.status.message.clone().unwrap_or_default();
                self.notes.push(Note { warning, reason: format!("Run{phase:?}"), message, stage: None, job: None });
            }
        }
        let requeue_after = self
            .wake_at
            .iter()
            .min()
            .map(|at| (*at - self.now).to_std().unwrap_or(Duration::ZERO).max(Duration::from_millis(200)));
        Plan { status: self.status, actions: self.actions, notes: self.notes, requeue_after }
    }
}

enum Readiness {
    Ready,
    Blocked,
    Skip(SkipReason, String),
    Cancel(String),
}

impl Readiness {
    /// Keeps the stronger verdict: cancel beats skip beats ready.
    fn or(self, other: Readiness) -> Readiness {
        match (&self, &other) {
            (Readiness::Cancel(_), _) => self,
            (_, Readiness::Cancel(_)) => other,
            (Readiness::Skip(..), _) => self,
            _ => other,
        }
    }
}

fn is_gating(stage: &Stage) -> bool {
    stage.gating.unwrap_or(true)
}

/// Why a stage does not start when its Job's name is held by a Job that
/// carries the run's labels but not its UID as controller.
fn taken_message(job: &str) -> String {
    format!(
        "Job {job} already exists and belongs to someone else (its controller is not this run); \
         Gantry neither adopts nor deletes it"
    )
}

/// `base` seconds doubled for each retry after the first, capped.
pub fn retry_delay(base_secs: u32, tries: u32) -> Duration {
    let factor = 2u64.saturating_pow(tries.saturating_sub(1).min(20));
    Duration::from_secs(u64::from(base_secs).saturating_mul(factor)).min(MAX_RETRY_DELAY)
}

//! What the planner reads: the run itself ([`View`]) and what the
//! controller observed in the cluster for it ([`Observed`]), with whether it
//! must observe at all ([`needs_observation`]) and what it must fetch besides
//! ([`failures_to_explain`], [`logs_wanted`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::gate::{QueuedRun, Standing};
use super::references::Referenced;
use crate::api::pipelinerun::{
    ConcurrencyPolicy, GateVerdict, PipelineRunSpec, PipelineRunStatus, ResultsFormat, RunPhase, StageStatus,
};
use crate::engine::job::{JobOutcome, JobState};
use crate::engine::refusal::Refusal;
use crate::engine::settings::Settings;

/// The run being planned: its identity, spec, last written status and the
/// annotations that steer it.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.uid`: the run's children carry it in their owner
    /// reference and (hashed) in their names.
    pub uid: &'a str,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `metadata.creationTimestamp`; the run's clock starts here.
    pub created: DateTime<Utc>,
    /// The desired state.
    pub spec: &'a PipelineRunSpec,
    /// The status as last written (default for a new run).
    pub status: &'a PipelineRunStatus,
    /// The `gantry.dev/rerun` annotation, when set.
    pub rerun: Option<&'a str>,
    /// The `gantry.dev/superseded-by` annotation, when set.
    pub superseded_by: Option<&'a str>,
    /// The admin's settings as they apply to this run.
    pub settings: &'a Settings,
}

/// One stage Job: its stage and attempt labels and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct JobObservation {
    /// The stage label.
    pub stage: String,
    /// The attempt label.
    pub attempt: u32,
    /// The Job's outcome.
    pub outcome: JobOutcome,
}

/// Another run of the same namespace and concurrency group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMember {
    /// Its name.
    pub name: String,
    /// When it was created: older runs go first.
    pub created: DateTime<Utc>,
    /// When its first stage started, if it has.
    pub started: Option<DateTime<Utc>>,
    /// Whether it has finished.
    pub finished: bool,
    /// Whether it has already been superseded.
    pub superseded: bool,
    /// Its policy.
    pub policy: ConcurrencyPolicy,
    /// Its `spec.source.revision`.
    pub revision: Option<String>,
    /// Its phase.
    pub phase: Option<RunPhase>,
    /// The gate's verdict on it, for a `Gate` run.
    pub gate_verdict: Option<GateVerdict>,
    /// When it finished.
    pub completed: Option<DateTime<Utc>>,
}

/// A `Gate` run's queue: its group's `Gate` runs in queue order (creation
/// time, then name; the run itself left out), and those ahead of it.
pub struct GateQueue {
    /// Every other run of the queue.
    pub all: Vec<QueuedRun>,
    /// The runs ahead of this one, in queue order.
    pub ahead: Vec<QueuedRun>,
}

/// The queue of the `Gate` run `name` created at `created`, from its group.
pub fn gate_queue(group: &[GroupMember], created: DateTime<Utc>, name: &str) -> GateQueue {
    let mut members: Vec<&GroupMember> = group.iter().filter(|m| m.policy == ConcurrencyPolicy::Gate).collect();
    members.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    let queued = |m: &GroupMember| QueuedRun {
        name: m.name.clone(),
        revision: m.revision.clone(),
        standing: standing(m.phase, m.gate_verdict),
        decided_at: m.completed,
    };
    let me = (created, name);
    GateQueue {
        all: members.iter().map(|m| queued(m)).collect(),
        ahead: members.iter().filter(|m| (m.created, m.name.as_str()) < me).map(|m| queued(m)).collect(),
    }
}

/// Where a run stands in its gate queue, from its phase and verdict: a
/// cancelled run has left it, a run that failed otherwise (timed out, an
/// invalid spec) counts as rejected.
pub fn standing(phase: Option<RunPhase>, verdict: Option<GateVerdict>) -> Standing {
    match (phase, verdict) {
        (Some(RunPhase::Cancelled), _) => Standing::Withdrawn,
        (_, Some(GateVerdict::Merged)) | (Some(RunPhase::Succeeded), _) => Standing::Merged,
        (_, Some(GateVerdict::Rejected)) | (Some(RunPhase::Failed), _) => Standing::Rejected,
        _ => Standing::Undecided,
    }
}

/// The order runs of a concurrency group go in: by creation time, which
/// has only second resolution, then a run that has started before one that
/// has not (or started earlier), then by name.
pub fn group_order(created: DateTime<Utc>, started: Option<DateTime<Utc>>, name: &str) -> impl Ord + '_ {
    (created, started.unwrap_or(DateTime::<Utc>::MAX_UTC), name)
}

/// Everything the controller observed for one run.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The run's stage Jobs (any attempt).
    pub jobs: Vec<JobObservation>,
    /// Other runs of its concurrency group.
    pub group: Vec<GroupMember>,
    /// Logs of finished attempts, by Job name, as asked for by
    /// [`logs_wanted`].
    pub logs: BTreeMap<String, String>,
    /// The Jobs whose log was longer than the operator reads
    /// ([`super::log_tail::MAX_LOG_BYTES`]): `logs` holds its end.
    pub logs_cut: std::collections::BTreeSet<String>,
    /// The ImageBuilds `imageBuild` stages wait for, by name; a name that is
    /// absent does not exist (yet).
    pub image_builds: BTreeMap<String, Referenced>,
    /// The KataInstalls `kataInstall` stages wait for, by name.
    pub kata_installs: BTreeMap<String, Referenced>,
    /// Jobs that carry this run's labels but belong to another owner (an
    /// orphan of an earlier run of the same name, or anyone's): never
    /// observed as the run's, never adopted or deleted; a stage whose Job
    /// name is taken by one fails with a conflict.
    pub foreign_jobs: BTreeSet<String>,
    /// Creates the API server refused for good in this reconcile, by object
    /// name, with its message: the controller applies a plan, then plans
    /// again with these so the refused stage fails (see [`Refusal`]).
    pub refused: BTreeMap<String, Refusal>,
}

impl Observed {
    /// The Job of `stage`'s `attempt`, if it exists.
    pub fn job(&self, stage: &str, attempt: u32) -> Option<&JobObservation> {
        self.jobs.iter().find(|j| j.stage == stage && j.attempt == attempt)
    }

    /// The highest attempt number with a Job for `stage`.
    pub fn latest_attempt(&self, stage: &str) -> Option<u32> {
        self.jobs.iter().filter(|j| j.stage == stage).map(|j| j.attempt).max()
    }
}

/// Whether the planner needs to know what the cluster holds for `run`. A
/// finished run that is not asked to rerun plans from its status alone
/// (its result stands, only its TTL runs), so the controller reads nothing
/// for it: finished runs stay off the hot path however many there are.
pub fn needs_observation(run: &View) -> bool {
    run.rerun.is_some() || !run.status.phase.is_some_and(RunPhase::is_finished)
}

/// Failed Jobs of the current attempt of stages not yet recorded as finished
/// whose pods are gone (the Job controller deletes them at the deadline), so
/// the failure cannot name the container; the controller adds the pods'
/// last Warning Event to their message before calling [`super::plan()`].
pub fn failures_to_explain(run: &View, observed: &Observed) -> Vec<String> {
    unfinished_current_attempts(run, observed)
        .filter_map(|(status, current)| observed.job(&status.name, current))
        .filter(|j| j.outcome.state == JobState::Failed && j.outcome.pod.is_none())
        .map(|j| j.outcome.name.clone())
        .collect()
}

/// Job names of finished attempts whose logs the planner needs (TAP stages
/// whose current attempt just finished); the controller fetches them into
/// `Observed::logs` before calling [`super::plan()`].
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

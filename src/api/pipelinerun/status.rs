//! What a `PipelineRun`'s status says: the run's phase and condition, one
//! entry per stage with its attempts, and the notification outbox.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::common::TestCounts;

/// Observed state of a PipelineRun.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Queued, Running, Succeeded, Failed or Cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RunPhase>,
    /// `Succeeded`: Unknown while running, then True or False with a reason
    /// (Succeeded, Failed, Cancelled, TimedOut, InvalidSpec).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Finished stages out of all stages, e.g. `3/7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// The running stages, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_stage: Option<String>,
    /// When the first stage started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// When the run reached its final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    /// A short human-readable explanation of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// One entry per stage, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageStatus>,
    /// CloudEvent delivery to `spec.notify`: the transitions not yet
    /// acknowledged by every target, and how far each target got. Kept so
    /// that an operator that restarts sends what was not acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationStatus>,
    /// `Gate` runs: the run's place in its queue, what its current try is
    /// tested on, and the gate's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateStatus>,
    /// Once the run has finished: whether it passes, from the results it
    /// requires (gating stages) and the ones it only reports (`gating: false`),
    /// as a gating system such as Greenwave reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

/// A gated run's place in its queue and the gate's verdict on it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateStatus {
    /// Undecided runs ahead of this one in the queue (0: its head).
    #[serde(default)]
    pub position: u32,
    /// The runs ahead that the current try is tested on, in queue order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ahead: Vec<GateChange>,
    /// The current try, from 1 (0: not tested yet). A reset starts the next.
    #[serde(default, rename = "try")]
    pub try_number: u32,
    /// Queued, Testing, Passed (waiting for the runs ahead), Merged or Rejected.
    pub verdict: GateVerdict,
    /// Why the verdict is what it is (truncated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many runs of the queue are tested at once, as last computed.
    #[serde(default)]
    pub window: u32,
}

/// One change a try is tested on.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateChange {
    /// The run that carries it.
    pub run: String,
    /// Its `spec.source.revision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// The gate's verdict on a run.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum GateVerdict {
    /// Waiting for a place in the window.
    #[default]
    Queued,
    /// Its current try runs (or failed while runs ahead are undecided).
    Testing,
    /// Its try passed; waiting for the runs ahead (or merging, at the head).
    Passed,
    /// Merged: every stage, merge stages included, passed with everything
    /// ahead merged.
    Merged,
    /// Rejected: it failed with everything ahead merged (or timed out).
    Rejected,
}

impl GateVerdict {
    /// Whether the gate has decided on the run.
    pub fn is_decided(self) -> bool {
        matches!(self, GateVerdict::Merged | GateVerdict::Rejected)
    }
}

/// A finished run's gating verdict.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// `Pass` when the run Succeeded (every required result passed), else `Fail`.
    pub decision: Decision,
    /// The results the decision rests on: gating stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<StageResult>,
    /// Results reported only: stages with `gating: false`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub informational: Vec<StageResult>,
}

/// A gating decision.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Decision {
    /// Every required result passed.
    Pass,
    /// Some required result did not pass.
    #[default]
    Fail,
}

/// One stage's result in a verdict.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageResult {
    /// The stage.
    pub stage: String,
    /// How it ended.
    pub outcome: StagePhase,
    /// The TAP tests that failed in every attempt (capped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_tests: Vec<String>,
}

/// The outbox of a run's CloudEvents.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    /// The sequence number of the newest transition (the first is 1).
    #[serde(default)]
    pub sequence: u64,
    /// Transitions some target has not acknowledged yet, oldest first (at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingNotification>,
    /// Transitions dropped from a full outbox before every target acknowledged them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// One entry per accepted `spec.notify` target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<NotifyTargetStatus>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One transition waiting in the outbox: what its CloudEvent says.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingNotification {
    /// Its place in the run's sequence of transitions.
    pub sequence: u64,
    /// The Event reason, e.g. `StageFailed`; it gives the CloudEvent type.
    pub reason: String,
    /// The stage it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The Job of the attempt it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Human-readable text (truncated).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Whether it is bad news (a Warning Event).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// The run's progress then, e.g. `3/7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

/// How far one `spec.notify` target got.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifyTargetStatus {
    /// The target's URL.
    pub url: String,
    /// The sequence number of the newest transition it acknowledged (or that
    /// was dropped before it could); 0: none.
    #[serde(default)]
    pub delivered: u64,
    /// Failed tries since its last acknowledgement; at 12 the operator gives
    /// up on this target for this run.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub failures: u32,
    /// Why the last try failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// The phase of a run.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RunPhase {
    /// Accepted, no stage started yet.
    Pending,
    /// Waiting for another run of its concurrency group.
    Queued,
    /// At least one stage is running or about to.
    Running,
    /// Every gating stage succeeded or was skipped.
    Succeeded,
    /// A gating stage failed, the spec is invalid, or the run timed out.
    Failed,
    /// Stopped by `spec.cancel` or by a newer run of its concurrency group.
    Cancelled,
}

impl RunPhase {
    /// Whether the run is over.
    pub fn is_finished(self) -> bool {
        matches!(self, RunPhase::Succeeded | RunPhase::Failed | RunPhase::Cancelled)
    }
}

/// Observed state of one stage.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// The stage's name.
    pub name: String,
    /// Pending, Waiting, Running, Succeeded, Failed, Skipped or Cancelled.
    pub phase: StagePhase,
    /// The number of the current (or last) attempt, from 1. Keeps counting
    /// across reruns so every attempt has its own Job.
    #[serde(default)]
    pub attempt: u32,
    /// The first attempt of the current try: attempts before it belong to
    /// earlier tries (before a rerun) and are not merged or counted.
    #[serde(default)]
    pub first_attempt: u32,
    /// The current (or last) attempt's Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Why the stage was skipped, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    /// When the stage first started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// When the stage finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    /// When the next retry may start (while waiting for a retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<DateTime<Utc>>,
    /// A service stage: every pod is ready, so the stages that need it may run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ready: bool,
    /// Outputs the stage reported.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// Test counts, merged across attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<TestCounts>,
    /// A short explanation (truncated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Earlier attempts, oldest first, capped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AttemptStatus>,
}

/// The phase of a stage.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StagePhase {
    /// Not started: waiting for the stages it needs.
    #[default]
    Pending,
    /// Waiting for a retry's delay, or for a referenced object to be ready.
    Waiting,
    /// Its Job (or service, or referenced object) is running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished unsuccessfully after all retries.
    Failed,
    /// Not run: listed in `spec.skip`, reported `skip=true`, or a stage it
    /// needs was skipped that way. Counts as success.
    Skipped,
    /// Stopped or never started because the run was cancelled, failed fast,
    /// or a stage it needs failed.
    Cancelled,
}

impl StagePhase {
    /// Whether the stage is over.
    pub fn is_finished(self) -> bool {
        matches!(self, StagePhase::Succeeded | StagePhase::Failed | StagePhase::Skipped | StagePhase::Cancelled)
    }

    /// Whether dependents may start after this stage.
    pub fn is_success(self) -> bool {
        matches!(self, StagePhase::Succeeded | StagePhase::Skipped)
    }
}

/// Why a stage was skipped.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SkipReason {
    /// Listed in `spec.skip`; the stages that need it still run.
    Listed,
    /// The stage wrote `skip=true`; the stages that need it are skipped.
    Requested,
    /// A stage it needs was skipped by request; skipped in turn.
    Upstream,
    /// A non-gating stage it needs failed; skipped instead of failing the run.
    UpstreamFailedNonGating,
}

impl SkipReason {
    /// Whether the stages that need a stage skipped for this reason are skipped too.
    pub fn propagates(self) -> bool {
        !matches!(self, SkipReason::Listed)
    }
}

/// A finished attempt of a stage.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptStatus {
    /// Attempt number.
    pub attempt: u32,
    /// The attempt's Job.
    pub job_name: String,
    /// How it ended.
    pub phase: StagePhase,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    /// A short explanation (truncated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

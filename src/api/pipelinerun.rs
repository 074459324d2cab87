//! `PipelineRun`: a DAG of stages, each run as Jobs, with state written back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ContainerRun, Source, TestCounts};

/// A pipeline of stages run as Jobs in dependency order. Create one per
/// change; wait with `kubectl wait --for=condition=Succeeded pipelinerun/NAME`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gantry.dev",
    version = "v1alpha1",
    kind = "PipelineRun",
    doc = "A pipeline of stages run as Jobs in dependency order, with every stage's state written back.",
    namespaced,
    status = "PipelineRunStatus",
    shortname = "gpr",
    category = "gantry",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Stage","type":"string","jsonPath":".status.currentStage"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunSpec {
    /// The code this run works on; every stage sees it as `GANTRY_SOURCE_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Named values every stage sees as `GANTRY_PARAM_<NAME>` and can use as
    /// `$(params.NAME)` in image, command, args and env.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// Values a stage uses when it does not set its own.
    #[serde(default)]
    pub defaults: StageDefaults,
    /// A volume shared by every stage, mounted at `/workspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Workspace>,
    /// The stages. Order does not matter: `needs` decides it.
    pub stages: Vec<Stage>,
    /// When a gating stage fails, stop running stages and start nothing new
    /// except `finally` stages.
    #[serde(default)]
    pub fail_fast: bool,
    /// Names of stages to skip. Skipped counts as success; a skipped stage
    /// whose outputs another stage uses makes the spec invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip: Vec<String>,
    /// Limit how many runs of one group run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// Deadline for the whole run, e.g. `2h`, `30m`, `90s` (at most `30d`).
    /// Time spent Pending or queued counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Delete the run (and its Jobs) this many seconds after it finished
    /// (0 to 31536000, a year).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i64>,
    /// Set to true to stop every stage; the run ends Cancelled.
    #[serde(default)]
    pub cancel: bool,
    /// Endpoints that receive a CloudEvent on every run and stage transition,
    /// at least once and in order; at most 5 unless the operator's admin
    /// says otherwise, each where the admin's destination policy allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifyTarget>,
}

/// A named value for the run.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Param {
    /// Name, used as `$(params.NAME)` and `GANTRY_PARAM_<NAME>`.
    pub name: String,
    /// Value (may be empty).
    pub value: String,
}

/// Values every stage inherits unless it sets its own.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageDefaults {
    /// Image for stages that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// ServiceAccount the stage pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Per-attempt deadline, e.g. `2h` (at most `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// How often a failed stage is tried again (at most 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Seconds to wait before the first retry (at most 600); doubled for each
    /// further one, up to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay_seconds: Option<u32>,
    /// Environment added to every stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// A PersistentVolumeClaim made for the run and mounted in every stage.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// Requested size, e.g. `20Gi`.
    pub size: String,
    /// StorageClass; the cluster's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// One step of the pipeline. Exactly one of `run`, `imageBuild`,
/// `kataInstall` or `service` says what it does (`run` when none is given
/// and `defaults.image` is set).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// Name, a DNS label unique within the run.
    pub name: String,
    /// Stages that must succeed (or be skipped) before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// The container this stage runs as a Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<ContainerRun>,
    /// Build (or reuse) an ImageBuild and wait until it is Ready; its
    /// `image` and `digest` become this stage's outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_build: Option<ObjectRef>,
    /// Wait until this KataInstall is Installed and Verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kata_install: Option<ObjectRef>,
    /// A long-running stage: pods that stay up (ready) while the stages that
    /// need it run, and are torn down after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceStage>,
    /// Names of the values this stage writes as `name=value` lines to the
    /// file `$GANTRY_OUTPUTS`. Later stages read them as
    /// `$(stages.STAGE.outputs.NAME)`. Writing `skip=true` ends the stage
    /// Skipped and skips the stages that need it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// How often a failed attempt is tried again (default `defaults.retries`,
    /// else 0; at most 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Seconds before the first retry (at most 600), doubled for each further
    /// one up to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay_seconds: Option<u32>,
    /// How to read test results from the stage's log. `tap`: a TAP stream;
    /// across retries a test passes if it passed in any attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<ResultsFormat>,
    /// Place the stage on virtualization-capable nodes with `/dev/kvm`
    /// (subject to the operator's nested-virt policy).
    #[serde(default)]
    pub nested_virt: bool,
    /// Whether this stage's failure fails the run (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gating: Option<bool>,
    /// Run after every other stage has finished, whatever happened.
    #[serde(default)]
    pub finally: bool,
    /// Per-attempt deadline, e.g. `45m` (default `defaults.timeout`; at most `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// ServiceAccount for this stage (default `defaults.serviceAccountName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Substitute other stages' outputs into this stage's image, command and
    /// args even when they hold characters other than letters, digits and
    /// `._-:/@+=,` (shell metacharacters, spaces). Off by default: such a
    /// value fails the stage before its Job exists. The safer channel is the
    /// environment: `$GANTRY_OUTPUT_<STAGE>_<NAME>` in the script.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_unsafe_outputs: bool,
}

/// A reference to another Gantry object in the same namespace (or, for
/// cluster-scoped kinds, the cluster).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ObjectRef {
    /// Object name.
    pub name: String,
}

/// A stage whose pods keep running while its dependents use them (a
/// nested-virt test cluster, a database). It is Ready once every pod is
/// ready; the stages that need it then start and get the pods' IPs as the
/// output `addresses` (comma-separated). It is torn down (and Succeeded)
/// when the last of them finishes, or with the run.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStage {
    /// Number of pods (1 to 16).
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// When a pod counts as ready; without one, as soon as it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<k8s_openapi::api::core::v1::Probe>,
}

fn default_replicas() -> u32 {
    1
}

/// The test-result formats Gantry understands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultsFormat {
    /// Test Anything Protocol on the stage's log.
    Tap,
}

/// Concurrency control across runs that share a group.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Concurrency {
    /// Runs in the same namespace with the same group are limited together.
    pub group: String,
    /// `Allow` (no limit), `Queue` (wait until no other run of the group is
    /// running) or `CancelRunning` (a newer run cancels older running ones).
    #[serde(default)]
    pub policy: ConcurrencyPolicy,
}

/// What happens when runs of one concurrency group overlap.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// No limit.
    #[default]
    Allow,
    /// Wait until no older run of the group is running.
    Queue,
    /// Cancel older running runs of the group.
    CancelRunning,
}

/// Where to send CloudEvents about the run.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct NotifyTarget {
    /// HTTP(S) endpoint that receives a structured-mode CloudEvent per
    /// transition. Loopback, link-local and in-cluster addresses are refused
    /// unless the operator's admin allows them.
    pub url: String,
}

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

//! `PipelineRun`: a DAG of stages, each run as Jobs, with state written back.

use k8s_openapi::api::core::v1::EnvVar;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod status;

pub use status::*;

use super::common::{ContainerRun, Source};

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
    printcolumn = r#"{"name":"Gate","type":"string","jsonPath":".status.gate.verdict"}"#,
    printcolumn = r#"{"name":"Position","type":"integer","priority":1,"jsonPath":".status.gate.position"}"#,
    printcolumn = r#"{"name":"Try","type":"integer","priority":1,"jsonPath":".status.gate.try"}"#,
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

impl PipelineRunSpec {
    /// The run's concurrency settings when it is in a `Gate` queue.
    pub fn gate(&self) -> Option<&Concurrency> {
        self.concurrency.as_ref().filter(|c| c.policy == ConcurrencyPolicy::Gate)
    }
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
    /// `Gate` runs only: this stage does the merge (submits the change, pushes
    /// the branch). It runs only once the run is at the head of its queue
    /// with every other stage passed; the run is Merged when it succeeds and
    /// Rejected when it fails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merge: bool,
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
    /// running), `CancelRunning` (a newer run cancels older running ones) or
    /// `Gate` (speculative gating: each run is tested on the runs ahead of it
    /// in the queue, and merged in queue order).
    #[serde(default)]
    pub policy: ConcurrencyPolicy,
    /// `Gate` only: how many runs of the queue are tested at once (1 to
    /// 1000, default 20). It grows by one after each merge and halves after
    /// each rejection, down to 3 (or this value, when smaller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
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
    /// Zuul-style gating: the group's runs, in creation order, form a queue;
    /// each run is tested on top of the runs ahead of it (`$(gate.ahead)`),
    /// a failure with everything ahead merged rejects it and resets the runs
    /// behind that were tested with it, and runs merge in queue order.
    Gate,
}

/// Where to send CloudEvents about the run.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct NotifyTarget {
    /// HTTP(S) endpoint that receives a structured-mode CloudEvent per
    /// transition. Loopback, link-local and in-cluster addresses are refused
    /// unless the operator's admin allows them.
    pub url: String,
}

//! `ImageBuild`: a declared image, built by a builder Job, with a lifecycle.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ContainerRun, Source};

/// A declared container, VM or OS image. Gantry builds it with a builder Job
/// (one per spec generation, or per `gantry.dev/rebuild` annotation), records
/// the digest, and retires unused images.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gantry.dev",
    version = "v1alpha1",
    kind = "ImageBuild",
    doc = "A declared container, VM or OS image, built by a builder Job, with a retention lifecycle.",
    namespaced,
    status = "ImageBuildStatus",
    shortname = "gib",
    category = "gantry",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".status.latestImage"}"#,
    printcolumn = r#"{"name":"Lifecycle","type":"string","jsonPath":".status.lifecycle"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ImageBuildSpec {
    /// What kind of image this is: `container`, `vm` or `os`.
    #[serde(default)]
    pub image_kind: ImageKind,
    /// The code the image is built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The builder container. It gets `GANTRY_IMAGE` (the full output
    /// reference), `GANTRY_IMAGE_SUFFIX` and `GANTRY_OUTPUTS`, and reports
    /// `digest=sha256:...` (and any other artifact ids) there.
    pub builder: ContainerRun,
    /// ServiceAccount the builder runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Output repository, e.g. `registry.local:5000/fedora-cache`; each build
    /// pushes `OUTPUT:SUFFIX`.
    pub output: String,
    /// Prefix of the per-build suffix, which is the prefix plus a UTC
    /// timestamp (like `IMG_SFX`): `c` for cache images, `b` for base images.
    #[serde(default = "default_suffix_prefix")]
    pub suffix_prefix: String,
    /// Run the builder on virtualization-capable nodes with `/dev/kvm`.
    #[serde(default)]
    pub nested_virt: bool,
    /// Deadline for one build, Pending time included, e.g. `1h` (at most `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// How long images are kept.
    #[serde(default)]
    pub retention: Retention,
}

fn default_suffix_prefix() -> String {
    "c".to_string()
}

/// The kinds of image Gantry builds.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// An OCI container image.
    #[default]
    Container,
    /// A VM disk image.
    Vm,
    /// An OS image.
    Os,
}

/// The retention lifecycle of an image.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// How many builds to keep (default 5): older ones leave the history,
    /// and with a `pruner` their images are deleted too (never `permanent`
    /// ones, never the latest image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Mark the image Obsolete when no PipelineRun used it for this long, e.g.
    /// `30d` (at most `3650d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obsolete_after: Option<String>,
    /// Run the prune Job this long after the image became Obsolete (at most `3650d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_after: Option<String>,
    /// Never obsolete or prune (release branches).
    #[serde(default)]
    pub permanent: bool,
    /// The container that deletes an obsolete image once `pruneAfter` has
    /// passed; gets `GANTRY_IMAGE` and `GANTRY_IMAGE_DIGEST`. Required with
    /// `pruneAfter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruner: Option<ContainerRun>,
}

/// Observed state of an ImageBuild.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageBuildStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Building, Ready or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BuildPhase>,
    /// `Ready` and `Building`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The last successfully built reference, `OUTPUT:SUFFIX`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_image: Option<String>,
    /// The digest of `latestImage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Used, Obsolete, Pruned or Permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// When a PipelineRun last used the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
    /// Recent builds, newest last: the last `retention.keepLast`, and the
    /// build of `latestImage` while that is older.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<BuildRecord>,
    /// The last `gantry.dev/rebuild` annotation value that started a build
    /// (each value is honoured once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_rebuild: Option<String>,
    /// The prune Job of the latest image, once retention started one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneRecord>,
}

/// The prune Job that deletes an obsolete image.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneRecord {
    /// The reference being deleted.
    pub image: String,
    /// The prune Job.
    pub job_name: String,
    /// Running, Succeeded or Failed (a failed prune is not retried by itself).
    pub phase: PrunePhase,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    /// Why it failed, naming the pod and container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where a prune Job stands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PrunePhase {
    /// Its Job runs.
    #[default]
    Running,
    /// The image was deleted.
    Succeeded,
    /// It failed, or its Job disappeared (not retried by itself).
    Failed,
}

/// The phase of an ImageBuild.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BuildPhase {
    /// Nothing built yet.
    Pending,
    /// A build is running.
    Building,
    /// The latest build succeeded.
    Ready,
    /// The latest build failed.
    Failed,
}

/// Where an image is in its retention lifecycle.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Lifecycle {
    /// Built and used recently.
    Used,
    /// Not used for `obsoleteAfter`.
    Obsolete,
    /// Deleted by the prune Job.
    Pruned,
    /// Kept forever.
    Permanent,
}

/// One build of an image.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildRecord {
    /// The build's unique suffix.
    pub suffix: String,
    /// The builder Job.
    pub job_name: String,
    /// Building, Ready or Failed.
    pub phase: BuildRecordPhase,
    /// The full reference built (`output:suffix`, with the output of its time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The spec generation built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    /// The pushed digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Why it failed, naming the pod and container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where one build stands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BuildRecordPhase {
    /// Its Job runs.
    #[default]
    Building,
    /// It pushed the image and reported its digest.
    Ready,
    /// It failed (not retried by itself).
    Failed,
}

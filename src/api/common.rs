//! Types shared by more than one kind.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the code a pipeline or build works on comes from. Passed to every
/// container as `GANTRY_SOURCE_REPO` and `GANTRY_SOURCE_REVISION`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Repository URL, e.g. `https://github.com/flatcar/scripts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Branch, tag or commit to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Sub-folder of the repository to work in (ImageBuild's build context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_dir: Option<String>,
}

/// A container to run: the parts of a Kubernetes container a pipeline author
/// sets. Gantry fills in the name, the context environment and the output
/// channel; unset fields come from the run's `defaults`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRun {
    /// Container image. Required here or in `defaults.image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Entrypoint array; the image's entrypoint when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment variables, added after Gantry's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Working directory; the image's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// CPU and memory requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Counts of a stage's or build's tests, from its TAP output.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestCounts {
    /// Tests that passed (in at least one attempt, when retried).
    pub passed: u32,
    /// Tests that failed in every attempt.
    pub failed: u32,
    /// Tests reported as skipped.
    pub skipped: u32,
    /// Names of the tests that failed, capped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_names: Vec<String>,
}

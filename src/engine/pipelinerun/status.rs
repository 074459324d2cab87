//! The run's status vocabulary: the `Succeeded` condition and its reasons.
//! The run's phase tells the same story (see `conclude`); the condition is
//! what `kubectl wait --for=condition=Succeeded` waits for.

/// The condition `kubectl wait --for=condition=Succeeded` waits for.
pub const CONDITION_SUCCEEDED: &str = "Succeeded";

/// The reasons of the `Succeeded` condition.
pub mod reasons {
    /// Unknown: no stage has started yet.
    pub const PENDING: &str = "Pending";
    /// Unknown: waiting for older runs of the concurrency group.
    pub const QUEUED: &str = "Queued";
    /// Unknown: stages are running or about to.
    pub const RUNNING: &str = "Running";
    /// True: every gating stage succeeded or was skipped.
    pub const SUCCEEDED: &str = "Succeeded";
    /// False: a gating stage failed.
    pub const FAILED: &str = "Failed";
    /// False: stopped by `spec.cancel` or a newer run of its group.
    pub const CANCELLED: &str = "Cancelled";
    /// False: the run's `spec.timeout` passed.
    pub const TIMED_OUT: &str = "TimedOut";
    /// False: the spec is invalid; nothing was created.
    pub use crate::engine::spec_error::REASON_INVALID_SPEC as INVALID_SPEC;
    /// False: the API server would not create the run's workspace claim.
    pub const WORKSPACE_REFUSED: &str = "WorkspaceRefused";
    /// False: the operator itself failed on the run (a reconcile panicked).
    pub const INTERNAL_ERROR: &str = "InternalError";
    /// True: a `Gate` run merged.
    pub const MERGED: &str = "Merged";
    /// False: a `Gate` run was rejected.
    pub const REJECTED: &str = "Rejected";
}

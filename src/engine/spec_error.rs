//! The first problem found in a spec, for every kind: the object is not
//! acted on and its status names the field.

/// A spec problem: `field` is a path such as `spec.stages[test-qemu].needs`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Where the problem is.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl SpecError {
    /// The problem `message` at `field`.
    pub fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError { field: field.into(), message: message.into() }
    }
}

/// The condition and Event reason of an object whose spec is invalid.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";

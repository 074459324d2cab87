//! Kubernetes Events as planners describe them: pure data the controller
//! publishes after the status is written.

use super::text::truncate;

/// Longest Event message kept (the API server caps a note at 1 KiB).
pub const MAX_NOTE_BYTES: usize = 1000;

/// A Kubernetes Event to publish about the object being reconciled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// CamelCase reason, e.g. `StageFailed`.
    pub reason: String,
    /// Human-readable text, at most [`MAX_NOTE_BYTES`].
    pub message: String,
    /// The stage the Event is about, if any (its `action`).
    pub stage: Option<String>,
    /// The Job the Event is about, if any (its related object).
    pub job: Option<String>,
}

impl Note {
    /// A Normal Event.
    pub fn normal(reason: impl Into<String>, message: impl AsRef<str>) -> Self {
        Self::new(false, reason, message)
    }

    /// A Warning Event.
    pub fn warning(reason: impl Into<String>, message: impl AsRef<str>) -> Self {
        Self::new(true, reason, message)
    }

    /// A Warning when `warning`, else Normal.
    pub fn new(warning: bool, reason: impl Into<String>, message: impl AsRef<str>) -> Self {
        Note {
            warning,
            reason: reason.into(),
            message: truncate(message.as_ref(), MAX_NOTE_BYTES),
            stage: None,
            job: None,
        }
    }

    /// The same Event, about `stage`.
    pub fn about_stage(mut self, stage: impl Into<String>) -> Self {
        self.stage = Some(stage.into());
        self
    }

    /// The same Event, naming `job` as its related object.
    pub fn about_job(mut self, job: Option<String>) -> Self {
        self.job = job;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_bounded_and_carries_what_it_is_about() {
        let note = Note::warning("StageFailed", "x".repeat(5000)).about_stage("test").about_job(Some("j".into()));
        assert!(note.warning);
        assert!(note.message.len() <= MAX_NOTE_BYTES);
        assert_eq!((note.stage.as_deref(), note.job.as_deref()), (Some("test"), Some("j")));
        assert!(!Note::normal("Built", "ok").warning);
    }
}

//! How a reconcile fails: every API error says which step it happened in,
//! what was being done and to which object, and reports a bounded metric
//! reason (step and HTTP code).

use std::time::Duration;

use super::PANIC_BACKOFF;

/// The part of a reconcile an API call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Reading what the cluster holds.
    Observe,
    /// Carrying out the plan's actions.
    Apply,
    /// Writing the object's status.
    WriteStatus,
}

impl Step {
    /// The metric label and log word.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Observe => "observe",
            Step::Apply => "apply",
            Step::WriteStatus => "write_status",
        }
    }
}

/// Errors a reconcile can end with; the controller logs them and retries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request made while observing.
    #[error("observing {what}: {source}")]
    Observe {
        /// What was being read, e.g. `Jobs of PipelineRun ci/nightly`.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The API server refused or failed a request that carries out the plan.
    #[error("{action} {object}: {source}")]
    Apply {
        /// What was being done, e.g. `create` or `delete`.
        action: &'static str,
        /// The object, e.g. `Job ci/nightly-sdk-1-k3x9q`.
        object: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The status write failed.
    #[error("writing the status of {object}: {source}")]
    WriteStatus {
        /// The object, e.g. `PipelineRun ci/nightly`.
        object: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An object lacked something every object has (name, namespace, uid).
    #[error("object is missing {0}")]
    MissingField(&'static str),
    /// The reconcile panicked (a bug); caught so that only this object is affected.
    #[error("reconcile panicked: {0}")]
    Panicked(String),
    /// An object of the name Gantry would write exists and is someone else's.
    #[error("{0} exists and is not Gantry's: left alone")]
    NotOwned(String),
}

impl Error {
    /// The API error underneath, when there is one.
    pub fn kube(&self) -> Option<&kube::Error> {
        match self {
            Error::Observe { source, .. } | Error::Apply { source, .. } | Error::WriteStatus { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }

    /// Whether the API server answered 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        matches!(self.kube(), Some(kube::Error::Api(status)) if status.code == 404)
    }

    /// The step an API error happened in.
    pub fn step(&self) -> Option<Step> {
        match self {
            Error::Observe { .. } => Some(Step::Observe),
            Error::Apply { .. } => Some(Step::Apply),
            Error::WriteStatus { .. } => Some(Step::WriteStatus),
            _ => None,
        }
    }

    /// A short, bounded label for the errors metric: the step and the HTTP
    /// code (`apply_409`), or `client` when no answer came (`observe_client`).
    pub fn metric_reason(&self) -> String {
        match (self.step(), self.kube()) {
            (Some(step), Some(kube::Error::Api(status))) => format!("{}_{}", step.as_str(), status.code),
            (Some(step), _) => format!("{}_client", step.as_str()),
            _ => match self {
                Error::MissingField(_) => "missing_field".into(),
                Error::Panicked(_) => "panic".into(),
                _ => "not_owned".into(),
            },
        }
    }

    /// When the object is tried again after this error, where that does
    /// not depend on how often it failed before (see `retry`).
    pub fn fixed_backoff(&self) -> Option<Duration> {
        match self {
            Error::Panicked(_) => Some(PANIC_BACKOFF),
            _ => None,
        }
    }
}

/// How errors and logs name an object: `Job ci/nightly-sdk-1-k3x9q`, or
/// `KataInstall default` for a cluster-scoped kind.
pub fn describe<K: kube::Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{} {ns}/{name}", K::kind(&())),
        None => format!("{} {name}", K::kind(&())),
    }
}

/// Gives a client error the context of the reconcile step it happened in.
pub trait KubeResultExt<T> {
    /// An error while reading `what`.
    fn observing(self, what: impl FnOnce() -> String) -> Result<T, Error>;
    /// An error while doing `action` to `object`.
    fn applying(self, action: &'static str, object: impl FnOnce() -> String) -> Result<T, Error>;
    /// An error while writing the status of `object`.
    fn writing_status(self, object: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> KubeResultExt<T> for Result<T, kube::Error> {
    fn observing(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Observe { what: what(), source })
    }

    fn applying(self, action: &'static str, object: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Apply { action, object: object(), source })
    }

    fn writing_status(self, object: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::WriteStatus { object: object(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: "the server said no".into(),
            ..Default::default()
        }))
    }

    #[test]
    fn an_api_error_names_the_step_action_and_object() {
        let failed: Result<(), _> = Err(api_error(409));
        let e = failed.applying("create", || "Job ci/nightly-sdk-1-k3x9q".into()).unwrap_err();
        assert!(e.to_string().starts_with("create Job ci/nightly-sdk-1-k3x9q: "), "{e}");
        assert!(e.to_string().contains("the server said no"), "{e}");
        assert_eq!(e.metric_reason(), "apply_409");
        let observing: Result<(), _> = Err(api_error(500));
        let e = observing.observing(|| "Jobs of PipelineRun ci/nightly".into()).unwrap_err();
        assert_eq!(e.metric_reason(), "observe_500");
        let status: Result<(), _> = Err(api_error(422));
        assert_eq!(
            status.writing_status(|| "ImageBuild ci/fedora".into()).unwrap_err().metric_reason(),
            "write_status_422"
        );
        assert_eq!(Error::MissingField("metadata.uid").metric_reason(), "missing_field");
    }
}

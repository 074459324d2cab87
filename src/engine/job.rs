//! What a Job and its pods say, whatever the Job is for (a stage attempt, a
//! build, a prune, a smoke client), and the rules every kind applies to them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::duration::later;

/// Slack on top of a Job's timeout before the operator's own clock stops
/// it (the Job's `activeDeadlineSeconds` normally fires first; it does not
/// count the time a pod spends Pending before the Job starts).
pub const TIMEOUT_GRACE: Duration = Duration::from_secs(30);

/// Where a Job stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JobState {
    /// Not finished.
    #[default]
    Active,
    /// Its pod succeeded.
    Succeeded,
    /// Its pod failed (or it hit its deadline).
    Failed,
}

/// What a Job and its pods say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOutcome {
    /// Job name.
    pub name: String,
    /// Active, succeeded or failed.
    pub state: JobState,
    /// When the Job was created: an attempt's clock starts here.
    pub created: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished: Option<DateTime<Utc>>,
    /// The main container's termination message (its outputs file), when the Job succeeded.
    pub outputs: Option<String>,
    /// Why it failed, naming the pod and container where known.
    pub message: Option<String>,
    /// Its newest pod, when one is left (the Job controller deletes them at the deadline).
    pub pod: Option<String>,
    /// IPs of its running pods that are ready, by pod name (a service stage's addresses).
    pub ready_addresses: Vec<String>,
    /// The Job succeeded, but the pod that succeeded is gone (it was deleted
    /// while it ran) and no other pod succeeded: its outputs are unknown.
    pub outputs_lost: bool,
}

/// Why an unfinished attempt failed when its Job is gone.
pub fn disappeared(job: &str) -> String {
    format!("Job {job} disappeared before it finished")
}

/// When the operator's own clock stops a Job created at `created` with
/// `timeout`: the timeout plus [`TIMEOUT_GRACE`].
pub fn stop_deadline(created: DateTime<Utc>, timeout: Duration) -> DateTime<Utc> {
    later(created, timeout.saturating_add(TIMEOUT_GRACE))
}

/// The attempt to take over when the cluster holds a Job for a later attempt
/// than the status knows: the status write after creating it was lost.
/// Taking it over (never creating a second Job) is every planner's rule.
pub fn attempt_to_adopt(known: u32, latest_observed: Option<u32>) -> Option<u32> {
    latest_observed.filter(|&latest| latest > known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testing::t0;

    #[test]
    fn the_stop_deadline_adds_the_grace_and_adoption_needs_a_newer_attempt() {
        assert_eq!(stop_deadline(t0(), Duration::from_secs(60)), t0() + chrono::Duration::seconds(90));
        assert_eq!(attempt_to_adopt(1, Some(2)), Some(2));
        assert_eq!(attempt_to_adopt(2, Some(2)), None);
        assert_eq!(attempt_to_adopt(0, None), None);
        assert_eq!(disappeared("j"), "Job j disappeared before it finished");
    }
}

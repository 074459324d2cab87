//! Planning an ImageBuild again after the API server refused some of a
//! plan's creates: its refused build or prune Job is observed as a failed
//! Job with the server's message, so the build fails (and is not retried by
//! itself). Pure. (The PipelineRun's replan is
//! [`super::pipelinerun::replan`].)

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::build_planner::{plan_build, BuildAction, BuildJob, BuildPlan, BuildView};
use super::job::{JobOutcome, JobState};
pub use super::refusal::refusal_message;
use super::refusal::Refusal;

/// An ImageBuild's Jobs once `actions` were applied: created Jobs are
/// there and active, refused ones failed with the server's message.
pub fn record_applied_builds(
    jobs: &mut Vec<BuildJob>,
    actions: &[BuildAction],
    refused: &BTreeMap<String, Refusal>,
    now: DateTime<Utc>,
) {
    for action in actions {
        let (job_name, suffix, generation, prune) = match action {
            BuildAction::CreateJob(l) => (&l.job_name, &l.suffix, l.generation, false),
            BuildAction::CreatePruneJob(l) => (&l.job_name, &l.suffix, 0, true),
            BuildAction::DeleteJob { name } => {
                jobs.retain(|j| &j.outcome.name != name);
                continue;
            }
        };
        if jobs.iter().any(|j| &j.outcome.name == job_name) {
            continue;
        }
        let mut outcome = JobOutcome { name: job_name.clone(), created: Some(now), ..Default::default() };
        if let Some(refusal) = refused.get(job_name) {
            outcome.state = JobState::Failed;
            outcome.finished = Some(now);
            outcome.message = Some(refusal_message(job_name, refusal));
        }
        let (rebuild_request, image) = match action {
            BuildAction::CreateJob(l) => (l.rebuild_request.clone(), Some(l.image.clone())),
            _ => (None, None),
        };
        jobs.push(BuildJob { suffix: suffix.clone(), generation, outcome, prune, rebuild_request, image });
    }
}

/// Plans an ImageBuild again from `previous`'s status with `jobs` (see
/// [`record_applied_builds`]); Events of both plans are kept, in order.
pub fn replan_build(view: &BuildView, jobs: &[BuildJob], previous: BuildPlan, now: DateTime<Utc>) -> BuildPlan {
    let view = BuildView { status: &previous.status, ..view.clone() };
    let mut next = plan_build(&view, jobs, now);
    let mut notes = previous.notes;
    notes.append(&mut next.notes);
    next.notes = notes;
    next
}

#[cfg(test)]
mod tests;

//! Planning again after the API server refused some of a plan's creates:
//! a refused build or prune Job is observed as a failed Job with the
//! server's message, so the build fails (and is not retried by itself)
//! within the same reconcile. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::plan::{plan, Action, Plan};
use super::view::{BuildJob, View};
use crate::engine::job::{JobOutcome, JobState};
use crate::engine::refusal::refusal_message;
use crate::engine::refusal::Refusal;

/// An ImageBuild's Jobs once `actions` were applied: created Jobs are
/// there and active, deleted ones gone, refused ones failed with the
/// server's message.
pub fn record_applied(
    jobs: &mut Vec<BuildJob>,
    actions: &[Action],
    refused: &BTreeMap<String, Refusal>,
    now: DateTime<Utc>,
) {
    for action in actions {
        let (job_name, suffix, generation, prune) = match action {
            Action::CreateJob(l) => (&l.job_name, &l.suffix, l.generation, false),
            Action::CreatePruneJob(l) => (&l.job_name, &l.suffix, 0, true),
            Action::DeleteJob { name } => {
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
            Action::CreateJob(l) => (l.rebuild_request.clone(), Some(l.image.clone())),
            _ => (None, None),
        };
        jobs.push(BuildJob { suffix: suffix.clone(), generation, outcome, prune, rebuild_request, image });
    }
}

/// Plans an ImageBuild again from `previous`'s status with `jobs` (see
/// [`record_applied`]); Events of both plans are kept, in order.
pub fn replan(view: &View, jobs: &[BuildJob], previous: Plan, now: DateTime<Utc>) -> Plan {
    let view = View { status: &previous.status, ..view.clone() };
    let mut next = plan(&view, jobs, now);
    let mut notes = previous.notes;
    notes.append(&mut next.notes);
    next.notes = notes;
    next
}

//! Planning again after the API server refused some of a plan's creates.
//! The controller applies every action of a plan, collects the creates the
//! server refused for good, and plans once more from the planned status with
//! those refusals observed: the refused stage fails, and fail-fast, gating
//! and finally follow in the same reconcile, as for any failed stage. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::plan::{plan, Action, Plan};
use super::view::{JobObservation, Observed, View};
use crate::engine::job::JobOutcome;
use crate::engine::refusal::Refusal;

/// What the cluster holds once `actions` were applied, except the creates
/// in `refused` (by object name): created Jobs are there and active,
/// deleted ones gone, and the refusals are known.
pub fn record_applied(
    observed: &mut Observed,
    actions: &[Action],
    refused: BTreeMap<String, Refusal>,
    now: DateTime<Utc>,
) {
    for action in actions {
        match action {
            // A Job observed already (a create that met an existing Job of the run) stays as observed.
            Action::CreateJob(launch)
                if !refused.contains_key(&launch.job_name) && observed.job(&launch.stage, launch.attempt).is_none() =>
            {
                observed.jobs.push(JobObservation {
                    stage: launch.stage.clone(),
                    attempt: launch.attempt,
                    outcome: JobOutcome { name: launch.job_name.clone(), created: Some(now), ..Default::default() },
                });
            }
            Action::DeleteJob { name } => observed.jobs.retain(|j| &j.outcome.name != name),
            _ => {}
        }
    }
    observed.refused.extend(refused);
}

/// Plans again from `previous`'s status with what `observed` now holds
/// (see [`record_applied`]). The rerun request was handled by `previous`;
/// Events of both plans are kept, in order.
pub fn replan(run: &View, observed: &Observed, previous: Plan, now: DateTime<Utc>) -> Plan {
    let view = View { status: &previous.status, rerun: None, ..run.clone() };
    let mut next = plan(&view, observed, now);
    let mut notes = previous.notes;
    notes.append(&mut next.notes);
    next.notes = notes;
    next
}

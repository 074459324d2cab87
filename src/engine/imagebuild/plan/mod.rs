//! One reconcile of an ImageBuild, pass by pass. Each pass is its own file
//! and reads and amends the same `Planning`:
//!
//! 1. validate: an invalid spec builds nothing; status says why
//!    (`conclude.rs`) and the plan ends there;
//! 2. `adopt.rs`: build Jobs the status does not list (a lost status write)
//!    become its records;
//! 3. `integrate.rs`: the running build takes its Job's outcome (digest,
//!    failure, timeout);
//! 4. `start.rs`: a build due (first, spec changed, rebuild requested) gets
//!    its Job;
//! 5. `history.rs`: the history keeps the last `keepLast` builds; the Jobs of
//!    the others are deleted and their images pruned;
//! 6. `conclude.rs`: phase and conditions from the history;
//! 7. `retire.rs`: the retention lifecycle of the latest image, and its
//!    prune Job (it may turn `Ready` to `Pruned`, so it follows 6);
//! 8. `notes.rs`: the Events of what changed, and when to look again.

mod adopt;
mod conclude;
mod history;
mod integrate;
mod notes;
mod retire;
mod start;

pub use start::{build_due, BuildTrigger};

use chrono::{DateTime, Utc};

use super::validate::validate;
use super::view::{BuildLaunch, Observed, PruneLaunch, View};
use crate::api::imagebuild::{BuildRecord, ImageBuildStatus};
use crate::engine::wake::Wake;

/// Something to do in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the builder Job.
    CreateJob(Box<BuildLaunch>),
    /// Create the prune Job.
    CreatePruneJob(Box<PruneLaunch>),
    /// Delete a builder Job that must stop.
    DeleteJob { name: String },
}

/// The planner's answer.
pub type Plan = crate::engine::plan::Plan<ImageBuildStatus, Action>;

/// Plans one reconcile of an ImageBuild.
pub fn plan(view: &View, observed: &Observed, now: DateTime<Utc>) -> Plan {
    let mut planning = Planning::new(view, observed, now);
    if let Err(e) = validate(view.spec, view.settings.nested_virt.is_some()) {
        planning.conclude_invalid(&e);
        return planning.finish();
    }
    planning.adopt();
    planning.integrate();
    planning.start();
    planning.keep_history();
    planning.conclude();
    planning.retire();
    planning.finish()
}

/// One reconcile in progress: what the passes read, and what they decided
/// so far.
struct Planning<'a> {
    view: &'a View<'a>,
    observed: &'a Observed,
    now: DateTime<Utc>,
    /// The status being written, from the status as last written.
    status: ImageBuildStatus,
    actions: Vec<Action>,
    wake: Wake,
}

impl<'a> Planning<'a> {
    fn new(view: &'a View<'a>, observed: &'a Observed, now: DateTime<Utc>) -> Self {
        let mut status = view.status.clone();
        status.observed_generation = Some(view.generation);
        Planning { view, observed, now, status, actions: Vec::new(), wake: Wake::new(now) }
    }

    /// The plan: the status and actions decided, the Events of what changed
    /// and the earliest time a pass asked to look again.
    fn finish(self) -> Plan {
        let notes = self.notes();
        Plan { requeue_after: self.wake.requeue_after(), status: self.status, actions: self.actions, notes }
    }
}

/// The reference a build pushed: recorded since the build started; for
/// records older than that, the current output with the build's suffix.
fn record_image(view: &View, record: &BuildRecord) -> String {
    record.image.clone().unwrap_or_else(|| format!("{}:{}", view.spec.output, record.suffix))
}

//! The PipelineRun planner: the run's spec, its last status and what the
//! cluster holds go in; the next status, the actions to apply and the
//! Events to publish come out. Pure and deterministic for a given `now`.
//!
//! One pass, in this order (each step is its own file and `impl` block):
//!
//! 1. validate — an invalid spec creates nothing: the run fails with
//!    `InvalidSpec`, or keeps the result it had (`invalid.rs`);
//! 2. rerun — a finished run asked to rerun a stage resets it and what
//!    follows; a finished run otherwise only waits for its TTL (`rerun.rs`);
//! 3. workspace — make sure the run's claim exists (`workspace.rs`);
//! 4. adopt — take over Jobs the status does not know yet, never create
//!    twice (`adopt.rs`);
//! 5. integrate — fold each running attempt's outcome into its stage:
//!    success, failure and retry, TAP results, refusals (`integrate.rs`), a
//!    service getting ready (`service.rs`), a referenced object (`reference.rs`);
//! 6. concurrency — queue behind or supersede older runs of the group
//!    (`concurrency.rs`); a `Gate` run's place in its queue: reset, merge,
//!    verdict (`gate.rs`, after the stop check);
//! 7. stop — cancel, supersede, timeout or a refused workspace stop
//!    everything (`stop.rs`);
//! 8. fail-fast — a failed gating stage stops the others (`stop.rs`);
//! 9. advance — start every stage whose needs are met (`advance.rs`);
//! 10. tear down services whose dependents are done (`service.rs`);
//! 11. conclude — the run's phase, condition and summary, its TTL
//!     (`conclude.rs`);
//! 12. events — one per stage and run phase change ([`super::events`]).

mod adopt;
mod advance;
mod conclude;
mod concurrency;
mod gate;
mod integrate;
mod invalid;
mod record;
mod reference;
mod rerun;
mod service;
mod stop;
mod workspace;

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use integrate::retry_delay;

use super::dag::Graph;
use super::events;
use super::launch::StageLaunch;
use super::validate::validate;
use super::view::{Observed, View};
use crate::api::pipelinerun::{PipelineRunSpec, PipelineRunStatus, Stage};
use crate::engine::note::Note;
use crate::engine::wake::Wake;

/// Finished attempts kept per stage.
pub const MAX_HISTORY: usize = 10;
/// Seconds before the first retry when neither stage nor defaults say.
pub const DEFAULT_RETRY_DELAY_SECS: u32 = 10;
/// Longest wait between retries.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);
/// How often a queued run looks again whether it may start.
pub const QUEUE_POLL: Duration = Duration::from_secs(3);
/// How often a service stage that is not ready yet looks at its pods.
pub const SERVICE_POLL: Duration = Duration::from_secs(2);
/// How often a stage waiting for an ImageBuild or KataInstall looks again
/// (changes to those objects wake it sooner).
pub const REFERENCE_POLL: Duration = Duration::from_secs(10);

/// Something the controller must do in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the Job for one attempt.
    CreateJob(Box<StageLaunch>),
    /// Delete a Job (and its pods) that must stop.
    DeleteJob { name: String },
    /// Create the run's workspace claim if it does not exist.
    EnsureWorkspace { claim: String, size: String, storage_class: Option<String> },
    /// Mark an older run of the group as superseded by this one.
    Supersede { run: String },
    /// Remove the `gantry.dev/rerun` annotation (it has been handled). The
    /// controller does it only once the status recording the rerun is
    /// written, so a failed write never loses the request.
    ClearRerunAnnotation,
    /// Delete the run itself (its TTL after finishing has passed).
    DeleteRun,
    /// Record that a stage used this ImageBuild's image (its `lastUsed`).
    MarkImageUsed { build: String },
}

/// The planner's answer.
pub type Plan = crate::engine::plan::Plan<PipelineRunStatus, Action>;

/// Plans one reconcile of `run`.
pub fn plan(run: &View, observed: &Observed, now: DateTime<Utc>) -> Plan {
    let mut planner = Planner {
        spec: run.spec,
        run,
        observed,
        now,
        status: run.status.clone(),
        actions: Vec::new(),
        notes: Vec::new(),
        wake: Wake::new(now),
    };
    planner.status.observed_generation = run.generation;
    match validate(run.spec, run.settings.nested_virt.is_some(), &run.settings.notify) {
        Err(e) => planner.invalid(e),
        Ok(graph) => planner.reconcile(&graph),
    }
    planner.finish()
}

/// One reconcile's work in progress: what it read, and the status, actions,
/// Events and wake-ups decided so far. Stages are addressed by their index
/// in `spec.stages` (status entries are aligned to it first).
struct Planner<'a> {
    spec: &'a PipelineRunSpec,
    run: &'a View<'a>,
    observed: &'a Observed,
    now: DateTime<Utc>,
    status: PipelineRunStatus,
    actions: Vec<Action>,
    notes: Vec<Note>,
    wake: Wake,
}

impl Planner<'_> {
    /// The passes over a valid spec, in the order the module documents.
    fn reconcile(&mut self, graph: &Graph) {
        self.align_stage_entries();
        if !self.rerun(graph) {
            return;
        }
        self.ensure_workspace();
        self.adopt_jobs();
        self.integrate_attempts();
        let queued = self.apply_concurrency();
        if let Some(stop) = self.run_stop() {
            self.stop_all(&stop);
            self.conclude(Some(stop));
            return;
        }
        self.fail_fast();
        let gate = self.apply_gate();
        self.advance(graph, queued || gate.hold, gate.merge);
        self.tear_down_services();
        self.conclude(None);
        if queued {
            self.wait_in_queue();
        }
    }

    /// Adds Events for every stage and run phase change, and the wake-up time.
    fn finish(mut self) -> Plan {
        self.notes.extend(events::transitions(self.run.status, &self.status));
        let requeue_after = self.wake.requeue_after();
        Plan { status: self.status, actions: self.actions, notes: self.notes, requeue_after }
    }
}

/// Whether a failure of `stage` fails the run (the default).
fn is_gating(stage: &Stage) -> bool {
    stage.gating.unwrap_or(true)
}

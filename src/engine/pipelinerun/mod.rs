//! The PipelineRun kind's decisions: a run's spec, its last status and what
//! the controller observed go in ([`View`], [`Observed`]); the next status,
//! the actions to apply and the Events to publish come out ([`plan()`]).
//!
//! - [`view`]: what the planner reads.
//! - [`mod@validate`]: the spec's rules (an invalid spec never creates a Job).
//! - [`mod@plan`]: one reconcile's decisions, one file per pass.
//! - [`status`], [`events`]: the `Succeeded` condition and its reasons; the
//!   Events a run publishes.
//! - [`launch`], [`dag`], [`substitute`], [`stage_kind`], [`references`],
//!   [`tap`]: what the passes use (starting an attempt, the stage graph,
//!   `$(...)` substitution, a stage's kind, referenced objects, TAP results).
//! - [`replan`]: planning again after the API server refused a create.
//! - [`outbox`], [`destinations`]: `spec.notify`'s CloudEvents.
//! - [`log_tail`], [`internal_error`]: a stage log's end; the status of a
//!   run the operator failed on.

pub mod dag;
pub mod destinations;
pub mod done_jobs;
pub mod events;
pub mod gate;
pub mod internal_error;
pub mod launch;
pub mod log_tail;
pub mod outbox;
pub mod plan;
pub mod references;
pub mod replan;
pub mod stage_kind;
pub mod status;
pub mod substitute;
pub mod tap;
pub mod validate;
pub mod view;

#[cfg(test)]
mod tests;

pub use plan::{plan, Action, Plan};
pub use status::{reasons, CONDITION_SUCCEEDED};
pub use validate::validate;
pub use view::{needs_observation, Observed, View};

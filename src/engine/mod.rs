//! Pure decisions: spec and observed state in, actions out. No I/O here,
//! so nearly all of Gantry's behaviour is tested without a cluster.

pub mod build_planner;
pub mod conditions;
pub mod dag;
pub mod destinations;
pub mod duration;
pub mod imagebuild;
pub mod internal_error;
pub mod job;
pub mod katainstall;
pub mod launch;
pub mod log_tail;
pub mod naming;
pub mod nested_virt;
pub mod note;
pub mod observed;
pub mod outbox;
pub mod outputs;
pub mod plan;
pub mod planner;
pub mod references;
pub mod replan;
pub mod settings;
pub mod spec_error;
pub mod stage_kind;
pub mod substitute;
pub mod tap;
pub mod text;
pub mod validate;
pub mod wake;

#[cfg(test)]
pub mod testing;

#[cfg(test)]
mod fuzz_tests;

//! Pure decisions: spec and observed state in, actions out. No I/O here,
//! so nearly all of Gantry's behaviour is tested without a cluster.

pub mod conditions;
pub mod duration;
pub mod imagebuild;
pub mod job;
pub mod katainstall;
pub mod naming;
pub mod nested_virt;
pub mod note;
pub mod outputs;
pub mod pipelinerun;
pub mod plan;
pub mod refusal;
pub mod settings;
pub mod shard;
pub mod spec_error;
pub mod text;
pub mod wake;

#[cfg(test)]
pub mod testing;

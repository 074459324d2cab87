//! Tests against the real local cluster (`e2e/cluster.sh up node`).
//! They fail, never skip, when the cluster is missing: `make test` brings it up.

mod config;
mod crds;
mod faults;
mod gate;
mod imagebuild;
mod jobs;
mod katainstall;
mod leader;
mod metrics;
mod notify;
mod operator;
mod ownership;
mod pipelinerun;
mod plugin_actions;
mod plugin_view;
mod receiver;
mod registry;
mod samples;
mod sharding;
mod soak;
mod support;

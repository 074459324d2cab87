//! Gantry: a Kubernetes operator for image-build and integration-test
//! pipelines. See `README.md` for the user's view and `../shared/design.md`
//! for the architecture: `api` (the CRDs), `engine` (pure decisions),
//! `resources` (pure manifest builders), `controllers` (thin I/O).

pub mod api;
pub mod client;
pub mod config;
pub mod controllers;
pub mod crdgen;
pub mod engine;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod resources;
pub mod telemetry;

//! The PipelineRun planner's scenarios, driven through a simulated cluster.

mod fuzz;
mod replan;
mod scenarios;
mod terminates;

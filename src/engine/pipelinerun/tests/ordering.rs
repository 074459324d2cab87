//! Stages run in dependency order, finally stages last, and every transition is an Event.

use super::*;

#[test]
fn stages_run_in_dependency_order_and_the_run_succeeds() {
    let mut sim =
        Sim::new(spec(vec![stage("b", &["a"]), stage("a", &[]), stage("c", &["a"]), stage("d", &["b", "c"])]));
    sim.step();
    assert_eq!(sim.running(), ["a"]);
    assert_eq!(sim.status.phase, Some(RunPhase::Running));
    assert_eq!(sim.status.progress.as_deref(), Some("0/4"));
    assert_eq!(sim.condition(), ("Unknown".into(), "Running".into()));
    sim.succeed("a");
    sim.step();
    assert_eq!(sim.running(), ["b", "c"]);
    assert_eq!(sim.status.current_stage.as_deref(), Some("b,c"));
    sim.succeed("b");
    sim.step();
    assert_eq!(sim.running(), ["c"], "d waits for c");
    sim.succeed("c");
    sim.step();
    assert_eq!(sim.running(), ["d"]);
    sim.succeed("d");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    assert_eq!(sim.condition(), ("True".into(), "Succeeded".into()));
    assert_eq!(sim.status.progress.as_deref(), Some("4/4"));
    assert!(sim.status.completion_time.is_some());
    assert_eq!(sim.created_jobs, [job("a", 1), job("b", 1), job("c", 1), job("d", 1)]);
    // A finished run plans nothing more.
    let plan = sim.step().clone();
    assert!(plan.actions.is_empty());
    assert!(plan.notes.is_empty());
}

#[test]
fn finally_stages_wait_for_everything_and_run_after_failure() {
    let mut report = stage("report", &[]);
    report.finally = true;
    let mut sim = Sim::new(spec(vec![stage("a", &[]), stage("b", &["a"]), report]));
    sim.step();
    assert_eq!(sim.running(), ["a"]);
    sim.fail("a");
    sim.step();
    assert_eq!(sim.running(), ["report"]);
    sim.succeed("report");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
}

#[test]
fn events_report_every_stage_transition() {
    let mut sim = Sim::new(spec(vec![stage("a", &[])]));
    sim.step();
    sim.succeed("a");
    sim.step();
    let reasons: Vec<&str> = sim.notes.iter().map(|n| n.reason.as_str()).collect();
    assert_eq!(reasons, ["StageStarted", "RunRunning", "StageSucceeded", "RunSucceeded"]);
}

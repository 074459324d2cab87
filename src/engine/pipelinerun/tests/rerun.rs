//! The `gantry.dev/rerun` annotation: what is reset, what stays, and a request never lost or doubled.

use super::*;

#[test]
fn rerun_resets_the_stage_and_downstream_keeping_earlier_attempts() {
    let mut sim = Sim::new(spec(vec![stage("a", &[]), stage("b", &["a"]), stage("c", &["b"]), stage("x", &["a"])]));
    sim.step();
    sim.succeed("a");
    sim.step();
    sim.succeed("b");
    sim.succeed("x");
    sim.step();
    sim.succeed("c");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    sim.rerun = Some("b".into());
    sim.step();
    assert!(sim.rerun.is_none(), "the annotation is cleared");
    assert_eq!(sim.running(), ["b"]);
    assert_eq!(sim.phase("c"), StagePhase::Pending);
    assert_eq!(sim.phase("a"), StagePhase::Succeeded, "upstream stays");
    assert_eq!(sim.phase("x"), StagePhase::Succeeded, "siblings stay");
    assert_eq!(sim.stage("b").attempt, 2);
    assert_eq!(sim.status.phase, Some(RunPhase::Running));
    assert_eq!(sim.condition().0, "Unknown");
    sim.succeed("b");
    sim.step();
    sim.succeed("c");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    assert_eq!(sim.created_jobs, [job("a", 1), job("b", 1), job("x", 1), job("c", 1), job("b", 2), job("c", 2)]);
    let history: Vec<u32> = sim.stage("b").history.iter().map(|h| h.attempt).collect();
    assert_eq!(history, [1, 2], "earlier attempts stay visible");
}

#[test]
fn a_rerun_whose_status_write_failed_is_not_lost_and_makes_no_second_job() {
    let mut sim = Sim::new(spec(vec![stage("a", &[]), stage("b", &["a"])]));
    sim.step();
    sim.succeed("a");
    sim.step();
    sim.succeed("b");
    sim.step();
    let finished = sim.status.clone();
    sim.rerun = Some("b".into());
    sim.step();
    assert_eq!(sim.created_jobs.last(), Some(&job("b", 2)));
    // The status write failed, so the controller kept the annotation (it
    // clears it only after the write): the next reconcile sees both again.
    sim.status = finished;
    sim.rerun = Some("b".into());
    sim.step(); // panics if b's second Job were created twice
    assert_eq!(sim.running(), ["b"], "the rerun still happens");
    assert_eq!(sim.stage("b").attempt, 2, "the Job created before the lost write is adopted");
    assert!(sim.rerun.is_none());
    sim.succeed("b");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    assert_eq!(sim.created_jobs, [job("a", 1), job("b", 1), job("b", 2)]);
}

#[test]
fn rerun_of_a_running_run_or_unknown_stage_is_ignored_with_a_warning() {
    let mut sim = Sim::new(spec(vec![stage("a", &[])]));
    sim.step();
    sim.rerun = Some("a".into());
    sim.step();
    assert!(sim.rerun.is_none());
    assert!(sim.notes.iter().any(|n| n.reason == "RerunIgnored" && n.warning));
    assert_eq!(sim.created_jobs, [job("a", 1)]);
    sim.succeed("a");
    sim.step();
    sim.rerun = Some("nope".into());
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    assert!(sim.notes.iter().filter(|n| n.reason == "RerunIgnored").count() == 2);
}

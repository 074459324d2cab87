//! What a failed stage does to the others: fail-fast, independent branches, non-gating stages.

use super::*;

#[test]
fn fail_fast_cancels_running_siblings_and_pending_stages_but_runs_finally() {
    let mut report = stage("report", &[]);
    report.finally = true;
    let mut s = spec(vec![
        stage("build", &[]),
        stage("publish", &["build"]),
        stage("install", &["publish"]),
        stage("systest", &[]),
        report,
    ]);
    s.fail_fast = true;
    let mut sim = Sim::new(s);
    sim.step();
    assert_eq!(sim.running(), ["build", "systest"]);
    sim.fail("build");
    sim.step();
    assert_eq!(sim.phase("build"), StagePhase::Failed);
    assert_eq!(sim.phase("systest"), StagePhase::Cancelled, "the running sibling is stopped");
    assert_eq!(sim.deleted_jobs, [job("systest", 1)]);
    assert_eq!(sim.phase("publish"), StagePhase::Cancelled);
    assert!(sim.stage("systest").message.as_deref().unwrap().contains("fail-fast: stage build failed"));
    assert_eq!(sim.running(), ["report"], "finally stages still run");
    sim.succeed("report");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
}

#[test]
fn without_fail_fast_independent_branches_finish_and_dependents_are_cancelled() {
    let mut sim = Sim::new(spec(vec![stage("build", &[]), stage("publish", &["build"]), stage("systest", &[])]));
    sim.step();
    sim.fail("build");
    sim.step();
    assert_eq!(sim.phase("publish"), StagePhase::Cancelled);
    assert_eq!(sim.phase("systest"), StagePhase::Running, "the independent branch goes on");
    sim.succeed("systest");
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
}

#[test]
fn a_non_gating_failure_does_not_fail_the_run_and_skips_its_dependents() {
    let mut optional = stage("arm64", &[]);
    optional.gating = Some(false);
    let mut sim = Sim::new(spec(vec![stage("amd64", &[]), optional, stage("arm64-upload", &["arm64"])]));
    sim.step();
    sim.succeed("amd64");
    sim.fail("arm64");
    sim.step();
    assert_eq!(sim.phase("arm64"), StagePhase::Failed);
    assert_eq!(sim.phase("arm64-upload"), StagePhase::Skipped);
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
    assert!(sim.status.message.as_deref().unwrap().contains("1 non-gating failed"));
}

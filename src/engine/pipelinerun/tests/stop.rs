//! What stops a run or a stage: cancel, the run's timeout, a stage's timeout and the operator's clock, the TTL.

use super::*;

#[test]
fn cancel_stops_every_job_and_ends_cancelled() {
    let mut report = stage("report", &[]);
    report.finally = true;
    let mut sim = Sim::new(spec(vec![stage("a", &[]), stage("b", &[]), stage("c", &["a"]), report]));
    sim.step();
    sim.spec.cancel = true;
    sim.step();
    assert_eq!(sim.deleted_jobs, [job("a", 1), job("b", 1)]);
    for s in ["a", "b", "c", "report"] {
        assert_eq!(sim.phase(s), StagePhase::Cancelled, "{s}");
    }
    assert_eq!(sim.status.phase, Some(RunPhase::Cancelled));
    assert_eq!(sim.condition(), ("False".into(), "Cancelled".into()));
}

#[test]
fn the_run_timeout_counts_from_creation_and_covers_pending_time() {
    let mut s = spec(vec![stage("a", &[]), stage("b", &["a"])]);
    s.timeout = Some("10m".into());
    let mut sim = Sim::new(s);
    let plan = sim.step().clone();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(600)));
    sim.advance(600);
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
    assert_eq!(sim.condition(), ("False".into(), "TimedOut".into()));
    assert_eq!(sim.deleted_jobs, [job("a", 1)]);
}

#[test]
fn a_stage_stuck_pending_past_its_timeout_is_stopped_by_the_operator_clock() {
    let mut slow = stage("a", &[]);
    slow.timeout = Some("1m".into());
    let mut sim = Sim::new(spec(vec![slow]));
    sim.step();
    assert_eq!(sim.launches()[0].timeout, Some(Duration::from_secs(60)), "activeDeadlineSeconds is set");
    sim.advance(60);
    sim.step();
    assert_eq!(sim.phase("a"), StagePhase::Running, "the Job's own deadline gets a grace period");
    sim.advance(30);
    sim.step();
    assert_eq!(sim.phase("a"), StagePhase::Failed);
    assert_eq!(sim.deleted_jobs, [job("a", 1)]);
    assert!(sim.stage("a").message.as_deref().unwrap().contains("timed out after 1m"));
}

#[test]
fn the_admins_default_timeout_applies_when_a_run_sets_none() {
    let mut sim = Sim::new(spec(vec![stage("a", &[])]));
    sim.settings.default_stage_timeout = Some(Duration::from_secs(7200));
    sim.step();
    assert_eq!(sim.launches()[0].timeout, Some(Duration::from_secs(7200)));
}

#[test]
fn ttl_deletes_the_run_after_it_finished() {
    let mut s = spec(vec![stage("a", &[])]);
    s.ttl_seconds_after_finished = Some(60);
    let mut sim = Sim::new(s);
    sim.step();
    sim.succeed("a");
    let plan = sim.step().clone();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(60)));
    sim.advance(59);
    assert!(!sim.step().actions.contains(&Action::DeleteRun));
    sim.advance(1);
    assert!(sim.step().actions.contains(&Action::DeleteRun));
}

//! Failed attempts: retries with backoff, failures explained, vanished Jobs, and adoption after a lost status write.

use super::*;

#[test]
fn a_failed_attempt_is_retried_with_backoff_and_history_is_kept() {
    let mut flaky = stage("test", &[]);
    flaky.retries = Some(2);
    flaky.retry_delay_seconds = Some(5);
    let mut sim = Sim::new(spec(vec![flaky]));
    sim.step();
    sim.fail("test");
    let plan = sim.step().clone();
    assert_eq!(sim.phase("test"), StagePhase::Waiting);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(5)));
    assert!(sim.notes.iter().any(|n| n.reason == "StageRetrying"));
    sim.advance(4);
    sim.step();
    assert_eq!(sim.phase("test"), StagePhase::Waiting, "the delay has not passed");
    sim.advance(1);
    sim.step();
    assert_eq!(sim.phase("test"), StagePhase::Running);
    assert_eq!(sim.stage("test").attempt, 2);
    sim.fail("test");
    let plan = sim.step().clone();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(10)), "the delay doubles");
    sim.advance(10);
    sim.step();
    sim.fail("test");
    sim.step();
    assert_eq!(sim.phase("test"), StagePhase::Failed, "2 retries used up");
    assert_eq!(sim.created_jobs, [job("test", 1), job("test", 2), job("test", 3)]);
    let history: Vec<u32> = sim.stage("test").history.iter().map(|h| h.attempt).collect();
    assert_eq!(history, [1, 2, 3]);
    assert_eq!(sim.status.phase, Some(RunPhase::Failed));
    assert_eq!(sim.condition(), ("False".into(), "Failed".into()));
    assert!(sim.status.message.as_deref().unwrap().contains("exited with code 1"));
}

#[test]
fn a_failure_whose_pods_are_gone_is_explained_once_before_it_is_recorded() {
    let mut sim = Sim::new(spec(vec![stage("pull", &[]), stage("after", &["pull"])]));
    sim.step();
    sim.finish("pull", JobState::Failed, "");
    let job = sim.observed.jobs.iter_mut().find(|j| j.stage == "pull").unwrap();
    job.outcome.pod = None;
    job.outcome.message = Some("DeadlineExceeded: Job was active longer than specified deadline".into());
    let wanted = |sim: &Sim| failures_to_explain(&sim.view(&sim.status), &sim.observed);
    assert_eq!(wanted(&sim), [self::job("pull", 1)]);
    let job = sim.observed.jobs.iter_mut().find(|j| j.stage == "pull").unwrap();
    job.outcome.message.as_mut().unwrap().push_str("; last pod event: Failed: Failed to pull image");
    sim.step();
    assert_eq!(sim.phase("pull"), StagePhase::Failed);
    assert!(sim.stage("pull").message.as_deref().unwrap().ends_with("last pod event: Failed: Failed to pull image"));
    assert!(wanted(&sim).is_empty(), "a recorded failure is not explained again");
}

#[test]
fn a_deleted_job_counts_as_a_failed_attempt() {
    let mut sim = Sim::new(spec(vec![stage("a", &[])]));
    sim.step();
    sim.observed.jobs.clear();
    sim.step();
    assert_eq!(sim.phase("a"), StagePhase::Failed);
    assert!(sim.stage("a").message.as_deref().unwrap().contains("disappeared"));
}

#[test]
fn a_lost_status_write_never_creates_a_second_job() {
    let mut sim = Sim::new(spec(vec![stage("a", &[]), stage("b", &["a"])]));
    sim.step();
    // The operator crashed after creating the Job but before writing status.
    sim.status = PipelineRunStatus::default();
    sim.step();
    assert_eq!(sim.created_jobs, [job("a", 1)], "the existing Job is adopted");
    assert_eq!(sim.phase("a"), StagePhase::Running);
    sim.succeed("a");
    sim.status = PipelineRunStatus::default();
    sim.step();
    assert_eq!(sim.phase("a"), StagePhase::Succeeded, "the result is not lost");
    assert_eq!(sim.created_jobs, [job("a", 1), job("b", 1)]);
}

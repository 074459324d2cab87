//! Concurrency groups: queueing behind older runs, superseding them.

use super::*;

fn member(name: &str, created_secs: i64, finished: bool) -> GroupMember {
    GroupMember {
        name: name.into(),
        created: t0() + chrono::Duration::seconds(created_secs),
        started: None,
        finished,
        superseded: false,
        policy: ConcurrencyPolicy::Queue,
        revision: None,
        phase: None,
        gate_verdict: None,
        completed: None,
    }
}

#[test]
fn queue_waits_for_older_runs_of_the_group() {
    let mut s = spec(vec![stage("a", &[])]);
    s.concurrency = Some(Concurrency { group: "main".into(), policy: ConcurrencyPolicy::Queue, window: None });
    let mut sim = Sim::new(s);
    sim.observed.group = vec![member("older", -10, false), member("newer", 10, false)];
    let plan = sim.step().clone();
    assert_eq!(sim.status.phase, Some(RunPhase::Queued));
    assert_eq!(sim.condition(), ("Unknown".into(), "Queued".into()));
    assert!(sim.created_jobs.is_empty());
    assert_eq!(plan.requeue_after, Some(QUEUE_POLL));
    sim.observed.group[0].finished = true;
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Running), "the newer run does not block an older one");
    assert_eq!(sim.created_jobs, [job("a", 1)]);
}

#[test]
fn within_the_same_second_a_started_run_counts_as_older() {
    let mut s = spec(vec![stage("a", &[])]);
    s.concurrency = Some(Concurrency { group: "pr-42".into(), policy: ConcurrencyPolicy::CancelRunning, window: None });
    let mut sim = Sim::new(s);
    // Same creation second; "zzz" sorts after "run" by name but already runs.
    let mut running = member("zzz", 0, false);
    running.started = Some(t0());
    sim.observed.group = vec![running];
    let plan = sim.step().clone();
    assert!(plan.actions.contains(&Action::Supersede { run: "zzz".into() }));
}

#[test]
fn cancel_running_supersedes_older_runs_and_a_superseded_run_cancels() {
    let mut s = spec(vec![stage("a", &[])]);
    s.concurrency = Some(Concurrency { group: "pr-42".into(), policy: ConcurrencyPolicy::CancelRunning, window: None });
    let mut sim = Sim::new(s);
    sim.observed.group = vec![member("older", -10, false), member("done", -20, true)];
    let plan = sim.step().clone();
    assert!(plan.actions.contains(&Action::Supersede { run: "older".into() }));
    assert!(!plan.actions.contains(&Action::Supersede { run: "done".into() }));
    assert_eq!(sim.running(), ["a"]);
    sim.superseded_by = Some("newest".into());
    sim.step();
    assert_eq!(sim.status.phase, Some(RunPhase::Cancelled));
    assert!(sim.status.message.as_deref().unwrap().contains("superseded by run newest"));
}

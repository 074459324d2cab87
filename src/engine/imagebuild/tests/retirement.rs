//! The latest image's lifecycle: Used, Obsolete, one prune Job, Pruned;
//! use resets the clock and permanent images stay.

use super::*;

#[test]
fn an_unused_image_goes_obsolete_then_one_prune_job_makes_it_pruned() {
    let mut sim = retiring(false);
    assert_eq!(sim.status.lifecycle, Some(Lifecycle::Used));
    assert_eq!(sim.step().requeue_after, Some(Duration::from_secs(60)), "wakes when it turns obsolete");
    sim.now = t(60);
    sim.step();
    assert_eq!(sim.status.lifecycle, Some(Lifecycle::Obsolete));
    assert_eq!(sim.created.len(), 1, "no prune before pruneAfter");
    sim.now = t(90);
    let plan = sim.step();
    let Action::CreatePruneJob(prune) = &plan.actions[0] else { panic!("{:?}", plan.actions) };
    assert_eq!(prune.image, "10.88.0.1:5000/fedora-cache:c20261121t150000z");
    assert_eq!(prune.digest.as_deref(), Some(DIGEST));
    sim.now = t(95);
    sim.step();
    assert_eq!(sim.created.len(), 2, "one prune Job");
    let job = sim.jobs.iter_mut().find(|j| j.prune).unwrap();
    job.outcome.state = JobState::Succeeded;
    sim.step();
    assert_eq!(sim.status.lifecycle, Some(Lifecycle::Pruned));
    assert_eq!(sim.condition("Ready"), ("False".into(), "Pruned".into()));
    sim.now = t(500);
    assert!(sim.step().actions.is_empty());
    let reasons: Vec<&str> = sim.notes.iter().map(|n| n.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["BuildStarted", "BuildSucceeded", "Used", "Obsolete", "PruneStarted", "PruneSucceeded", "Pruned"]
    );
}

#[test]
fn use_resets_the_clock_and_a_failed_prune_is_reported_not_retried() {
    let mut sim = retiring(false);
    sim.now = t(50);
    sim.status.last_used = Some(t(50));
    sim.now = t(100);
    sim.step();
    assert_eq!(sim.status.lifecycle, Some(Lifecycle::Used), "used at 50s: obsolete only at 110s");
    sim.now = t(140);
    sim.step();
    assert_eq!(sim.created.len(), 2, "prune due at 140s");
    let job = sim.jobs.iter_mut().find(|j| j.prune).unwrap();
    job.outcome.state = JobState::Failed;
    job.outcome.message = Some("container prune in pod p exited with code 1 (Error)".into());
    sim.step();
    sim.now = t(900);
    sim.step();
    assert_eq!(sim.created.len(), 2, "not retried");
    assert_eq!(sim.status.lifecycle, Some(Lifecycle::Obsolete));
    let prune = sim.status.prune.clone().unwrap();
    assert_eq!(prune.phase, PrunePhase::Failed);
    assert!(prune.message.unwrap().contains("pod p"));
    assert!(sim.notes.iter().any(|n| n.reason == "PruneFailed" && n.warning));
}

#[test]
fn a_permanent_image_is_never_obsoleted_or_pruned() {
    let mut sim = retiring(true);
    sim.now = t(86_400 * 365);
    sim.step();
    assert_eq!(sim.status.lifecycle, Some(Lifecycle::Permanent));
    assert_eq!(sim.created.len(), 1);
}

//! Jobs the status does not know (a lost status write, a stale cache) are
//! taken over, never created twice; Jobs of builds that left the history
//! are not taken back.

use super::*;

#[test]
fn a_lost_status_write_adopts_the_job_instead_of_building_twice() {
    let mut sim = Sim::new(spec());
    sim.step();
    sim.status = ImageBuildStatus::default();
    sim.now = t(3);
    sim.step();
    assert_eq!(sim.created.len(), 1);
    assert_eq!(sim.status.phase, Some(BuildPhase::Building));
}

/// The reconciler reads the ImageBuild from a cache that can lag behind
/// its own status write; the Jobs it lists are current. A build started
/// for a rebuild request must not look like an unanswered request then.
#[test]
fn a_stale_status_after_a_requested_rebuild_does_not_build_again() {
    let mut sim = Sim::built(spec());
    let before_request = sim.status.clone();
    sim.rebuild = Some("weekly-1".into());
    sim.now = t(10);
    sim.step();
    assert_eq!(sim.created.len(), 2);
    sim.now = t(15);
    sim.build_succeeds();
    sim.status = before_request;
    sim.step();
    sim.step();
    assert_eq!(sim.created.len(), 2, "the requested build is adopted, not repeated");
    assert_eq!(sim.status.handled_rebuild.as_deref(), Some("weekly-1"));
    assert_eq!(sim.status.phase, Some(BuildPhase::Ready));
}

#[test]
fn a_job_of_a_build_that_left_the_history_is_not_adopted_again() {
    let mut sim = Sim::built(keeping(1, false));
    let old = sim.jobs[0].clone();
    sim.rebuild = Some("again".into());
    sim.now = t(60);
    sim.step();
    sim.build_succeeds();
    sim.step();
    let latest = sim.status.latest_image.clone();
    // Its deletion has not gone through yet.
    sim.jobs.insert(0, old);
    sim.now = t(61);
    sim.step();
    assert_eq!(sim.status.builds.len(), 1);
    assert_eq!(sim.status.latest_image, latest, "the old build did not come back as the latest");
}

#[test]
fn a_lost_status_write_adopts_the_prune_job() {
    let mut sim = retiring(false);
    sim.now = t(90);
    sim.step();
    sim.status.prune = None;
    sim.now = t(91);
    sim.step();
    assert_eq!(sim.created.len(), 2, "the existing prune Job is adopted");
    assert_eq!(sim.status.prune.as_ref().unwrap().phase, PrunePhase::Running);
}

//! A build from start to end: its Job, its digest, its failure or timeout,
//! and what starts the next one.

use super::*;

#[test]
fn the_first_build_runs_and_its_digest_lands_in_status() {
    let mut sim = Sim::new(spec());
    let plan = sim.step();
    let Action::CreateJob(launch) = &plan.actions[0] else { panic!() };
    assert_eq!(launch.image, "10.88.0.1:5000/fedora-cache:c20261121t150000z");
    assert_eq!(sim.status.phase, Some(BuildPhase::Building));
    assert_eq!(sim.condition("Building"), ("True".into(), "Building".into()));
    sim.now = t(30);
    sim.build_succeeds();
    sim.step();
    assert_eq!(sim.status.phase, Some(BuildPhase::Ready));
    assert_eq!(sim.status.latest_image.as_deref(), Some("10.88.0.1:5000/fedora-cache:c20261121t150000z"));
    assert_eq!(sim.status.digest.as_deref(), Some(DIGEST));
    assert_eq!(sim.condition("Ready"), ("True".into(), "Built".into()));
    assert_eq!(sim.status.lifecycle, Some(Lifecycle::Used));
    assert!(sim.step().actions.is_empty(), "nothing more to do: no rebuild loop");
    let reasons: Vec<&str> = sim.notes.iter().map(|n| n.reason.as_str()).collect();
    assert_eq!(reasons, ["BuildStarted", "BuildSucceeded", "Used"]);
}

#[test]
fn a_spec_change_rebuilds_exactly_once_and_a_failure_is_not_retried() {
    let mut sim = Sim::built(spec());
    sim.generation = 2;
    sim.now = t(60);
    sim.step();
    sim.step();
    assert_eq!(sim.created.len(), 2, "one new build for the new generation");
    sim.finish(JobState::Failed, "");
    sim.step();
    sim.now = t(120);
    sim.step();
    assert_eq!(sim.created.len(), 2, "a failed build is not retried by itself");
    assert_eq!(sim.status.phase, Some(BuildPhase::Failed));
    assert_eq!(sim.condition("Ready"), ("True".into(), "LatestBuildFailed".into()), "the old image stays usable");
    let failed = sim.status.builds.last().unwrap();
    assert!(failed.message.as_deref().unwrap().contains("container build in pod x exited with code 2"));
}

#[test]
fn a_rebuild_request_is_honoured_once_per_value() {
    let mut sim = Sim::built(spec());
    sim.rebuild = Some("monday".into());
    sim.now = t(5);
    sim.step();
    sim.build_succeeds();
    sim.step();
    sim.step();
    assert_eq!(sim.created.len(), 2);
    sim.rebuild = Some("tuesday".into());
    sim.now = t(10);
    sim.step();
    assert_eq!(sim.created.len(), 3);
    assert_ne!(sim.created[1], sim.created[2], "each build has its own suffix");
}

#[test]
fn a_missing_or_malformed_digest_fails_the_build() {
    for outputs in ["", "digest=latest\n", "tag=x\n"] {
        let mut sim = Sim::new(spec());
        sim.step();
        sim.finish(JobState::Succeeded, outputs);
        sim.step();
        assert_eq!(sim.status.phase, Some(BuildPhase::Failed), "{outputs:?}");
        assert_eq!(sim.condition("Ready").1, "BuildFailed");
    }
}

#[test]
fn a_build_stuck_pending_past_its_timeout_fails_saying_so() {
    let mut s = spec();
    s.timeout = Some("10m".into());
    let mut sim = Sim::new(s);
    sim.step();
    sim.now = t(600 + 30);
    let plan = sim.step();
    assert!(matches!(plan.actions[0], Action::DeleteJob { .. }));
    let message = sim.status.builds[0].message.clone().unwrap();
    assert!(message.contains("did not finish within 10m"), "{message}");
}

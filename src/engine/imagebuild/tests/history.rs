//! `retention.keepLast`: the history's length, the Jobs and images of the
//! builds that leave it, and the build of the image in use.

use super::*;

#[test]
fn history_is_capped_at_keep_last() {
    let mut sim = Sim::new(keeping(2, false));
    for i in 0..4 {
        sim.rebuild = Some(format!("r{i}"));
        sim.now = t(i * 10);
        sim.step();
        sim.build_succeeds();
        sim.step();
    }
    assert_eq!(sim.status.builds.len(), 2);
    assert_eq!(sim.created.len(), 4);
    assert_eq!(sim.jobs.len(), 2, "the Jobs of builds that left the history are deleted");
    assert_eq!(sim.status.builds[1].job_name, sim.created[3], "the newest build stays the latest");
}

#[test]
fn builds_beyond_keep_last_have_their_images_pruned_but_never_the_latest() {
    let mut sim = Sim::new(keeping(2, true));
    let mut suffixes = Vec::new();
    for i in 0..3 {
        sim.rebuild = Some(format!("r{i}"));
        sim.now = t(i * 10);
        sim.step();
        sim.build_succeeds();
        sim.step();
        suffixes.push(sim.status.builds.last().unwrap().suffix.clone());
    }
    let pruned: Vec<&str> = sim.jobs.iter().filter(|j| j.prune).map(|j| j.suffix.as_str()).collect();
    assert_eq!(pruned, [suffixes[0].as_str()], "only the build that left the history");
    assert!(sim.notes.iter().any(|n| n.reason == "PruneStarted" && n.message.contains("retention.keepLast")));
    assert!(sim.status.prune.is_none(), "the latest image is untouched");
    assert_eq!(sim.status.lifecycle, Some(Lifecycle::Used));
}

#[test]
fn after_an_output_change_old_builds_keep_and_prune_their_own_reference() {
    let mut sim = Sim::built(keeping(1, true));
    let first = sim.status.latest_image.clone().unwrap();
    assert!(first.starts_with("10.88.0.1:5000/fedora-cache:"), "{first}");

    sim.spec.output = "10.88.0.1:5000/fedora-next".into();
    sim.generation = 2;
    sim.now = t(10);
    sim.step();
    assert_eq!(sim.status.builds.len(), 2, "the build of the image in use stays while the new one runs");
    assert_eq!(sim.status.builds[0].image.as_deref(), Some(first.as_str()));
    assert_eq!(sim.status.latest_image.as_deref(), Some(first.as_str()));

    sim.now = t(20);
    sim.build_succeeds();
    let plan = sim.step().clone();
    let latest = sim.status.latest_image.clone().unwrap();
    assert!(latest.starts_with("10.88.0.1:5000/fedora-next:"), "{latest}");
    let pruned: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreatePruneJob(p) => Some(p.image.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(pruned, [first.as_str()], "the old image is deleted under the name it was pushed as");
}

#[test]
fn the_build_of_the_image_in_use_stays_until_a_newer_one_is_ready() {
    let mut sim = Sim::built(keeping(1, true));
    let first = sim.status.latest_image.clone().unwrap();
    sim.rebuild = Some("2".into());
    sim.now = t(10);
    sim.step();
    assert_eq!(sim.status.builds.len(), 2, "the running build and the one of the image in use");
    sim.finish(JobState::Failed, "");
    sim.step();
    assert_eq!(sim.status.builds.len(), 2, "a failed rebuild does not push out the image in use");
    assert!(sim.jobs.iter().all(|j| !j.prune));
    sim.rebuild = Some("3".into());
    sim.now = t(20);
    sim.step();
    sim.build_succeeds();
    sim.step();
    assert_eq!(sim.status.builds.len(), 1);
    let pruned: Vec<String> =
        sim.jobs.iter().filter(|j| j.prune).map(|j| format!("10.88.0.1:5000/fedora-cache:{}", j.suffix)).collect();
    assert_eq!(pruned, [first], "the old image goes once the new one is ready");
}

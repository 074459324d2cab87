//! `imageBuild` and `kataInstall` stages wait for their object and hand on its outputs.

use super::*;

fn image_build_stage(name: &str, build: &str) -> Stage {
    Stage {
        name: name.into(),
        image_build: Some(crate::api::pipelinerun::ObjectRef { name: build.into() }),
        ..Default::default()
    }
}

#[test]
fn an_image_build_stage_waits_for_the_build_and_hands_on_its_image() {
    let mut consumer = stage("test", &["sdk"]);
    consumer.run.as_mut().unwrap().image = Some("$(stages.sdk.outputs.image)".into());
    let mut sim = Sim::new(spec(vec![image_build_stage("sdk", "sdk-image"), consumer]));
    sim.step();
    assert_eq!(sim.phase("sdk"), StagePhase::Running);
    assert!(sim.stage("sdk").message.as_deref().unwrap().contains("sdk-image, which does not exist"));
    assert!(sim.created_jobs.is_empty(), "an imageBuild stage runs no Job");
    assert_eq!(sim.last.as_ref().unwrap().requeue_after, Some(REFERENCE_POLL));
    sim.observed
        .image_builds
        .insert("sdk-image".into(), Referenced::Waiting("waiting for ImageBuild sdk-image (Building)".into()));
    sim.advance(5);
    sim.step();
    assert!(sim.stage("sdk").message.as_deref().unwrap().contains("(Building)"));
    let outputs = BTreeMap::from([
        ("image".to_string(), "reg/sdk:c1".to_string()),
        ("digest".to_string(), "sha256:ab".to_string()),
    ]);
    sim.observed.image_builds.insert("sdk-image".into(), Referenced::Ready(outputs));
    sim.advance(5);
    let plan = sim.step().clone();
    assert_eq!(sim.phase("sdk"), StagePhase::Succeeded);
    assert_eq!(sim.stage("sdk").outputs["digest"], "sha256:ab");
    assert!(plan.actions.contains(&Action::MarkImageUsed { build: "sdk-image".into() }), "the build was used");
    assert_eq!(sim.launches()[0].image, "reg/sdk:c1", "the next stage runs the built image in the same pass");
}

#[test]
fn a_referenced_object_that_fails_or_never_comes_fails_the_stage() {
    let mut sim = Sim::new(spec(vec![image_build_stage("sdk", "sdk-image")]));
    sim.step();
    sim.observed
        .image_builds
        .insert("sdk-image".into(), Referenced::Failed("ImageBuild sdk-image failed: exit 2".into()));
    sim.step();
    assert_eq!(sim.phase("sdk"), StagePhase::Failed);
    assert!(sim.status.message.as_deref().unwrap().contains("exit 2"));

    let mut kata = Stage {
        name: "kata".into(),
        kata_install: Some(crate::api::pipelinerun::ObjectRef { name: "kata".into() }),
        timeout: Some("5m".into()),
        ..Default::default()
    };
    kata.needs = vec![];
    let mut sim = Sim::new(spec(vec![kata]));
    sim.step();
    sim.advance(299);
    sim.step();
    assert_eq!(sim.phase("kata"), StagePhase::Running);
    sim.advance(1);
    sim.step();
    assert_eq!(sim.phase("kata"), StagePhase::Failed);
    assert!(sim
        .stage("kata")
        .message
        .as_deref()
        .unwrap()
        .starts_with("timed out after 5m: waiting for KataInstall kata"));
}

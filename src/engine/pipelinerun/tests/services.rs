//! Service stages: ready when every pod is, up while needed, torn down after their last dependent.

use super::*;

fn make_ready(sim: &mut Sim, stage: &str, addresses: &[&str]) {
    let attempt = sim.observed.latest_attempt(stage).unwrap();
    let job = sim.observed.jobs.iter_mut().find(|j| j.stage == stage && j.attempt == attempt).unwrap();
    job.outcome.ready_addresses = addresses.iter().map(|s| s.to_string()).collect();
}

#[test]
fn a_service_serves_its_dependents_and_is_torn_down_after_the_last() {
    let mut cluster = stage("cluster", &["build"]);
    cluster.service = Some(crate::api::pipelinerun::ServiceStage { replicas: 2, readiness_probe: None });
    let mut e2e = stage("e2e", &["cluster"]);
    e2e.run.as_mut().unwrap().args = vec!["$(stages.cluster.outputs.addresses)".into()];
    let mut sim = Sim::new(spec(vec![stage("build", &[]), cluster, e2e, stage("conformance", &["cluster"])]));
    sim.step();
    sim.succeed("build");
    sim.step();
    assert_eq!(sim.running(), ["cluster"]);
    assert_eq!(sim.launches()[0].service.as_ref().unwrap().replicas, 2);
    make_ready(&mut sim, "cluster", &["10.0.0.1"]);
    sim.step();
    assert_eq!(sim.running(), ["cluster"], "one of two pods ready: dependents wait");
    assert_eq!(sim.last.as_ref().unwrap().requeue_after, Some(SERVICE_POLL), "and it looks again soon");
    make_ready(&mut sim, "cluster", &["10.0.0.1", "10.0.0.2"]);
    sim.step();
    assert!(sim.stage("cluster").ready);
    assert_eq!(sim.running(), ["cluster", "e2e", "conformance"]);
    assert_eq!(sim.launches()[0].args, ["10.0.0.1,10.0.0.2"]);
    assert!(sim.notes.iter().any(|n| n.reason == "ServiceReady"));
    sim.succeed("e2e");
    sim.step();
    assert_eq!(sim.running(), ["cluster", "conformance"], "still needed by conformance");
    sim.fail("conformance");
    sim.step();
    assert_eq!(sim.deleted_jobs, [job("cluster", 1)], "torn down after its last dependent");
    assert_eq!(sim.phase("cluster"), StagePhase::Succeeded);
    assert_eq!(sim.status.phase, Some(RunPhase::Failed), "conformance failed");
}

#[test]
fn a_service_that_dies_fails_and_a_cancelled_run_tears_it_down() {
    let mut cluster = stage("cluster", &[]);
    cluster.service = Some(crate::api::pipelinerun::ServiceStage { replicas: 1, readiness_probe: None });
    let mut sim = Sim::new(spec(vec![cluster.clone(), stage("e2e", &["cluster"])]));
    sim.step();
    sim.fail("cluster");
    sim.step();
    assert_eq!(sim.phase("cluster"), StagePhase::Failed);
    assert_eq!(sim.phase("e2e"), StagePhase::Cancelled);

    let mut sim = Sim::new(spec(vec![cluster, stage("e2e", &["cluster"])]));
    sim.step();
    make_ready(&mut sim, "cluster", &["10.0.0.1"]);
    sim.step();
    sim.spec.cancel = true;
    sim.step();
    assert_eq!(sim.deleted_jobs, [job("cluster", 1), job("e2e", 1)]);
    assert_eq!(sim.status.phase, Some(RunPhase::Cancelled));
}

#[test]
fn a_finally_stage_that_needs_a_service_runs_while_the_service_is_up() {
    // Collecting a test cluster's logs after the tests, whatever happened.
    let mut cluster = stage("cluster", &[]);
    cluster.service = Some(crate::api::pipelinerun::ServiceStage { replicas: 1, readiness_probe: None });
    let mut collect = stage("collect-logs", &["cluster"]);
    collect.finally = true;
    collect.run.as_mut().unwrap().args = vec!["$(stages.cluster.outputs.addresses)".into()];
    let mut sim = Sim::new(spec(vec![cluster, stage("e2e", &["cluster"]), collect]));
    sim.step();
    make_ready(&mut sim, "cluster", &["10.0.0.1"]);
    sim.step();
    assert_eq!(sim.running(), ["cluster", "e2e"]);
    sim.fail("e2e");
    sim.step();
    assert_eq!(sim.running(), ["cluster", "collect-logs"], "the service stays up for the finally stage");
    assert_eq!(sim.launches()[0].args, ["10.0.0.1"]);
    sim.succeed("collect-logs");
    sim.step();
    assert_eq!(sim.deleted_jobs, [job("cluster", 1)], "torn down after the finally stage");
    assert_eq!(sim.phase("cluster"), StagePhase::Succeeded);
    assert_eq!(sim.status.phase, Some(RunPhase::Failed), "e2e failed");
}

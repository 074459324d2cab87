//! Two operator replicas share a Lease: one reconciles; when it dies, the
//! other takes over within the lease duration and finishes the run without
//! making any Job twice.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

use crate::crds::install_crds;
use crate::support::{client, wait_for, Operator, TestNamespace};
use gantry::api::pipelinerun::{RunPhase, StagePhase};
use gantry::api::PipelineRun;

#[tokio::test]
async fn the_standby_replica_takes_over_when_the_leader_dies() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "leader").await;
    let lease = ["--leader-elect", "--lease-namespace", &ns.name, "--lease-seconds", "6"];
    let first = Operator::for_pipelines_with(&ns.name, &lease);
    assert!(first.logs_within("became leader", Duration::from_secs(30)), "the first replica leads");
    let second = Operator::for_pipelines_with(&ns.name, &lease);
    assert!(second.logs_within("waiting to become leader", Duration::from_secs(30)));
    assert!(!second.logs_within("became leader", Duration::from_secs(3)), "only one leader at a time");

    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    let run: PipelineRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": "handover"},
        "spec": {"stages": [
            {"name": "long", "run": {"image": "local/busybox:1", "command": ["sleep", "8"]}},
            {"name": "after", "needs": ["long"], "run": {"image": "local/busybox:1", "command": ["true"]}}
        ]}
    }))
    .unwrap();
    runs.create(&PostParams::default(), &run).await.unwrap();
    wait_for(&runs, "handover", 60, "the first stage to run", |r: Option<&PipelineRun>| {
        r.and_then(|r| r.status.as_ref())
            .is_some_and(|s| s.stages.first().is_some_and(|st| st.phase == StagePhase::Running))
    })
    .await;

    first.crash();
    assert!(
        second.logs_within("became leader", Duration::from_secs(20)),
        "the standby takes over after the lease expires"
    );
    let done = wait_for(&runs, "handover", 120, "the run to finish", |r: Option<&PipelineRun>| {
        r.and_then(|r| r.status.as_ref()?.phase).is_some_and(RunPhase::is_finished)
    })
    .await;
    assert_eq!(done.status.unwrap().phase, Some(RunPhase::Succeeded));
    let jobs = Api::<Job>::namespaced(client.clone(), &ns.name).list(&ListParams::default()).await.unwrap();
    let mut names: Vec<String> = jobs.items.iter().map(|j| j.name_any()).collect();
    names.sort();
    let mut expected = vec![
        crate::support::stage_job(&client, &ns.name, "handover", "after", 1).await,
        crate::support::stage_job(&client, &ns.name, "handover", "long", 1).await,
    ];
    expected.sort();
    assert_eq!(names, expected, "no Job made twice");
    drop(second);
    ns.delete().await;
}

/// A leader that finds someone else's name on the Lease (here a writer that
/// overwrites it, as a replica that took over would) stops reconciling at
/// once: the operator exits with an error, to rejoin as a candidate.
#[tokio::test]
async fn a_leader_that_loses_the_lease_exits_at_its_next_renewal() {
    use k8s_openapi::api::coordination::v1::Lease;
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "leader-lost").await;
    let lease_args = ["--leader-elect", "--lease-namespace", &ns.name, "--lease-seconds", "6"];
    let mut leader = Operator::for_pipelines_with(&ns.name, &lease_args);
    assert!(leader.logs_within("became leader", Duration::from_secs(30)), "the replica leads");

    let leases = Api::<Lease>::namespaced(client.clone(), &ns.name);
    let mut lease = leases.get("gantry").await.unwrap();
    assert_eq!(crate::support::managers(&lease.metadata), ["gantry"], "the Lease is written as Gantry");
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("intruder".into());
    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    // A conflict means the leader renewed in between: take the fresh one.
    while let Err(e) = leases.replace("gantry", &PostParams::default(), &lease).await {
        assert!(matches!(&e, kube::Error::Api(s) if s.code == 409), "{e}");
        lease = leases.get("gantry").await.unwrap();
        lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
    }

    // It stops reconciling as it says so (the controllers are dropped then);
    // the exit can take longer where the error's backtrace is symbolized.
    assert!(leader.logs_within("no longer the leader", Duration::from_secs(6)), "it notices at its next renewal");
    let status = leader.exits_within(Duration::from_secs(30)).expect("the old leader exits");
    assert!(!status.success(), "it exits with an error: {status:?}");
    let after = leases.get("gantry").await.unwrap();
    assert_eq!(after.spec.unwrap().holder_identity.as_deref(), Some("intruder"), "it did not write the Lease back");
    ns.delete().await;
}

/// A leader stopped with SIGTERM releases the Lease on its way out, so the
/// standby takes over at once rather than after the lease duration.
#[tokio::test]
async fn a_leader_stopped_with_sigterm_releases_the_lease_to_the_standby() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "leader-release").await;
    let lease = ["--leader-elect", "--lease-namespace", &ns.name, "--lease-seconds", "60"];
    let mut first = Operator::for_pipelines_with(&ns.name, &lease);
    assert!(first.logs_within("became leader", Duration::from_secs(30)), "the first replica leads");
    let second = Operator::for_pipelines_with(&ns.name, &lease);
    assert!(second.logs_within("waiting to become leader", Duration::from_secs(30)));

    first.terminate();
    assert!(first.logs_within("released the lease", Duration::from_secs(15)), "it releases the lease");
    let status = first.exits_within(Duration::from_secs(5)).expect("the leader stops");
    assert!(status.success(), "a clean stop: {status:?}");
    assert!(
        second.logs_within("became leader", Duration::from_secs(15)),
        "the standby takes over well before the 60 s lease would have run out"
    );
    drop(second);
    ns.delete().await;
}

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

//! Every sample in `manifests/samples/` runs on the local cluster and ends the
//! way its comment says, so the samples stay true.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

use crate::crds::install_crds;
use crate::support::{client, job_pod_and_log, stage_job, wait_for, Operator, TestNamespace};
use gantry::api::pipelinerun::{RunPhase, SkipReason, StagePhase};
use gantry::api::PipelineRun;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/samples");

/// Expected end state of a sample run: phase, condition reason, and the
/// phases of chosen stages.
type Expected = (RunPhase, &'static str, Vec<(&'static str, StagePhase)>);

fn expectations() -> BTreeMap<&'static str, Expected> {
    use StagePhase::*;
    BTreeMap::from([
        ("flatcar-nightly", (RunPhase::Succeeded, "Succeeded", vec![("publish", Succeeded)])),
        (
            "fuel-gate",
            (
                RunPhase::Failed,
                "Failed",
                vec![
                    ("build", Failed),
                    ("smoke", Cancelled),
                    ("publish", Cancelled),
                    ("systest", Cancelled),
                    ("report", Succeeded),
                ],
            ),
        ),
        ("fuel-review-101", (RunPhase::Succeeded, "Merged", vec![("systest", Succeeded), ("submit", Succeeded)])),
        ("fuel-review-102", (RunPhase::Failed, "Rejected", vec![("systest", Failed), ("submit", Cancelled)])),
        ("fuel-review-103", (RunPhase::Succeeded, "Merged", vec![("systest", Succeeded), ("submit", Succeeded)])),
        ("kola-flaky", (RunPhase::Succeeded, "Succeeded", vec![("kola", Succeeded)])),
        (
            "kata-test-cluster",
            (RunPhase::Succeeded, "Succeeded", vec![("test-cluster", Succeeded), ("conformance", Succeeded)]),
        ),
        (
            "fedora-atomic",
            (
                RunPhase::Succeeded,
                "Succeeded",
                vec![
                    ("changes", Skipped),
                    ("docs", Skipped),
                    ("vms", Skipped),
                    ("publish", Succeeded),
                    ("lint", Failed),
                    ("report", Succeeded),
                ],
            ),
        ),
        ("main-build-1", (RunPhase::Succeeded, "Succeeded", vec![])),
        ("main-build-2", (RunPhase::Succeeded, "Succeeded", vec![])),
        ("nightly-with-deadline", (RunPhase::Failed, "TimedOut", vec![("soak", Cancelled)])),
        ("scripts-checkout", (RunPhase::Succeeded, "Succeeded", vec![("check", Succeeded)])),
    ])
}

#[tokio::test]
async fn every_sample_runs_and_ends_as_documented() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "samples").await;
    let _operator = Operator::for_pipelines(&ns.name);
    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    let pvs = Api::<PersistentVolume>::all(client.clone());

    let mut files: Vec<_> = std::fs::read_dir(SAMPLES).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut created = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
            match value["kind"].as_str() {
                Some("PipelineRun") => {
                    let run: PipelineRun = serde_json::from_value(value).unwrap();
                    runs.create(&PostParams::default(), &run).await.unwrap_or_else(|e| panic!("{file:?}: {e}"));
                    created.push(run.name_any());
                }
                Some("PersistentVolume") => {
                    // A previous run's volume is Released and binds nothing: start afresh.
                    let name = value["metadata"]["name"].as_str().unwrap().to_string();
                    let _ = pvs.delete(&name, &DeleteParams::default()).await;
                    wait_gone(&pvs, &name).await;
                    let pv: PersistentVolume = serde_json::from_value(value).unwrap();
                    pvs.patch(&name, &PatchParams::apply("gantry-tests"), &Patch::Apply(&pv)).await.unwrap();
                }
                // Cluster-scoped and node-wide: tests/cluster/katainstall.rs covers it,
                // and src/engine/katainstall/validate.rs checks the sample is valid.
                Some("KataInstall") => {}
                other => panic!("{file:?}: unexpected kind {other:?} in a sample"),
            }
        }
    }
    let expected = expectations();
    let mut names = created.clone();
    names.sort();
    assert_eq!(
        names,
        expected.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
        "every sample run has an expectation"
    );

    for name in &created {
        let (phase, reason, stages) = &expected[name.as_str()];
        let run = wait_for(&runs, name, 180, "the sample to finish", |r: Option<&PipelineRun>| {
            r.and_then(|r| r.status.as_ref()?.phase).is_some_and(RunPhase::is_finished)
        })
        .await;
        let status = run.status.clone().unwrap();
        assert_eq!(status.phase, Some(*phase), "{name}: {:?}", status.message);
        let condition = status.conditions.iter().find(|c| c.type_ == "Succeeded").unwrap();
        assert_eq!(condition.reason, *reason, "{name}");
        for (stage, stage_phase) in stages {
            let st = status.stages.iter().find(|s| &s.name == stage).unwrap();
            assert_eq!(st.phase, *stage_phase, "{name}/{stage}: {:?}", st.message);
        }
    }

    // Details the sample comments promise.
    let fedora = runs.get("fedora-atomic").await.unwrap().status.unwrap();
    let reason = |s: &str| fedora.stages.iter().find(|st| st.name == s).unwrap().skip_reason;
    assert_eq!(reason("changes"), Some(SkipReason::Requested));
    assert_eq!(reason("docs"), Some(SkipReason::Upstream));
    assert_eq!(reason("vms"), Some(SkipReason::Listed));
    let kola = runs.get("kola-flaky").await.unwrap().status.unwrap();
    assert_eq!(kola.stages[0].tests.as_ref().map(|t| (t.passed, t.failed)), Some((3, 0)));
    let first = runs.get("main-build-1").await.unwrap().status.unwrap().completion_time.unwrap();
    let second = runs.get("main-build-2").await.unwrap().status.unwrap().start_time.unwrap();
    assert!(second >= first, "the queued run started only after the first finished");
    let third = runs.get("fuel-review-103").await.unwrap().status.and_then(|s| s.gate).expect("status.gate");
    assert!(third.try_number >= 2, "103 was tested again once 102 was rejected: {third:?}");
    assert!(third.ahead.iter().all(|c| c.run != "fuel-review-102"), "103 merged without 102: {third:?}");
    let first = runs.get("fuel-review-101").await.unwrap().status.unwrap().completion_time.unwrap();
    let last = runs.get("fuel-review-103").await.unwrap().status.unwrap().completion_time.unwrap();
    assert!(first < last, "merged in queue order");
    let job = stage_job(&client, &ns.name, "scripts-checkout", "check", 1).await;
    let (_, log) = job_pod_and_log(&client, &ns.name, &job).await;
    assert_eq!(log.trim(), "workspace has main-3145.0.0", "the second stage read the first one's file");
    let job = stage_job(&client, &ns.name, "kata-test-cluster", "conformance", 1).await;
    let (_, log) = job_pod_and_log(&client, &ns.name, &job).await;
    assert_eq!(log.lines().filter(|l| l.ends_with(" ready")).count(), 3, "all three nodes answered: {log}");
    let jobs = Api::<Job>::namespaced(client.clone(), &ns.name);
    let docs = stage_job(&client, &ns.name, "fedora-atomic", "docs", 1).await;
    assert!(jobs.get_opt(&docs).await.unwrap().is_none(), "skipped stages make no Job");

    ns.delete().await;
    let _ = pvs.delete("gantry-sample-workspace", &DeleteParams::default()).await;
}

async fn wait_gone(pvs: &Api<PersistentVolume>, name: &str) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while pvs.get_opt(name).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .expect("old sample volume deleted");
}

use serde::Deserialize as _;

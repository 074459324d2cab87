//! Children belong to exactly one parent, and a refused write is a stage's
//! failure: a run recreated after an orphaning delete runs Jobs of its own,
//! and a Job the API server rejects fails its stage without wedging the
//! runs queued behind it.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::crds::install_crds;
use crate::support::{client, job_pod_and_log, wait_for, Operator, TestNamespace};
use gantry::api::pipelinerun::{RunPhase, StagePhase};
use gantry::api::PipelineRun;

async fn create(runs: &Api<PipelineRun>, name: &str, spec: serde_json::Value) -> PipelineRun {
    let run: PipelineRun = serde_json::from_value(json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": name}, "spec": spec
    }))
    .expect("a well-formed PipelineRun");
    runs.create(&PostParams::default(), &run).await.expect("create PipelineRun")
}

async fn finished(runs: &Api<PipelineRun>, name: &str) -> PipelineRun {
    wait_for(runs, name, 120, "the run to finish", |r: Option<&PipelineRun>| {
        r.and_then(|r| r.status.as_ref()?.phase).is_some_and(RunPhase::is_finished)
    })
    .await
}

async fn jobs_labelled(client: &Client, ns: &str, run: &str) -> Vec<Job> {
    let api = Api::<Job>::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(&format!("gantry.dev/run={run}"))).await.unwrap().items
}

fn versioned(version: &str) -> serde_json::Value {
    json!({"stages": [{
        "name": "sdk", "outputs": ["version"],
        "run": {"image": "local/busybox:1", "command": ["sh", "-c", format!("echo \"version={version}\" >> \"$GANTRY_OUTPUTS\"; echo built {version}")]}
    }]})
}

#[tokio::test]
async fn a_run_recreated_after_an_orphaning_delete_runs_its_own_jobs_and_leaves_the_orphans_alone() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "orphan").await;
    let _operator = Operator::for_pipelines(&ns.name);
    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);

    let old_uid = create(&runs, "nightly", versioned("1")).await.uid().unwrap();
    let old = finished(&runs, "nightly").await;
    assert_eq!(old.status.as_ref().unwrap().phase, Some(RunPhase::Succeeded), "{:?}", old.status);
    let orphans = jobs_labelled(&client, &ns.name, "nightly").await;
    assert_eq!(orphans.len(), 1);

    // kubectl delete --cascade=orphan: the garbage collector strips the
    // Jobs' owner references and keeps them.
    let orphaning = DeleteParams { propagation_policy: Some(PropagationPolicy::Orphan), ..Default::default() };
    runs.delete("nightly", &orphaning).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        while runs.get_opt("nightly").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .expect("the run is deleted");

    let new_uid = create(&runs, "nightly", versioned("2")).await.uid().unwrap();
    assert_ne!(new_uid, old_uid);
    let new = finished(&runs, "nightly").await;
    let status = new.status.clone().unwrap();
    assert_eq!(status.phase, Some(RunPhase::Succeeded), "{status:?}");
    assert_eq!(status.stages[0].outputs["version"], "2", "the new run's own output, not the orphan's");

    let jobs = jobs_labelled(&client, &ns.name, "nightly").await;
    assert_eq!(
        jobs.len(),
        2,
        "the orphan and the new run's Job: {:?}",
        jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>()
    );
    let orphan = jobs.iter().find(|j| j.uid() == orphans[0].uid()).expect("the orphaned Job is still there");
    assert!(orphan.metadata.deletion_timestamp.is_none(), "Gantry did not delete the orphan");
    assert!(orphan.owner_references().is_empty(), "nobody adopted the orphan: {:?}", orphan.owner_references());
    let mine = jobs.iter().find(|j| j.uid() != orphans[0].uid()).unwrap();
    assert_ne!(mine.name_any(), orphan.name_any(), "names differ across a delete and recreate");
    let owner = &mine.owner_references()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("PipelineRun", new_uid.as_str()));
    assert_eq!(status.stages[0].job_name.as_deref(), Some(mine.name_any().as_str()));
    let (_, log) = job_pod_and_log(&client, &ns.name, &mine.name_any()).await;
    assert_eq!(log.trim(), "built 2", "the new Job really ran");
    ns.delete().await;
}

#[tokio::test]
async fn a_job_the_api_server_refuses_fails_its_stage_and_the_queue_moves_on() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "refused").await;
    let _operator = Operator::for_pipelines(&ns.name);
    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    let queued = json!({"group": "g", "policy": "Queue"});
    let stage =
        |name: &str| json!({"name": name, "run": {"image": "local/busybox:1", "command": ["sh", "-c", "echo ok"]}});
    let mut bad = stage("build");
    bad["serviceAccountName"] = json!("Bad_SA");
    let mut after = stage("after");
    after["needs"] = json!(["build"]);
    create(&runs, "a-bad", json!({"concurrency": queued, "stages": [bad, after]})).await;
    create(&runs, "b-next", json!({"concurrency": queued, "stages": [stage("build")]})).await;

    let run = finished(&runs, "a-bad").await;
    let status = run.status.clone().unwrap();
    assert_eq!(status.phase, Some(RunPhase::Failed), "{status:?}");
    let build = &status.stages[0];
    assert_eq!(build.phase, StagePhase::Failed);
    let message = build.message.clone().unwrap_or_default();
    assert!(message.starts_with("JobRefused: "), "{message}");
    assert!(message.contains("spec.template.spec.serviceAccountName"), "the server's field path: {message}");
    assert_eq!(status.stages[1].phase, StagePhase::Cancelled, "what needs the refused stage does not run");

    // Events are published after the status is written: give them a moment.
    let note = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let events = Api::<Event>::namespaced(client.clone(), &ns.name).list(&ListParams::default()).await.unwrap();
            let refused = events.items.into_iter().find(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("a-bad")
                    && e.reason.as_deref() == Some("JobRefused")
            });
            if let Some(note) = refused.and_then(|e| e.note) {
                return note;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .expect("a JobRefused Event on the run");
    assert!(note.contains("Bad_SA"), "{note}");

    let next = finished(&runs, "b-next").await;
    assert_eq!(next.status.unwrap().phase, Some(RunPhase::Succeeded), "the run queued behind it ran");
    ns.delete().await;
}

#[tokio::test]
async fn a_foreign_job_holding_a_stages_name_is_a_conflict_and_is_left_alone() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "conflict").await;
    let _operator = Operator::for_pipelines(&ns.name);
    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    let sh = |script: &str| json!({"image": "local/busybox:1", "command": ["sh", "-c", script]});
    let spec = json!({"stages": [
        {"name": "first", "run": sh("sleep 5")},
        {"name": "second", "needs": ["first"], "run": sh("echo second")},
    ]});
    let uid = create(&runs, "held", spec).await.uid().unwrap();

    // Someone else's Job (no labels, no owner) takes the name the second stage will want.
    let name = gantry::engine::naming::job_name("held", &uid, "second", 1);
    let foreign: Job = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "local/busybox:1", "command": ["true"]}]}}}
    }))
    .unwrap();
    let jobs = Api::<Job>::namespaced(client.clone(), &ns.name);
    let foreign_uid = jobs.create(&PostParams::default(), &foreign).await.unwrap().uid();

    let run = finished(&runs, "held").await;
    let status = run.status.clone().unwrap();
    assert_eq!(status.phase, Some(RunPhase::Failed), "{status:?}");
    assert_eq!(status.stages[0].phase, StagePhase::Succeeded);
    let second = &status.stages[1];
    assert_eq!(second.phase, StagePhase::Failed);
    let message = second.message.clone().unwrap_or_default();
    assert!(message.starts_with("JobConflict: "), "{message}");
    assert!(message.contains(&format!("Job {name} already exists and belongs to someone else")), "{message}");
    let job = jobs.get(&name).await.expect("the foreign Job is still there");
    assert_eq!(job.uid(), foreign_uid, "not replaced");
    assert!(job.metadata.deletion_timestamp.is_none() && job.owner_references().is_empty(), "not adopted or deleted");
    assert!(job.labels().is_empty() || !job.labels().contains_key("gantry.dev/run"), "not relabelled");
    ns.delete().await;
}

#[tokio::test]
async fn a_build_job_the_api_server_refuses_fails_the_build_once_without_a_retry_loop() {
    use gantry::api::imagebuild::BuildPhase;
    use gantry::api::ImageBuild;
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "refusedbuild").await;
    let _operator = Operator::for_builds(&ns.name);
    let builds = Api::<ImageBuild>::namespaced(client.clone(), &ns.name);
    let build: ImageBuild = serde_json::from_value(json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "ImageBuild", "metadata": {"name": "cache"},
        "spec": {"output": "10.88.0.1:5000/refused", "serviceAccountName": "Bad_SA",
                 "builder": {"image": "local/busybox:1", "command": ["true"]}}
    }))
    .unwrap();
    builds.create(&PostParams::default(), &build).await.unwrap();
    let failed = wait_for(&builds, "cache", 60, "the build to fail", |b: Option<&ImageBuild>| {
        b.and_then(|b| b.status.as_ref()?.phase) == Some(BuildPhase::Failed)
    })
    .await;
    let status = failed.status.unwrap();
    assert_eq!(status.builds.len(), 1, "{status:?}");
    let message = status.builds[0].message.clone().unwrap_or_default();
    assert!(message.starts_with("JobRefused: "), "{message}");
    assert!(message.contains("spec.template.spec.serviceAccountName"), "{message}");

    // No retry loop: a while later there is still one failed build and no Job.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = builds.get("cache").await.unwrap().status.unwrap();
    assert_eq!((status.builds.len(), status.phase), (1, Some(BuildPhase::Failed)));
    assert!(Api::<Job>::namespaced(client.clone(), &ns.name)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    ns.delete().await;
}

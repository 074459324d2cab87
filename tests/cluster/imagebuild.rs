//! ImageBuilds reconciled by a real operator on the real cluster, with a
//! busybox builder that reports a digest (the registry-backed builder comes
//! with the test bed's registry).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

use crate::crds::install_crds;
use crate::registry::{registry_manifest, BUILDER_IMAGE, REGISTRY};
use crate::support::{client, job_pod_and_log, wait_for, Operator, TestNamespace};
use gantry::api::imagebuild::{BuildPhase, Lifecycle, PrunePhase};
use gantry::api::pipelinerun::RunPhase;
use gantry::api::{ImageBuild, PipelineRun};

const BUILDER: &str = r#"d=$(echo "$GANTRY_IMAGE" | sha256sum | cut -d' ' -f1)
echo "pushed $GANTRY_IMAGE as sha256:$d"
echo "digest=sha256:$d" >> "$GANTRY_OUTPUTS""#;

fn image_build(name: &str, script: &str) -> ImageBuild {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "ImageBuild", "metadata": {"name": name},
        "spec": {"output": "10.88.0.1:5000/fedora-cache", "suffixPrefix": "c",
                 "builder": {"image": "local/busybox:1", "command": ["sh", "-c", script]}}
    }))
    .unwrap()
}

async fn settled(builds: &Api<ImageBuild>, name: &str, count: usize) -> ImageBuild {
    wait_for(builds, name, 120, "the builds to settle", move |b: Option<&ImageBuild>| {
        b.and_then(|b| b.status.as_ref()).is_some_and(|s| {
            s.builds.len() == count && matches!(s.phase, Some(BuildPhase::Ready) | Some(BuildPhase::Failed))
        })
    })
    .await
}

async fn job_names(client: &kube::Client, ns: &str) -> Vec<String> {
    let jobs = Api::<Job>::namespaced(client.clone(), ns).list(&ListParams::default()).await.unwrap();
    let mut names: Vec<String> = jobs.items.iter().map(|j| j.name_any()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn builds_record_their_digest_rebuild_once_per_change_and_report_failures() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "builds").await;
    let _operator = Operator::for_builds(&ns.name);
    let builds = Api::<ImageBuild>::namespaced(client.clone(), &ns.name);

    builds.create(&PostParams::default(), &image_build("cache", BUILDER)).await.unwrap();
    let built = settled(&builds, "cache", 1).await;
    let status = built.status.clone().unwrap();
    assert_eq!(status.phase, Some(BuildPhase::Ready), "{status:?}");
    let latest = status.latest_image.clone().unwrap();
    assert!(latest.starts_with("10.88.0.1:5000/fedora-cache:c"), "{latest}");
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let pod = pods.list(&ListParams::default().labels("gantry.dev/image-build=cache")).await.unwrap().items.remove(0);
    let log = pods.logs(&pod.name_any(), &LogParams::default()).await.unwrap();
    assert_eq!(
        log.trim(),
        format!("pushed {latest} as {}", status.digest.clone().unwrap()),
        "status holds the reported digest"
    );
    assert!(status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));

    // A spec change rebuilds exactly once.
    let patch = serde_json::json!({"spec": {"builder": {"env": [{"name": "FEDORA", "value": "41"}]}}});
    builds.patch("cache", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let rebuilt = settled(&builds, "cache", 2).await;
    assert_ne!(rebuilt.status.as_ref().unwrap().latest_image.as_ref().unwrap(), &latest, "a new suffix");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(job_names(&client, &ns.name).await.len(), 2, "no rebuild loop");

    // The rebuild annotation asks for one more.
    let patch = serde_json::json!({"metadata": {"annotations": {"gantry.dev/rebuild": "weekly-1"}}});
    builds.patch("cache", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    settled(&builds, "cache", 3).await;

    // A failing builder says which pod and container failed.
    builds.create(&PostParams::default(), &image_build("broken", "echo 'no space left' >&2; exit 3")).await.unwrap();
    let failed = settled(&builds, "broken", 1).await;
    let status = failed.status.unwrap();
    assert_eq!(status.phase, Some(BuildPhase::Failed));
    let message = status.builds[0].message.clone().unwrap();
    assert!(message.contains("container build in pod broken-c") && message.contains("exited with code 3"), "{message}");
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "BuildFailed"));
    ns.delete().await;
}

/// An ImageBuild of the test bed's real builder: it builds a busybox-based
/// image with `/hello` printing `message`, pushes it to the local registry
/// under `REGISTRY/NS/NAME:SUFFIX`, and reports the registry's digest.
pub fn real_build(ns: &str, name: &str, message: &str) -> ImageBuild {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "ImageBuild", "metadata": {"name": name},
        "spec": {"output": format!("{REGISTRY}/{ns}/{name}"), "suffixPrefix": "c",
                 "builder": {"image": BUILDER_IMAGE, "command": ["gantry-build-image"],
                             "env": [{"name": "BUILD_MESSAGE", "value": message}]}}
    }))
    .unwrap()
}

/// `REGISTRY/NS/NAME:TAG` split into the registry's repository name and tag.
fn repository_and_tag(image: &str) -> (&str, &str) {
    let path = image.strip_prefix(&format!("{REGISTRY}/")).unwrap_or_else(|| panic!("{image} is not in {REGISTRY}"));
    path.rsplit_once(':').unwrap()
}

fn retained(ns: &str, name: &str, permanent: bool) -> ImageBuild {
    let mut build = real_build(ns, name, "retire me");
    build.spec.retention = serde_json::from_value(serde_json::json!({
        "obsoleteAfter": "8s", "pruneAfter": "4s", "permanent": permanent,
        "pruner": {"image": BUILDER_IMAGE, "command": ["gantry-prune-image"]}
    }))
    .unwrap();
    build
}

#[tokio::test]
async fn unused_images_go_obsolete_then_pruned_by_a_prune_job_and_permanent_ones_stay() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "retire").await;
    let _operator = Operator::for_builds(&ns.name);
    let builds = Api::<ImageBuild>::namespaced(client.clone(), &ns.name);
    builds.create(&PostParams::default(), &retained(&ns.name, "nightly", false)).await.unwrap();
    builds.create(&PostParams::default(), &retained(&ns.name, "release", true)).await.unwrap();
    let built = settled(&builds, "nightly", 1).await.status.unwrap();
    assert_eq!(built.phase, Some(BuildPhase::Ready), "{built:?}");
    let image = built.latest_image.clone().unwrap();
    let (repository, tag) = repository_and_tag(&image);
    assert_eq!(registry_manifest(repository, tag).await, (200, built.digest.clone()), "the registry has it");

    let lifecycle =
        |l: Lifecycle| move |b: Option<&ImageBuild>| b.and_then(|b| b.status.as_ref()?.lifecycle) == Some(l);
    let obsolete = wait_for(&builds, "nightly", 60, "the image to go Obsolete", lifecycle(Lifecycle::Obsolete)).await;
    assert!(obsolete.status.unwrap().prune.is_none(), "no prune before pruneAfter");
    let pruned = wait_for(&builds, "nightly", 90, "the image to be Pruned", lifecycle(Lifecycle::Pruned)).await;
    let status = pruned.status.unwrap();
    let prune = status.prune.clone().unwrap();
    assert_eq!(prune.phase, PrunePhase::Succeeded);
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "Pruned"));

    // The prune Job really ran and the registry no longer serves the image.
    let (_, log) = job_pod_and_log(&client, &ns.name, &prune.job_name).await;
    assert!(log.contains(&format!("deleted {image}")), "{log}");
    assert_eq!(registry_manifest(repository, tag).await.0, 404, "pruned from the registry");
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &ns.name)
        .list(&ListParams::default())
        .await
        .unwrap();
    let reasons: Vec<String> = events.items.iter().filter_map(|e| e.reason.clone()).collect();
    for reason in ["Obsolete", "PruneStarted", "PruneSucceeded", "Pruned"] {
        assert!(reasons.iter().any(|r| r == reason), "Event {reason} in {reasons:?}");
    }

    // The permanent build (built alongside, maybe later under load) has been
    // unused for longer than obsoleteAfter + pruneAfter too, and stays.
    let release = settled(&builds, "release", 1).await.status.unwrap();
    assert_eq!(release.phase, Some(BuildPhase::Ready), "{release:?}");
    let built = release.builds[0].completion_time.unwrap();
    let retention_over = built + chrono::Duration::seconds(8 + 4 + 5);
    if let Ok(left) = (retention_over - chrono::Utc::now()).to_std() {
        tokio::time::sleep(left).await;
    }
    let release = builds.get("release").await.unwrap().status.unwrap();
    assert_eq!(release.lifecycle, Some(Lifecycle::Permanent));
    assert!(release.prune.is_none());
    let (repository, tag) = repository_and_tag(release.latest_image.as_deref().unwrap());
    assert_eq!(registry_manifest(repository, tag).await.0, 200, "a permanent image stays");
    let jobs = job_names(&client, &ns.name).await;
    assert_eq!(jobs.iter().filter(|j| j.contains("prune")).count(), 1, "{jobs:?}");
    ns.delete().await;
}

#[tokio::test]
async fn a_pipeline_stage_waits_for_an_image_build_and_a_later_stage_runs_the_built_image() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "consume").await;
    let _operator = Operator::for_pipelines_and_builds(&ns.name);
    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    // The run comes first: its stage waits for a build that does not exist yet.
    let run: PipelineRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": "ci"},
        "spec": {"stages": [
            {"name": "sdk", "imageBuild": {"name": "sdk"}},
            {"name": "use", "needs": ["sdk"], "run": {"image": "$(stages.sdk.outputs.image)",
             "command": ["sh", "-c", "/hello; echo $GANTRY_OUTPUT_SDK_DIGEST"]}}
        ]}
    }))
    .unwrap();
    runs.create(&PostParams::default(), &run).await.unwrap();
    wait_for(&runs, "ci", 30, "the stage to wait for the build", |r: Option<&PipelineRun>| {
        let first = r.and_then(|r| r.status.as_ref()).and_then(|s| s.stages.first());
        first.and_then(|s| s.message.clone()).is_some_and(|m| m.contains("ImageBuild sdk, which does not exist"))
    })
    .await;

    let builds = Api::<ImageBuild>::namespaced(client.clone(), &ns.name);
    builds.create(&PostParams::default(), &real_build(&ns.name, "sdk", "built by gantry")).await.unwrap();
    let done = wait_for(&runs, "ci", 180, "the run to finish", |r: Option<&PipelineRun>| {
        r.and_then(|r| r.status.as_ref()?.phase).is_some_and(RunPhase::is_finished)
    })
    .await;
    let status = done.status.unwrap();
    assert_eq!(status.phase, Some(RunPhase::Succeeded), "{status:?}");
    let built = builds.get("sdk").await.unwrap().status.unwrap();
    let (image, digest) = (built.latest_image.clone().unwrap(), built.digest.clone().unwrap());
    let (repository, tag) = repository_and_tag(&image);
    assert_eq!(registry_manifest(repository, tag).await, (200, Some(digest.clone())), "status digest = registry's");
    assert_eq!(status.stages[0].outputs["image"], image);
    assert_eq!(status.stages[0].outputs["digest"], digest);

    // The later stage ran the image pulled from the registry.
    let job = crate::support::stage_job(&client, &ns.name, "ci", "use", 1).await;
    let (pod, log) = job_pod_and_log(&client, &ns.name, &job).await;
    assert_eq!(log.lines().collect::<Vec<_>>(), ["built by gantry", digest.as_str()]);
    let image_id = pod.status.unwrap().container_statuses.unwrap()[0].image_id.clone();
    assert!(image_id.ends_with(&digest), "the kubelet ran {image_id}");
    let last_used = built.last_used.expect("the stage marked the build used");
    assert!(last_used >= built.builds[0].completion_time.unwrap(), "used after it was built");
    ns.delete().await;
}

#[tokio::test]
async fn builds_beyond_keep_last_leave_with_their_job_and_image() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "keeplast").await;
    let _operator = Operator::for_builds(&ns.name);
    let builds = Api::<ImageBuild>::namespaced(client.clone(), &ns.name);
    let mut build = real_build(&ns.name, "tools", "first");
    build.spec.retention = serde_json::from_value(serde_json::json!({
        "keepLast": 1, "pruner": {"image": BUILDER_IMAGE, "command": ["gantry-prune-image"]}
    }))
    .unwrap();
    builds.create(&PostParams::default(), &build).await.unwrap();
    let first = settled(&builds, "tools", 1).await.status.unwrap();
    let first_image = first.latest_image.clone().unwrap();
    let first_job = first.builds[0].job_name.clone();
    let patch = serde_json::json!({"metadata": {"annotations": {"gantry.dev/rebuild": "2"}}});
    builds.patch("tools", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let second = wait_for(&builds, "tools", 120, "the second build", |b: Option<&ImageBuild>| {
        b.and_then(|b| b.status.as_ref()).is_some_and(|s| {
            s.phase == Some(BuildPhase::Ready) && s.builds.len() == 1 && s.builds[0].job_name != first_job
        })
    })
    .await
    .status
    .unwrap();
    let second_image = second.latest_image.unwrap();
    assert_ne!(second_image, first_image);

    // The first build's image leaves the registry; the latest stays.
    let (repository, first_tag) = repository_and_tag(&first_image);
    let gone = async {
        while registry_manifest(repository, first_tag).await.0 != 404 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(90), gone).await.expect("the old image is pruned from the registry");
    let (repository, second_tag) = repository_and_tag(&second_image);
    assert_eq!(registry_manifest(repository, second_tag).await.0, 200, "the latest image stays");
    let jobs = job_names(&client, &ns.name).await;
    assert!(!jobs.contains(&first_job), "the old build's Job is deleted: {jobs:?}");
    ns.delete().await;
}

//! The test bed's real registry (10.88.0.1:5000) and builder image
//! (`local/gantry-builder:1`), with plain Jobs: a build Job really builds and
//! pushes an image and reports the digest the registry serves, a second Job
//! runs that image, a prune Job deletes it. See `e2e/images/builder/`.

use std::time::Duration;

use gantry::engine::outputs::OUTPUTS_PATH;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams, PostParams};
use kube::{Api, Client};

use crate::support::{client, wait_for, TestNamespace};

pub const REGISTRY: &str = "10.88.0.1:5000";
pub const BUILDER_IMAGE: &str = "local/gantry-builder:1";
const MANIFEST_TYPES: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// What the registry itself answers to `HEAD /v2/NAME/manifests/TAG`: the
/// status and the `Docker-Content-Digest` header.
pub async fn registry_manifest(name: &str, tag: &str) -> (u16, Option<String>) {
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let url = format!("http://{REGISTRY}/v2/{name}/manifests/{tag}");
    let request = hyper::Request::head(&url).header("Accept", MANIFEST_TYPES).body(Empty::new()).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), http.request(request))
        .await
        .unwrap_or_else(|_| panic!("HEAD {url} timed out"))
        .unwrap_or_else(|e| panic!("HEAD {url}: {e} (is the registry up? `e2e/cluster.sh status`)"));
    let digest = response.headers().get("Docker-Content-Digest").map(|v| v.to_str().unwrap().to_string());
    (response.status().as_u16(), digest)
}

/// A one-container, never-retried Job.
fn job(name: &str, container: serde_json::Value) -> Job {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}
    }))
    .unwrap()
}

/// Runs the Job to its end; panics with its pod's log unless it succeeded.
/// Returns the pod (for its container status) and its log.
async fn run_to_success(client: &Client, ns: &str, job: Job) -> (Pod, String) {
    let jobs = Api::<Job>::namespaced(client.clone(), ns);
    let name = job.metadata.name.clone().unwrap();
    jobs.create(&PostParams::default(), &job).await.expect("create Job");
    let finished = |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"))
    };
    let done = wait_for(&jobs, &name, 180, "the Job to finish", finished).await;
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let listed = pods.list(&ListParams::default().labels(&format!("job-name={name}"))).await.unwrap();
    assert_eq!(listed.items.len(), 1, "one pod for Job {name}");
    let pod = listed.items.into_iter().next().unwrap();
    let pod_name = pod.metadata.name.clone().unwrap();
    let log = pods.logs(&pod_name, &LogParams::default()).await.unwrap_or_else(|e| format!("(no log: {e})"));
    let succeeded = done.status.as_ref().and_then(|s| s.succeeded);
    assert_eq!(succeeded, Some(1), "Job {name} failed; its log:\n{log}\nits pod: {:#?}", pod.status);
    (pod, log)
}

/// The termination message of the pod's only container.
fn termination_message(pod: &Pod) -> String {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).expect("container statuses");
    let terminated = statuses[0].state.as_ref().and_then(|s| s.terminated.as_ref()).expect("the container ended");
    terminated.message.clone().unwrap_or_default()
}

#[tokio::test]
async fn the_builder_pushes_a_real_image_a_job_runs_it_and_the_prune_job_deletes_it() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "registry").await;
    // Unique per run: the registry outlives namespaces.
    let repo = format!("e2e/{}", ns.name);
    let suffix = "t1";
    let reference = format!("{REGISTRY}/{repo}:{suffix}");
    let message = format!("built for {} by gantry-build-image", ns.name);

    // 1. Build and push; the digest comes back as the termination message.
    let build = job(
        "build",
        serde_json::json!({
            "name": "build", "image": BUILDER_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["gantry-build-image"],
            "terminationMessagePath": OUTPUTS_PATH, "terminationMessagePolicy": "File",
            "env": [
                {"name": "GANTRY_IMAGE", "value": reference},
                {"name": "GANTRY_IMAGE_SUFFIX", "value": suffix},
                {"name": "GANTRY_OUTPUTS", "value": OUTPUTS_PATH},
                {"name": "BUILD_MESSAGE", "value": message},
            ]
        }),
    );
    let (pod, log) = run_to_success(&client, &ns.name, build).await;
    let outputs = termination_message(&pod);
    let reported = outputs
        .lines()
        .find_map(|l| l.strip_prefix("digest="))
        .unwrap_or_else(|| panic!("no digest= line in the outputs {outputs:?}; log:\n{log}"))
        .to_string();
    assert!(
        reported.len() == 71 && reported.starts_with("sha256:") && reported[7..].bytes().all(|b| b.is_ascii_hexdigit()),
        "a sha256 digest: {reported:?}"
    );
    assert!(log.contains("as uid 65532"), "the build ran as the image's non-root user: {log}");

    // 2. The registry itself serves that digest for the tag.
    let (status, served) = registry_manifest(&repo, suffix).await;
    assert_eq!(status, 200, "the registry has {reference}");
    assert_eq!(served.as_deref(), Some(reported.as_str()), "the reported digest is the one the registry serves");

    // 3. The kubelet pulls the pushed image from the registry and runs its new layer.
    let run = job(
        "run",
        serde_json::json!({
            "name": "run", "image": reference, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "/hello; cat /etc/gantry-build"]
        }),
    );
    let (pod, log) = run_to_success(&client, &ns.name, run).await;
    assert!(log.lines().next() == Some(message.as_str()), "/hello printed the BUILD_MESSAGE: {log:?}");
    assert!(log.contains(&format!("suffix={suffix}\n")), "/etc/gantry-build names the suffix: {log:?}");
    let image_id = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).unwrap()[0].image_id.clone();
    assert!(image_id.ends_with(&format!("@{reported}")), "the pod ran exactly the pushed manifest: {image_id}");

    // 4. The prune Job deletes it; the registry no longer knows the tag.
    let prune = job(
        "prune",
        serde_json::json!({
            "name": "prune", "image": BUILDER_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["gantry-prune-image"],
            "env": [{"name": "GANTRY_IMAGE", "value": reference}]
        }),
    );
    let (_, log) = run_to_success(&client, &ns.name, prune).await;
    assert!(log.contains(&format!("deleted {reference}@{reported}")), "the prune Job says what it deleted: {log}");
    let (status, _) = registry_manifest(&repo, suffix).await;
    assert_eq!(status, 404, "{reference} is gone from the registry");
    let (status, _) = registry_manifest(&repo, &reported).await;
    assert_eq!(status, 404, "{repo}@{reported} is gone from the registry");

    // 5. Pruning again is no error: the image is already gone.
    let again = job(
        "prune-again",
        serde_json::json!({
            "name": "prune", "image": BUILDER_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["gantry-prune-image"],
            "env": [{"name": "GANTRY_IMAGE", "value": reference}]
        }),
    );
    let (_, log) = run_to_success(&client, &ns.name, again).await;
    assert!(log.contains(&format!("{reference} is already gone")), "{log}");

    ns.delete().await;
}

#[tokio::test]
async fn the_builder_fails_loudly_without_its_contract() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "registry-bad").await;
    let jobs = Api::<Job>::namespaced(client.clone(), &ns.name);
    let bad = job(
        "nobuild",
        serde_json::json!({
            "name": "build", "image": BUILDER_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["gantry-build-image"],
            "env": [{"name": "GANTRY_IMAGE_SUFFIX", "value": "x"}, {"name": "GANTRY_OUTPUTS", "value": OUTPUTS_PATH}]
        }),
    );
    jobs.create(&PostParams::default(), &bad).await.unwrap();
    let failed = |j: Option<&Job>| j.and_then(|j| j.status.as_ref()).and_then(|s| s.failed).is_some_and(|n| n > 0);
    wait_for(&jobs, "nobuild", 120, "the Job to fail", failed).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let listed = pods.list(&ListParams::default().labels("job-name=nobuild")).await.unwrap();
    let pod_name = listed.items[0].metadata.name.clone().unwrap();
    let log = pods.logs(&pod_name, &LogParams::default()).await.unwrap();
    assert!(log.contains("gantry-build-image: error: GANTRY_IMAGE is not set"), "a clear message: {log:?}");
    ns.delete().await;
}

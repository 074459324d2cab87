//! The generated CRDs on the real 1.20 apiserver: accepted, Established,
//! and enforcing their schema.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::conditions;
use kube::{Api, ResourceExt};

use crate::support::{client, wait_for, TestNamespace};
use gantry::api::PipelineRun;

/// Applies every generated CRD (server-side) and waits until it is Established.
pub async fn install_crds(client: &kube::Client) {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in gantry::crdgen::all() {
        let name = crd.name_any();
        crds.patch(&name, &PatchParams::apply("gantry-tests").force(), &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("apiserver rejected CRD {name}: {e}"));
        wait_for(&crds, &name, 30, "CRD Established", conditions::is_crd_established()).await;
    }
    // Discovery takes a moment to serve a newly established group.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn generated_crds_are_established_and_validate_input() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crds").await;
    let runs = Api::<PipelineRun>::namespaced(client.clone(), &ns.name);
    let pp = PatchParams::apply("gantry-tests");

    let good = serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
        "metadata": {"name": "good"},
        "spec": {"stages": [{"name": "a", "run": {"image": "local/busybox:1"}}],
                 "concurrency": {"group": "g", "policy": "Queue"}}
    });
    let created = runs.patch("good", &pp, &Patch::Apply(&good)).await.expect("a valid run is accepted");
    assert_eq!(created.spec.stages[0].name, "a");

    let bad_enum = serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
        "metadata": {"name": "bad-enum"},
        "spec": {"stages": [{"name": "a"}], "concurrency": {"group": "g", "policy": "Sometimes"}}
    });
    let err = runs.patch("bad-enum", &pp, &Patch::Apply(&bad_enum)).await.expect_err("unknown enum value rejected");
    assert!(err.to_string().contains("policy"), "the error names the field: {err}");

    let negative = serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
        "metadata": {"name": "negative"},
        "spec": {"stages": [{"name": "a", "retries": -1}]}
    });
    let err = runs.patch("negative", &pp, &Patch::Apply(&negative)).await.expect_err("negative retries rejected");
    assert!(err.to_string().contains("retries"), "the error names the field: {err}");
    ns.delete().await;
}

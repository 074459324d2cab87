//! The admin-owned operator configuration (`gantry run --config FILE`) on the
//! real cluster: the nested-virt policy allows one namespace and places its
//! pods (here: the node's /dev/kvm as a char-device hostPath on the node the
//! selector names), refuses others, and the default stage timeout applies.

use kube::api::{ListParams, PostParams};
use kube::Api;

use crate::crds::install_crds;
use crate::support::{client, job_pod_and_log, operator_config_file, wait_for, Operator, TestNamespace};
use gantry::api::imagebuild::BuildPhase;
use gantry::api::pipelinerun::RunPhase;
use gantry::api::{ImageBuild, PipelineRun};

fn kvm_run(name: &str) -> PipelineRun {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": name},
        "spec": {"stages": [{"name": "qemu", "nestedVirt": true, "timeout": "120s",
                             "run": {"image": "local/busybox:1", "command": ["sh", "-c", "test -c /dev/kvm && echo kvm-present"]}}]}
    }))
    .unwrap()
}

async fn finished(runs: &Api<PipelineRun>, name: &str) -> PipelineRun {
    wait_for(runs, name, 120, "the run to finish", |r: Option<&PipelineRun>| {
        r.and_then(|r| r.status.as_ref()?.phase).is_some_and(RunPhase::is_finished)
    })
    .await
}

#[tokio::test]
async fn the_operator_config_sets_nested_virt_policy_and_default_timeouts() {
    let client = client().await;
    install_crds(&client).await;
    let allowed = TestNamespace::create(&client, "virt-ok").await;
    let refused = TestNamespace::create(&client, "virt-no").await;
    let config = format!(
        "defaultStageTimeout: 3s\nreconcileConcurrency: 4\nnestedVirt:\n  allowedNamespaces: [{}]\n  mode: HostPath\n  nodeSelector: {{kubernetes.io/hostname: localhost}}\n",
        allowed.name
    );
    let path = operator_config_file(&allowed.name, &config);
    let _ok = Operator::for_pipelines_with(&allowed.name, &["--config", &path]);
    let _no =
        Operator::for_pipelines_with(&refused.name, &["--config", &path, "--controllers", "pipelinerun,imagebuild"]);

    let ok_runs = Api::<PipelineRun>::namespaced(client.clone(), &allowed.name);
    ok_runs.create(&PostParams::default(), &kvm_run("kvm")).await.unwrap();
    let run = finished(&ok_runs, "kvm").await;
    assert_eq!(run.status.as_ref().unwrap().phase, Some(RunPhase::Succeeded), "{:?}", run.status);
    let job = crate::support::stage_job(&client, &allowed.name, "kvm", "qemu", 1).await;
    let (pod, log) = job_pod_and_log(&client, &allowed.name, &job).await;
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.node_selector.unwrap()["kubernetes.io/hostname"], "localhost");
    assert!(spec.containers[0].security_context.is_none(), "not privileged");
    assert_eq!(log.trim(), "kvm-present");

    let no_runs = Api::<PipelineRun>::namespaced(client.clone(), &refused.name);
    no_runs.create(&PostParams::default(), &kvm_run("kvm")).await.unwrap();
    let run = finished(&no_runs, "kvm").await;
    let condition = run.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Succeeded").unwrap();
    assert_eq!(condition.reason, "InvalidSpec");
    assert!(condition.message.contains("spec.stages[qemu].nestedVirt"), "{}", condition.message);

    // An ImageBuild asking for nested virt there is refused the same way, and builds nothing.
    let build: ImageBuild = serde_json::from_value(serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "ImageBuild", "metadata": {"name": "vm-image"},
        "spec": {"output": "10.88.0.1:5000/vm", "imageKind": "vm", "nestedVirt": true,
                 "builder": {"image": "local/busybox:1", "command": ["true"]}}
    }))
    .unwrap();
    let builds = Api::<ImageBuild>::namespaced(client.clone(), &refused.name);
    builds.create(&PostParams::default(), &build).await.unwrap();
    let refused_build = wait_for(&builds, "vm-image", 60, "the build to be refused", |b: Option<&ImageBuild>| {
        b.and_then(|b| b.status.as_ref()?.phase) == Some(BuildPhase::Failed)
    })
    .await;
    let ready = refused_build.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(ready.message.starts_with("spec.nestedVirt: nested virtualization is not allowed"), "{}", ready.message);
    let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(client.clone(), &refused.name);
    let build_jobs = jobs.list(&ListParams::default().labels("gantry.dev/image-build")).await.unwrap();
    assert!(build_jobs.items.is_empty(), "a refused build creates no Job");

    // A stage without a timeout of its own gets the admin's default (3s);
    // the kvm stages above set their own, which wins over it.
    let sleepy: PipelineRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": "sleepy"},
        "spec": {"stages": [{"name": "nap", "run": {"image": "local/busybox:1", "command": ["sleep", "60"]}}]}
    }))
    .unwrap();
    ok_runs.create(&PostParams::default(), &sleepy).await.unwrap();
    let run = finished(&ok_runs, "sleepy").await;
    let status = run.status.unwrap();
    assert_eq!(status.phase, Some(RunPhase::Failed));
    assert!(status.stages[0].message.as_deref().unwrap_or("").contains("DeadlineExceeded"), "{:?}", status.stages[0]);
    allowed.delete().await;
    refused.delete().await;
}

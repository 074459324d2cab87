//! PipelineRuns reconciled by a real operator process on the real cluster:
//! busybox stages run on the kubelet, and the tests check what a user would
//! (`kubectl wait`, status, Jobs, logs, Events).

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::crds::install_crds;
use crate::support::{client, job_pod_and_log, kubeconfig_path, stage_job, wait_for, Operator, TestNamespace};
use gantry::api::pipelinerun::{RunPhase, StagePhase, StageStatus};
use gantry::api::PipelineRun;

struct Bed {
    client: Client,
    ns: TestNamespace,
    runs: Api<PipelineRun>,
    operator: Option<Operator>,
}

impl Bed {
    async fn new(prefix: &str) -> Self {
        let client = client().await;
        install_crds(&client).await;
        let ns = TestNamespace::create(&client, prefix).await;
        let operator = Some(Operator::for_pipelines(&ns.name));
        Bed { runs: Api::namespaced(client.clone(), &ns.name), client, ns, operator }
    }

    async fn create(&self, name: &str, spec: serde_json::Value) -> PipelineRun {
        let run: PipelineRun = serde_json::from_value(json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": name}, "spec": spec
        }))
        .expect("a well-formed PipelineRun");
        self.runs.create(&PostParams::default(), &run).await.expect("create PipelineRun")
    }

    async fn wait(
        &self,
        name: &str,
        secs: u64,
        what: &str,
        cond: impl Fn(&PipelineRun) -> bool + Send + 'static,
    ) -> PipelineRun {
        wait_for(&self.runs, name, secs, what, move |r: Option<&PipelineRun>| r.is_some_and(&cond)).await
    }

    async fn finished(&self, name: &str, secs: u64) -> PipelineRun {
        self.wait(name, secs, "the run to finish", |r| phase(r).is_some_and(RunPhase::is_finished)).await
    }

    async fn jobs(&self, run: &str) -> Vec<Job> {
        let api = Api::<Job>::namespaced(self.client.clone(), &self.ns.name);
        let mut jobs = api.list(&ListParams::default().labels(&format!("gantry.dev/run={run}"))).await.unwrap().items;
        jobs.sort_by_key(|j| j.name_any());
        jobs
    }

    /// `<stage>-<attempt>` of every Job of `run`, from their labels, sorted.
    async fn attempts(&self, run: &str) -> Vec<String> {
        let label = |j: &Job, key: &str| j.labels().get(key).cloned().unwrap_or_default();
        let mut attempts: Vec<String> = self
            .jobs(run)
            .await
            .iter()
            .map(|j| format!("{}-{}", label(j, "gantry.dev/stage"), label(j, "gantry.dev/attempt")))
            .collect();
        attempts.sort();
        attempts
    }

    /// The Job name of `run`'s `stage` attempt `attempt`.
    async fn job(&self, run: &str, stage: &str, attempt: u32) -> String {
        stage_job(&self.client, &self.ns.name, run, stage, attempt).await
    }

    async fn log_of(&self, run: &str, stage: &str, attempt: u32) -> String {
        job_pod_and_log(&self.client, &self.ns.name, &self.job(run, stage, attempt).await).await.1
    }

    async fn done(self) {
        drop(self.operator);
        self.ns.delete().await;
    }
}

fn phase(run: &PipelineRun) -> Option<RunPhase> {
    run.status.as_ref()?.phase
}

fn stage<'a>(run: &'a PipelineRun, name: &str) -> &'a StageStatus {
    run.status.as_ref().unwrap().stages.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no stage {name}"))
}

fn condition(run: &PipelineRun) -> (String, String, String) {
    let c =
        run.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Succeeded").expect("Succeeded condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

async fn kubectl(args: &[&str]) -> String {
    let out =
        tokio::process::Command::new("kubectl").args(args).env("KUBECONFIG", kubeconfig_path()).output().await.unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn sh(script: &str) -> serde_json::Value {
    json!({"image": "local/busybox:1", "command": ["sh", "-c", script]})
}

#[tokio::test]
async fn a_six_stage_flatcar_chain_runs_end_to_end_passing_outputs() {
    let bed = Bed::new("chain").await;
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/samples/pipelinerun-flatcar-chain.yaml"
    ))
    .unwrap();
    let mut run: PipelineRun = serde_yaml::from_str(&sample).expect("the sample parses");
    run.metadata.namespace = Some(bed.ns.name.clone());
    let run = bed.runs.create(&PostParams::default(), &run).await.expect("create the sample run");
    let name = run.name_any();

    // What a CI system does: kubectl wait on the Succeeded condition.
    let target = format!("pipelinerun/{name}");
    kubectl(&["wait", "--for=condition=Succeeded", "--timeout=180s", "-n", &bed.ns.name, &target]).await;
    let explain = kubectl(&["explain", "pipelinerun.spec.stages.retries"]).await;
    assert!(explain.contains("How often a failed attempt is tried again"), "kubectl explain shows our docs: {explain}");

    let run = bed.runs.get(&name).await.unwrap();
    let status = run.status.clone().unwrap();
    assert_eq!(status.phase, Some(RunPhase::Succeeded));
    assert_eq!(status.progress.as_deref(), Some("6/6"));
    assert_eq!(status.observed_generation, run.metadata.generation);
    assert_eq!(stage(&run, "sdk").outputs["version"], "3145.0.0");
    assert_eq!(stage(&run, "packages").outputs["count"], "42");
    let digest = stage(&run, "image").outputs["digest"].clone();
    assert!(digest.starts_with("sha256:") && digest.len() == 23, "{digest}");
    let tests = stage(&run, "test-qemu").tests.clone().expect("TAP counts");
    assert_eq!((tests.passed, tests.failed), (2, 0));

    // One Job per stage, owned by the run, labelled with run, stage and attempt.
    let jobs = bed.jobs(&name).await;
    assert_eq!(jobs.len(), 6);
    for job in &jobs {
        let owner = &job.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("PipelineRun", run.uid().unwrap().as_str()));
        assert_eq!(job.labels()["gantry.dev/attempt"], "1");
        // Its fields are Gantry's, under the one field manager its applies use.
        let managers = crate::support::managers(&job.metadata);
        assert!(managers.contains(&"gantry") && !managers.contains(&"unknown"), "{managers:?}");
    }
    // The last stage read what the first ones wrote.
    let log = bed.log_of(&name, "publish", 1).await;
    assert_eq!(log.trim(), format!("publishing 3145.0.0 {digest}"));
    let log = bed.log_of(&name, "packages", 1).await;
    assert!(log.contains("building packages 3145.0.0 for amd64"), "{log}");
    let log = bed.log_of(&name, "sdk", 1).await;
    assert!(
        log.contains("building SDK for main-3145.0.0-nightly-20220209-0139"),
        "source context reaches stages: {log}"
    );

    // What `kubectl get` shows: printer columns, the short name, the category.
    let table = kubectl(&["get", "gpr", "-n", &bed.ns.name]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PHASE", "PROGRESS", "STAGE", "GATE", "AGE"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], [name.as_str(), "Succeeded", "6/6"]);
    let all = kubectl(&["get", "gantry", "-n", &bed.ns.name]).await;
    assert!(all.contains(&format!("pipelinerun.gantry.dev/{name}")), "{all}");

    // Every stage transition is an Event on the run.
    let events = Api::<Event>::namespaced(bed.client.clone(), &bed.ns.name).list(&ListParams::default()).await.unwrap();
    let succeeded: BTreeSet<String> = events
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str()))
        .filter(|e| e.reason.as_deref() == Some("StageSucceeded"))
        .filter_map(|e| e.action.clone())
        .collect();
    assert_eq!(succeeded.len(), 6, "a StageSucceeded Event per stage: {succeeded:?}");
    bed.done().await;
}

#[tokio::test]
async fn fail_fast_stops_a_running_sibling_and_finally_still_runs() {
    let bed = Bed::new("failfast").await;
    bed.create(
        "fuel",
        json!({
            "failFast": true,
            "stages": [
                {"name": "build", "run": sh("sleep 2; echo compile error >&2; exit 1")},
                {"name": "publish", "needs": ["build"], "run": sh("echo never")},
                {"name": "systest", "run": sh("sleep 300")},
                {"name": "report", "finally": true, "run": sh("echo reporting")}
            ]
        }),
    )
    .await;
    let run = bed.finished("fuel", 120).await;
    assert_eq!(phase(&run), Some(RunPhase::Failed));
    let (status, reason, message) = condition(&run);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Failed"));
    assert!(message.contains("stage build failed") && message.contains("exited with code 1"), "{message}");
    assert_eq!(stage(&run, "systest").phase, StagePhase::Cancelled);
    assert!(stage(&run, "systest").message.as_deref().unwrap().contains("fail-fast: stage build failed"));
    assert_eq!(stage(&run, "publish").phase, StagePhase::Cancelled);
    assert_eq!(stage(&run, "report").phase, StagePhase::Succeeded);
    // The running sibling's Job is really gone (or going).
    let jobs = Api::<Job>::namespaced(bed.client.clone(), &bed.ns.name);
    let systest = jobs.get_opt(&bed.job("fuel", "systest", 1).await).await.unwrap();
    assert!(systest.is_none_or(|j| j.metadata.deletion_timestamp.is_some()), "systest's Job was deleted");
    assert!(!bed.attempts("fuel").await.contains(&"publish-1".to_string()));
    bed.done().await;
}

#[tokio::test]
async fn a_tap_test_that_fails_once_then_passes_makes_the_stage_pass() {
    let bed = Bed::new("tap").await;
    let script = r#"
        if [ "$GANTRY_ATTEMPT" = 1 ]; then
          printf '1..3\nok 1 - cl.boot\nnot ok 2 - cl.network.flaky\nok 3 - cl.update\n'; exit 1
        fi
        printf '1..1\nok 1 - cl.network.flaky\n'"#;
    bed.create(
        "kola",
        json!({"stages": [{"name": "kola", "results": "tap", "retries": 2, "retryDelaySeconds": 1, "run": sh(script)}]}),
    )
    .await;
    let run = bed.finished("kola", 120).await;
    assert_eq!(phase(&run), Some(RunPhase::Succeeded), "{:?}", run.status);
    let kola = stage(&run, "kola");
    assert_eq!(kola.attempt, 2);
    let tests = kola.tests.clone().unwrap();
    assert_eq!((tests.passed, tests.failed), (3, 0));
    let history: Vec<(u32, StagePhase)> = kola.history.iter().map(|h| (h.attempt, h.phase)).collect();
    assert_eq!(history, [(1, StagePhase::Failed), (2, StagePhase::Succeeded)]);
    assert_eq!(bed.attempts("kola").await, ["kola-1", "kola-2"]);
    bed.done().await;
}

#[tokio::test]
async fn rerun_of_one_stage_reruns_it_and_downstream_only() {
    let bed = Bed::new("rerun").await;
    bed.create(
        "nightly",
        json!({"stages": [
            {"name": "a", "run": sh("echo a")},
            {"name": "b", "needs": ["a"], "outputs": ["attempt"], "run": sh("echo attempt=$GANTRY_ATTEMPT >> $GANTRY_OUTPUTS")},
            {"name": "c", "needs": ["b"], "run": sh("echo c saw $(stages.b.outputs.attempt)")},
            {"name": "x", "needs": ["a"], "run": sh("echo x")}
        ]}),
    )
    .await;
    let run = bed.finished("nightly", 120).await;
    assert_eq!(phase(&run), Some(RunPhase::Succeeded));

    let patch = json!({"metadata": {"annotations": {"gantry.dev/rerun": "b"}}});
    bed.runs.patch("nightly", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let run = bed
        .wait("nightly", 120, "the rerun to finish", |r| {
            phase(r) == Some(RunPhase::Succeeded) && stage(r, "c").attempt == 2
        })
        .await;
    assert!(!run.annotations().contains_key("gantry.dev/rerun"), "the request is consumed");
    assert_eq!(stage(&run, "b").outputs["attempt"], "2");
    let b_history: Vec<u32> = stage(&run, "b").history.iter().map(|h| h.attempt).collect();
    assert_eq!(b_history, [1, 2], "earlier attempts stay visible");
    assert_eq!(bed.attempts("nightly").await, ["a-1", "b-1", "b-2", "c-1", "c-2", "x-1"]);
    assert_eq!(bed.log_of("nightly", "c", 2).await.trim(), "c saw 2");
    bed.done().await;
}

#[tokio::test]
async fn an_operator_killed_mid_run_is_replaced_and_the_run_finishes_without_duplicate_jobs() {
    let mut bed = Bed::new("restart").await;
    bed.create(
        "chain",
        json!({"stages": [
            {"name": "s1", "outputs": ["v"], "run": sh("echo v=1 >> $GANTRY_OUTPUTS")},
            {"name": "s2", "needs": ["s1"], "outputs": ["v"], "run": sh("sleep 6; echo v=$(( $(stages.s1.outputs.v) + 1 )) >> $GANTRY_OUTPUTS")},
            {"name": "s3", "needs": ["s2"], "run": sh("echo got $(stages.s2.outputs.v)")}
        ]}),
    )
    .await;
    bed.wait("chain", 60, "s2 to run", |r| {
        r.status.as_ref().is_some_and(|s| s.stages.iter().any(|st| st.name == "s2" && st.phase == StagePhase::Running))
    })
    .await;
    bed.operator.take().unwrap().crash();
    // s2 finishes while no operator runs; a new one must pick up from there.
    tokio::time::sleep(Duration::from_secs(8)).await;
    bed.operator = Some(Operator::for_pipelines(&bed.ns.name));
    let run = bed.finished("chain", 120).await;
    assert_eq!(phase(&run), Some(RunPhase::Succeeded), "{:?}", run.status);
    assert_eq!(bed.attempts("chain").await, ["s1-1", "s2-1", "s3-1"], "no Job made twice");
    assert_eq!(stage(&run, "s2").outputs["v"], "2", "the result of the stage that ran unobserved is kept");
    assert_eq!(bed.log_of("chain", "s3", 1).await.trim(), "got 2");
    bed.done().await;
}

#[tokio::test]
async fn invalid_specs_fail_with_invalid_spec_and_create_no_job() {
    let bed = Bed::new("invalid").await;
    let cases = [
        (
            "cycle",
            json!({"stages": [{"name": "a", "needs": ["b"], "run": sh("true")}, {"name": "b", "needs": ["a"], "run": sh("true")}]}),
            "cycle",
        ),
        (
            "unknown",
            json!({"stages": [{"name": "a", "needs": ["sdk"], "run": sh("true")}]}),
            "spec.stages[a].needs: \"sdk\" is not a stage",
        ),
        (
            "subst",
            json!({"stages": [{"name": "a", "run": sh("echo $(params.arch)")}]}),
            "spec.stages[a].run.command[2]: $(params.arch): no param",
        ),
        (
            "dup",
            json!({"stages": [{"name": "a", "run": sh("true")}, {"name": "a", "run": sh("true")}]}),
            "spec.stages[a].name: duplicate",
        ),
    ];
    for (name, spec, _) in &cases {
        bed.create(name, spec.clone()).await;
    }
    for (name, _, expected) in &cases {
        let run = bed.finished(name, 60).await;
        let (status, reason, message) = condition(&run);
        assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"), "{name}");
        assert!(message.contains(expected), "{name}: {message}");
        assert!(bed.jobs(name).await.is_empty(), "{name} created a Job");
    }
    bed.done().await;
}

#[tokio::test]
async fn cancel_stops_a_running_run() {
    let bed = Bed::new("cancel").await;
    bed.create("long", json!({"stages": [{"name": "soak", "run": sh("sleep 300")}]})).await;
    bed.wait("long", 60, "the stage to run", |r| phase(r) == Some(RunPhase::Running)).await;
    let patch = json!({"spec": {"cancel": true}});
    bed.runs.patch("long", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let run = bed.finished("long", 60).await;
    assert_eq!(phase(&run), Some(RunPhase::Cancelled));
    assert_eq!(condition(&run).1, "Cancelled");
    assert_eq!(stage(&run, "soak").phase, StagePhase::Cancelled);
    let job = Api::<Job>::namespaced(bed.client.clone(), &bed.ns.name)
        .get_opt(&bed.job("long", "soak", 1).await)
        .await
        .unwrap();
    assert!(job.is_none_or(|j| j.metadata.deletion_timestamp.is_some()), "the Job is deleted");
    bed.done().await;
}

#[tokio::test]
async fn a_stage_whose_image_never_pulls_times_out_with_a_reason() {
    let bed = Bed::new("timeout").await;
    bed.create(
        "stuck",
        json!({"stages": [{"name": "pull", "timeout": "5s", "run": {"image": "local/does-not-exist:1", "command": ["true"]}}]}),
    )
    .await;
    let run = bed.finished("stuck", 90).await;
    assert_eq!(phase(&run), Some(RunPhase::Failed));
    let message = stage(&run, "pull").message.clone().unwrap();
    assert!(message.contains("DeadlineExceeded"), "{message}");
    // The pod's own state, or, when the Job controller already deleted the
    // pod at the deadline, the last Warning Event about it.
    assert!(message.contains("never ran") || message.contains("last pod event"), "says why: {message}");
    bed.done().await;
}

#[tokio::test]
async fn concurrency_groups_queue_and_supersede() {
    let bed = Bed::new("concurrency").await;
    let queued = |script: &str| json!({"concurrency": {"group": "main", "policy": "Queue"}, "stages": [{"name": "s", "run": sh(script)}]});
    bed.create("q1", queued("sleep 10")).await;
    bed.wait("q1", 60, "q1 to run", |r| phase(r) == Some(RunPhase::Running)).await;
    bed.create("q2", queued("true")).await;
    bed.wait("q2", 30, "q2 to queue", |r| phase(r) == Some(RunPhase::Queued)).await;
    let q2 = bed.finished("q2", 90).await;
    let q1 = bed.runs.get("q1").await.unwrap();
    assert_eq!((phase(&q1), phase(&q2)), (Some(RunPhase::Succeeded), Some(RunPhase::Succeeded)));
    let q1_done = q1.status.unwrap().completion_time.unwrap();
    let q2_start = q2.status.unwrap().start_time.unwrap();
    assert!(q2_start >= q1_done, "q2 started {q2_start} before q1 finished {q1_done}");

    let superseding = |script: &str| json!({"concurrency": {"group": "pr-7", "policy": "CancelRunning"}, "stages": [{"name": "s", "run": sh(script)}]});
    bed.create("old", superseding("sleep 300")).await;
    bed.wait("old", 60, "old to run", |r| phase(r) == Some(RunPhase::Running)).await;
    bed.create("new", superseding("true")).await;
    let old = bed.finished("old", 60).await;
    assert_eq!(phase(&old), Some(RunPhase::Cancelled));
    assert!(condition(&old).2.contains("superseded by run new"), "{:?}", condition(&old));
    assert_eq!(phase(&bed.finished("new", 60).await), Some(RunPhase::Succeeded));
    bed.done().await;
}

#[tokio::test]
async fn a_finished_run_is_deleted_after_its_ttl_with_its_jobs() {
    let bed = Bed::new("ttl").await;
    bed.create("brief", json!({"ttlSecondsAfterFinished": 2, "stages": [{"name": "s", "run": sh("true")}]})).await;
    tokio::time::timeout(Duration::from_secs(90), async {
        while bed.runs.get_opt("brief").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .expect("the run is deleted after its TTL");
    tokio::time::timeout(Duration::from_secs(60), async {
        while !bed.jobs("brief").await.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .expect("its Jobs are garbage-collected");
    bed.done().await;
}

#[tokio::test]
async fn a_service_stage_serves_its_dependents_then_is_torn_down() {
    let bed = Bed::new("service").await;
    let web = sh("mkdir -p /www && echo \"hello from $(hostname)\" > /www/index.html && exec httpd -f -p 8080 -h /www");
    bed.create(
        "svc",
        json!({"stages": [
            {"name": "web", "service": {"replicas": 2, "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}},
             "run": web},
            {"name": "fetch", "needs": ["web"], "run": sh(
                "for a in $(echo $(stages.web.outputs.addresses) | tr , ' '); do wget -qO- http://$a:8080/; done")}
        ]}),
    )
    .await;
    let run = bed.finished("svc", 180).await;
    assert_eq!(phase(&run), Some(RunPhase::Succeeded), "{:?}", run.status);
    let web = stage(&run, "web");
    assert_eq!(web.phase, StagePhase::Succeeded);
    assert!(web.message.as_deref().unwrap().starts_with("torn down"), "{web:?}");
    let addresses: Vec<&str> = web.outputs["addresses"].split(',').collect();
    assert_eq!(addresses.len(), 2, "{addresses:?}");
    let log = bed.log_of("svc", "fetch", 1).await;
    let lines: BTreeSet<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "both pods answered, each with its own page: {log}");
    assert!(lines.iter().all(|l| l.starts_with("hello from svc-web-1-")), "{log}");
    // Torn down: the service Job is gone (its pods with it).
    let web_job = bed.job("svc", "web", 1).await;
    let deleted =
        bed.jobs("svc").await.iter().all(|j| j.name_any() != web_job || j.metadata.deletion_timestamp.is_some());
    assert!(deleted, "the service Job is deleted");
    bed.done().await;
}

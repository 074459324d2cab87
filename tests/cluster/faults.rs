//! Faults on the real cluster (`make test-faults`, alone: they restart the
//! API server and etcd): the operator killed amid 50 running pipelines, the
//! API server and etcd restarted, a stage's Job and pod deleted, a second
//! writer putting back a stale status. After each, every run reaches the
//! right final state with one Job per attempt and every stage's outputs, and
//! a local receiver got every stage's and run's final transition.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::crds::install_crds;
use crate::receiver::{Mode, Receiver};
use crate::support::{client, operator_config_file, wait_for, Operator, TestNamespace};
use gantry::api::pipelinerun::{RunPhase, StagePhase};
use gantry::api::PipelineRun;

/// A chain of `stages` stages; each writes `out=<run>.<stage>` and checks
/// that it received the previous stage's value through its environment.
/// Every transition is sent to `receiver`.
fn chain(run: &str, stages: usize, sleep_secs: u32, receiver: &str) -> serde_json::Value {
    let stages: Vec<serde_json::Value> = (0..stages)
        .map(|i| {
            let check = if i == 0 {
                String::new()
            } else {
                format!("test \"$GANTRY_OUTPUT_S{}_OUT\" = \"{run}.s{}\" || exit 3; ", i - 1, i - 1)
            };
            let script = format!("{check}sleep {sleep_secs}; echo \"out={run}.s{i}\" >> \"$GANTRY_OUTPUTS\"");
            let needs: Vec<String> = if i == 0 { vec![] } else { vec![format!("s{}", i - 1)] };
            json!({"name": format!("s{i}"), "needs": needs, "outputs": ["out"], "retries": 1,
                   "retryDelaySeconds": 1, "run": {"command": ["sh", "-c", script]}})
        })
        .collect();
    json!({"defaults": {"image": "local/busybox:1"}, "stages": stages, "notify": [{"url": receiver}]})
}

struct Bed {
    client: Client,
    ns: TestNamespace,
    runs: Api<PipelineRun>,
    receiver: Receiver,
    config: String,
}

impl Bed {
    async fn new(prefix: &str) -> Self {
        let client = client().await;
        install_crds(&client).await;
        let ns = TestNamespace::create(&client, prefix).await;
        let receiver = Receiver::start(Mode::Answer).await;
        let config = operator_config_file(&ns.name, "notify: {allowedDestinations: [127.0.0.1]}\n");
        Bed { runs: Api::namespaced(client.clone(), &ns.name), client, ns, receiver, config }
    }

    /// An operator for this namespace that may notify the receiver.
    fn operator(&self) -> Operator {
        Operator::for_pipelines_with(&self.ns.name, &["--config", &self.config])
    }

    async fn create_chain(&self, name: &str, stages: usize, sleep_secs: u32) {
        self.create(name, chain(name, stages, sleep_secs, &self.receiver.url)).await;
    }

    /// Waits until the receiver got, for every run, each stage's success and
    /// the run's (repeats allowed: delivery is at least once).
    async fn every_success_notified(&self, names: &[String], stages: usize) {
        let wanted: Vec<(String, String, Option<String>)> = names
            .iter()
            .flat_map(|run| {
                let stage_events =
                    (0..stages).map(|i| (run.clone(), "StageSucceeded".to_string(), Some(format!("s{i}"))));
                stage_events.chain(std::iter::once((run.clone(), "RunSucceeded".to_string(), None)))
            })
            .collect();
        let got = |events: &[serde_json::Value]| -> Vec<(String, String, Option<String>)> {
            events
                .iter()
                .map(|e| {
                    let data = &e["data"];
                    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
                    (
                        text(&data["run"]).unwrap_or_default(),
                        text(&data["reason"]).unwrap_or_default(),
                        text(&data["stage"]),
                    )
                })
                .collect()
        };
        let events = self
            .receiver
            .wait_for(300, "every stage's and run's success", |events| {
                let got = got(events);
                wanted.iter().all(|w| got.contains(w))
            })
            .await;
        assert!(!events.is_empty());
    }

    async fn create(&self, name: &str, spec: serde_json::Value) {
        let run: PipelineRun = serde_json::from_value(json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "metadata": {"name": name}, "spec": spec
        }))
        .expect("a well-formed PipelineRun");
        retry("create a run", || async { self.runs.create(&PostParams::default(), &run).await.map(|_| ()) }).await;
    }

    async fn wait(&self, name: &str, secs: u64, what: &str, cond: impl Fn(&PipelineRun) -> bool + Send + 'static) {
        wait_for(&self.runs, name, secs, what, move |r: Option<&PipelineRun>| r.is_some_and(&cond)).await;
    }

    async fn get(&self, name: &str) -> PipelineRun {
        retry("get a run", || self.runs.get(name)).await
    }

    async fn jobs(&self) -> Vec<Job> {
        let api = Api::<Job>::namespaced(self.client.clone(), &self.ns.name);
        let all = ListParams::default();
        retry("list Jobs", || api.list(&all)).await.items
    }

    /// Waits until every run of `names` has finished; checks each Succeeded
    /// with every stage Succeeded, every output as written, and exactly the
    /// Jobs its attempts name (one per attempt).
    async fn all_succeed_with_one_job_per_attempt(&self, names: &[String], stages: usize, secs: u64) {
        for name in names {
            self.wait(name, secs, "the run to finish", |r| {
                r.status.as_ref().and_then(|s| s.phase).is_some_and(RunPhase::is_finished)
            })
            .await;
        }
        let jobs = self.jobs().await;
        let mut jobs_by_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for job in &jobs {
            let run = job.labels().get("gantry.dev/run").cloned().unwrap_or_default();
            jobs_by_run.entry(run).or_default().push(job.name_any());
        }
        for name in names {
            let run = self.get(name).await;
            let status = run.status.clone().unwrap_or_default();
            assert_eq!(status.phase, Some(RunPhase::Succeeded), "{name}: {status:#?}");
            assert_eq!(status.stages.len(), stages, "{name}: a stage entry is missing");
            let mut expected_jobs = Vec::new();
            for stage in &status.stages {
                assert_eq!(stage.phase, StagePhase::Succeeded, "{name}/{}: {stage:#?}", stage.name);
                let out = stage.outputs.get("out").map(String::as_str);
                assert_eq!(out, Some(format!("{name}.{}", stage.name).as_str()), "{name}/{}: output lost", stage.name);
                expected_jobs.extend(stage.history.iter().map(|a| a.job_name.clone()));
                expected_jobs.extend(stage.job_name.clone());
            }
            expected_jobs.sort();
            expected_jobs.dedup();
            let mut actual = jobs_by_run.remove(name).unwrap_or_default();
            actual.sort();
            // A Job the fault itself deleted is in the history but gone.
            actual.iter().for_each(|job| assert!(expected_jobs.contains(job), "{name}: Job {job} no attempt names"));
            let current: Vec<&String> = status.stages.iter().filter_map(|s| s.job_name.as_ref()).collect();
            for job in current {
                assert!(actual.contains(job), "{name}: the Job of the current attempt {job} is missing");
            }
            let attempts: usize = status.stages.iter().map(|s| s.history.len().max(1)).sum();
            assert!(actual.len() <= attempts, "{name}: {} Jobs for {attempts} attempts: {actual:?}", actual.len());
        }
    }
}

/// Retries `call` through API server and etcd restarts (up to two minutes).
async fn retry<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("{what}: {e}; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// `e2e/cluster.sh restart COMPONENT` (off the test's runtime, which keeps
/// the receiver answering meanwhile).
async fn restart(component: &'static str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/cluster.sh");
    let status = tokio::task::spawn_blocking(move || Command::new(script).args(["restart", component]).status())
        .await
        .expect("the restart ran")
        .expect("run cluster.sh");
    assert!(status.success(), "cluster.sh restart {component}: {status}");
}

async fn wait_until_running(bed: &Bed, names: &[String], at_least: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let all = ListParams::default();
        let runs = retry("list runs", || bed.runs.list(&all)).await.items;
        let running = runs
            .iter()
            .filter(|r| names.contains(&r.name_any()))
            .filter(|r| r.status.as_ref().and_then(|s| s.phase) == Some(RunPhase::Running))
            .count();
        if running >= at_least {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {running} of {} runs got running", names.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn an_operator_killed_amid_50_pipelines_finishes_them_all_once() {
    let bed = Bed::new("faults-kill").await;
    let operator = bed.operator();
    let names: Vec<String> = (0..50).map(|i| format!("run-{i:02}")).collect();
    for name in &names {
        bed.create_chain(name, 3, 1).await;
    }
    wait_until_running(&bed, &names, 10).await;
    operator.crash();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _operator = bed.operator();
    bed.all_succeed_with_one_job_per_attempt(&names, 3, 900).await;
    bed.every_success_notified(&names, 3).await;
    bed.ns.delete().await;
}

#[tokio::test]
async fn restarts_of_the_api_server_and_etcd_lose_nothing() {
    let bed = Bed::new("faults-restart").await;
    let _operator = bed.operator();
    let names: Vec<String> = (0..8).map(|i| format!("run-{i}")).collect();
    for name in &names {
        bed.create_chain(name, 4, 3).await;
    }
    wait_until_running(&bed, &names, 4).await;
    restart("kube-apiserver").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    restart("etcd").await;
    bed.all_succeed_with_one_job_per_attempt(&names, 4, 600).await;
    bed.every_success_notified(&names, 4).await;
    bed.ns.delete().await;
}

#[tokio::test]
async fn a_deleted_job_or_pod_is_a_failed_attempt_retried_and_a_stale_status_is_repaired() {
    let bed = Bed::new("faults-delete").await;
    let _operator = bed.operator();
    let names: Vec<String> = ["job-deleted", "pod-deleted", "stale-status"].map(String::from).to_vec();
    for name in &names {
        bed.create_chain(name, 3, 8).await;
    }
    let first_running = |r: &PipelineRun| {
        r.status.as_ref().is_some_and(|s| s.stages.first().is_some_and(|st| st.phase == StagePhase::Running))
    };
    for name in &names {
        bed.wait(name, 120, "its first stage to run", first_running).await;
    }

    // Someone deletes the first stage's Job.
    let job = bed.get("job-deleted").await.status.unwrap().stages[0].job_name.clone().expect("a Job");
    let jobs = Api::<Job>::namespaced(bed.client.clone(), &bed.ns.name);
    jobs.delete(&job, &DeleteParams::background()).await.expect("delete the Job");

    // Someone deletes the first stage's pod, once it runs.
    let job = bed.get("pod-deleted").await.status.unwrap().stages[0].job_name.clone().expect("a Job");
    let pods = Api::<Pod>::namespaced(bed.client.clone(), &bed.ns.name);
    let selector = format!("job-name={job}");
    let pod = loop {
        let listed = pods.list(&ListParams::default().labels(&selector)).await.expect("list pods").items;
        if let Some(pod) =
            listed.into_iter().find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        {
            break pod;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    pods.delete(&pod.name_any(), &DeleteParams::default()).await.expect("delete the pod");

    // A second writer (a stale replica, say) puts back the status it saw
    // while the first stage ran, after the second stage has started.
    let stale = bed.get("stale-status").await.status.expect("a status");
    bed.wait("stale-status", 120, "its second stage to run", |r| {
        r.status.as_ref().is_some_and(|s| s.stages.get(1).is_some_and(|st| st.phase == StagePhase::Running))
    })
    .await;
    let patch = json!({"apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "status": stale});
    let params = PatchParams::apply("gantry").force();
    bed.runs.patch_status("stale-status", &params, &Patch::Apply(&patch)).await.expect("write the stale status");

    bed.all_succeed_with_one_job_per_attempt(&names, 3, 300).await;
    bed.every_success_notified(&names, 3).await;
    // The operator had let go of the finished first stage's Job: it read it
    // again rather than take it for lost, so that stage did not run twice.
    let repaired = bed.get("stale-status").await.status.unwrap();
    let first = &repaired.stages[0];
    assert_eq!((first.attempt, first.phase), (1, StagePhase::Succeeded), "not run again: {first:#?}");
    let deleted = bed.get("job-deleted").await.status.unwrap();
    let history = &deleted.stages[0].history;
    assert!(history.iter().any(|a| a.phase == StagePhase::Failed), "the deleted Job is a failed attempt: {history:#?}");
    bed.ns.delete().await;
}

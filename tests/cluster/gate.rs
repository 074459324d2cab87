//! Zuul-style gating (`concurrency.policy: Gate`) on the real kubelet: a
//! queue of changes whose busybox tests pass or fail by what their try is
//! tested on (`$GANTRY_GATE_AHEAD`), checked the way a user would (status,
//! `kubectl get`, `kubectl gantry list --gate`, Jobs, logs, Events), also
//! across operator crashes and a cancel.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::crds::install_crds;
use crate::support::{client, job_pod_and_log, kubeconfig_path, stage_job, wait_for, Operator, TestNamespace};
use gantry::api::pipelinerun::{Decision, GateStatus, GateVerdict, RunPhase, StagePhase};
use gantry::api::PipelineRun;

const GROUP: &str = "fuel-7.0";

/// A change's tests, by its revision: r2 is broken, r3 conflicts with r2
/// (it fails only when r2 is ahead of it), `slow` takes five minutes,
/// every other change passes.
const TEST_SCRIPT: &str = r#"echo "testing $GANTRY_SOURCE_REVISION on [$GANTRY_GATE_AHEAD] try $GANTRY_GATE_TRY"
sleep 3
echo 1..1
case "$GANTRY_SOURCE_REVISION" in
  slow) sleep 300 ;;
  r2) echo "not ok 1 - unit tests"; exit 1 ;;
  r3) case " $GANTRY_GATE_AHEAD " in *" r2 "*) echo "not ok 1 - unit tests"; exit 1 ;; esac ;;
esac
echo "ok 1 - unit tests""#;

/// What a merge stage does: here, say what it submits.
const SUBMIT_SCRIPT: &str = r#"echo "submitted $GANTRY_SOURCE_REVISION""#;

/// How long a whole queue may take to be decided.
const QUEUE_DEADLINE: u64 = 240;

/// A test namespace with its operator and a record of every Job made in it.
struct GateBed {
    client: Client,
    ns: TestNamespace,
    runs: Api<PipelineRun>,
    operator: Option<Operator>,
    jobs: JobLedger,
}

impl GateBed {
    async fn new(prefix: &str) -> Self {
        let client = client().await;
        install_crds(&client).await;
        let ns = TestNamespace::create(&client, prefix).await;
        let jobs = JobLedger::start(Api::namespaced(client.clone(), &ns.name)).await;
        let operator = Some(Operator::for_pipelines(&ns.name));
        GateBed { runs: Api::namespaced(client.clone(), &ns.name), client, ns, operator, jobs }
    }

    /// Creates `change-1` .. `change-N` in that order (queue order: by
    /// creation, then by name within a second), change `i` carrying the
    /// `i`th revision.
    async fn create_queue(&self, revisions: &[&str]) {
        for (i, revision) in (1..).zip(revisions) {
            let run: PipelineRun = serde_json::from_value(json!({
                "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
                "metadata": {"name": format!("change-{i}")},
                "spec": {
                    "source": {"repo": "https://review.fuel-infra.org/fuel-library", "revision": revision},
                    "concurrency": {"group": GROUP, "policy": "Gate"},
                    "stages": [
                        {"name": "test", "results": "tap", "run": sh(TEST_SCRIPT)},
                        {"name": "submit", "needs": ["test"], "merge": true, "run": sh(SUBMIT_SCRIPT)},
                    ],
                },
            }))
            .expect("a well-formed PipelineRun");
            self.runs.create(&PostParams::default(), &run).await.expect("create a change's run");
        }
    }

    async fn wait(&self, name: &str, what: &str, cond: impl Fn(&PipelineRun) -> bool + Send + 'static) -> PipelineRun {
        wait_for(&self.runs, name, QUEUE_DEADLINE, what, move |r: Option<&PipelineRun>| r.is_some_and(&cond)).await
    }

    async fn finished(&self, name: &str) -> PipelineRun {
        self.wait(name, "the run to finish", |r| phase(r).is_some_and(RunPhase::is_finished)).await
    }

    /// Kills the operator (SIGKILL) and starts a new one.
    fn crash_and_restart(&mut self) {
        if let Some(operator) = self.operator.take() {
            operator.crash();
        }
        self.operator = Some(Operator::for_pipelines(&self.ns.name));
    }

    async fn log_of(&self, run: &str, stage: &str, attempt: u32) -> String {
        let job = stage_job(&self.client, &self.ns.name, run, stage, attempt).await;
        job_pod_and_log(&self.client, &self.ns.name, &job).await.1
    }

    /// Waits until Events with each `(reason, run)` exist (they are published
    /// after the status that records the decision is written).
    async fn events_appear(&self, wanted: &[(&str, &str)]) {
        let api = Api::<Event>::namespaced(self.client.clone(), &self.ns.name);
        let wanted: BTreeSet<(String, String)> = wanted.iter().map(|(r, n)| (r.to_string(), n.to_string())).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let seen: BTreeSet<(String, String)> = api
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter_map(|e| Some((e.reason.clone()?, e.regarding.as_ref()?.name.clone()?)))
                .collect();
            let missing: Vec<_> = wanted.difference(&seen).collect();
            if missing.is_empty() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "Events missing: {missing:?}; seen {seen:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn done(self) {
        drop(self.operator);
        self.jobs.stop();
        self.ns.delete().await;
    }
}

/// Every Job ever seen in the namespace (by UID), from a watch started
/// before the first run: a Job deleted and made again still shows here.
struct JobLedger {
    seen: Arc<Mutex<BTreeMap<String, Job>>>,
    task: tokio::task::JoinHandle<()>,
}

impl JobLedger {
    async fn start(api: Api<Job>) -> Self {
        let seen: Arc<Mutex<BTreeMap<String, Job>>> = Arc::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) => {
                        record.lock().unwrap().insert(job.uid().unwrap_or_default(), job);
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("watching Jobs: {e}"),
                }
            }
        });
        ready_rx.await.expect("the Job watch lists once");
        JobLedger { seen, task }
    }

    /// The Job of `run`'s `stage` attempt `attempt`, once the watch has seen
    /// it (it may be gone since).
    async fn made_within(&self, run: &str, stage: &str, attempt: u32, wait: Duration) -> Job {
        let deadline = tokio::time::Instant::now() + wait;
        let wanted = |job: &Job| {
            let label = |key: &str| job.labels().get(key).cloned().unwrap_or_default();
            label("gantry.dev/run") == run
                && label("gantry.dev/stage") == stage
                && label("gantry.dev/attempt") == attempt.to_string()
        };
        loop {
            if let Some(job) = self.seen.lock().unwrap().values().find(|j| wanted(j)) {
                return job.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no Job for {run}/{stage} attempt {attempt} within {wait:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The runs that ever had a Job for `stage`.
    fn runs_with(&self, stage: &str) -> BTreeSet<String> {
        let seen = self.seen.lock().unwrap();
        let of_stage = seen.values().filter(|j| j.labels().get("gantry.dev/stage").map(String::as_str) == Some(stage));
        of_stage.filter_map(|j| j.labels().get("gantry.dev/run").cloned()).collect()
    }

    /// Asserts no Job was made twice: one Job per (run, stage, attempt) and
    /// one UID per Job name, over everything ever seen.
    fn assert_each_attempt_made_once(&self) {
        let seen = self.seen.lock().unwrap();
        let mut by_attempt: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (uid, job) in seen.iter() {
            let label = |key: &str| job.labels().get(key).cloned().unwrap_or_default();
            let key = (label("gantry.dev/run"), label("gantry.dev/stage"), label("gantry.dev/attempt"));
            by_attempt.entry(key).or_default().push(uid.clone());
            by_name.entry(job.name_any()).or_default().push(uid.clone());
        }
        assert!(!seen.is_empty(), "the watch saw the stage Jobs");
        let twice: Vec<_> = by_attempt.iter().filter(|(_, uids)| uids.len() > 1).collect();
        assert!(twice.is_empty(), "(run, stage, attempt) made more than once: {twice:?}");
        let twice: Vec<_> = by_name.iter().filter(|(_, uids)| uids.len() > 1).collect();
        assert!(twice.is_empty(), "Job names made more than once: {twice:?}");
    }

    fn stop(self) {
        self.task.abort();
    }
}

fn sh(script: &str) -> serde_json::Value {
    json!({"image": "local/busybox:1", "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script]})
}

fn phase(run: &PipelineRun) -> Option<RunPhase> {
    run.status.as_ref()?.phase
}

fn gate(run: &PipelineRun) -> GateStatus {
    run.status.as_ref().and_then(|s| s.gate.clone()).unwrap_or_else(|| panic!("{} has no status.gate", run.name_any()))
}

fn ahead_runs(gate: &GateStatus) -> Vec<&str> {
    gate.ahead.iter().map(|c| c.run.as_str()).collect()
}

/// The `Succeeded` condition's status and reason.
fn condition(run: &PipelineRun) -> (String, String) {
    let status = run.status.as_ref().unwrap();
    let c = status.conditions.iter().find(|c| c.type_ == "Succeeded").expect("a Succeeded condition");
    (c.status.clone(), c.reason.clone())
}

fn stage_attempt(run: &PipelineRun, stage: &str) -> u32 {
    let status = run.status.as_ref().unwrap();
    status.stages.iter().find(|s| s.name == stage).unwrap_or_else(|| panic!("no stage {stage}")).attempt
}

/// A stage container's env value in a Job.
fn job_env(job: &Job, name: &str) -> Option<String> {
    let pod = job.spec.as_ref()?.template.spec.as_ref()?;
    let env = pod.containers.first()?.env.as_ref()?;
    env.iter().find(|e| e.name == name)?.value.clone()
}

async fn kubectl(args: &[&str]) -> String {
    let out =
        tokio::process::Command::new("kubectl").args(args).env("KUBECONFIG", kubeconfig_path()).output().await.unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn kubectl_gantry(ns: &str, args: &[&str]) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-gantry"));
    command.args(["--kubeconfig", &kubeconfig_path(), "-n", ns]).args(args).env("NO_COLOR", "1").kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("kubectl gantry answers within a minute")
        .expect("start kubectl-gantry");
    assert_eq!(out.status.code(), Some(0), "kubectl gantry {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The cells of a table line (columns are at least three spaces apart).
fn cells(line: &str) -> Vec<&str> {
    line.split("   ").map(str::trim).filter(|c| !c.is_empty()).collect()
}

/// What a user checks once the four-change queue (r2 broken, r3 in conflict
/// with r2) is decided: 1, 3 and 4 merged in queue order, 2 rejected, the
/// runs behind 2 retested without it, merge stages only for merged runs,
/// and the `events` (reason, run) published.
async fn assert_queue_of_four_decided(bed: &GateBed, events: &[(&str, &str)]) {
    let mut done = BTreeMap::new();
    for i in 1..=4 {
        let name = format!("change-{i}");
        done.insert(i, bed.finished(&name).await);
    }
    for i in [1, 3, 4] {
        let run = &done[&i];
        let status = run.status.as_ref().unwrap();
        assert_eq!(gate(run).verdict, GateVerdict::Merged, "change-{i}: {:?}", status.message);
        assert_eq!(status.phase, Some(RunPhase::Succeeded), "change-{i}");
        assert_eq!(condition(run), ("True".into(), "Merged".into()), "change-{i}");
        let verdict = status.verdict.as_ref().expect("a finished run has a verdict");
        assert_eq!(verdict.decision, Decision::Pass, "change-{i}");
        let required: Vec<(&str, StagePhase)> =
            verdict.required.iter().map(|r| (r.stage.as_str(), r.outcome)).collect();
        assert_eq!(required, [("test", StagePhase::Succeeded), ("submit", StagePhase::Succeeded)], "change-{i}");
    }
    let rejected = &done[&2];
    let status = rejected.status.as_ref().unwrap();
    assert_eq!(gate(rejected).verdict, GateVerdict::Rejected, "{:?}", status.message);
    assert_eq!(status.phase, Some(RunPhase::Failed));
    assert_eq!(condition(rejected), ("False".into(), "Rejected".into()));
    let verdict = status.verdict.as_ref().expect("a finished run has a verdict");
    assert_eq!(verdict.decision, Decision::Fail);
    let test = verdict.required.iter().find(|r| r.stage == "test").expect("test is a required result");
    assert_eq!(test.outcome, StagePhase::Failed);
    assert!(test.failed_tests.iter().any(|t| t.contains("unit tests")), "the failed TAP test is named: {test:?}");
    let submit = verdict.required.iter().find(|r| r.stage == "submit").expect("submit is a required result");
    assert_ne!(submit.outcome, StagePhase::Succeeded, "a rejected change is not submitted");

    // Merged in queue order.
    let completed = |i: usize| done[&i].status.as_ref().unwrap().completion_time.expect("a completion time");
    assert!(completed(1) < completed(3) && completed(3) < completed(4), "merge order 1, 3, 4: {:?}", {
        (completed(1), completed(3), completed(4))
    });

    // The changes behind the rejected one were tested again without it.
    for i in [3, 4] {
        let last = gate(&done[&i]);
        assert!(last.try_number >= 2, "change-{i} was reset after change-2 was rejected: {last:?}");
        assert!(!ahead_runs(&last).contains(&"change-2"), "change-{i}'s last try is without change-2: {last:?}");
    }
    let fourth = gate(&done[&4]);
    assert!(ahead_runs(&fourth).iter().all(|r| *r == "change-3"), "tested on change-3 at most: {fourth:?}");
    let attempt = stage_attempt(&done[&4], "test");
    let job_name = stage_job(&bed.client, &bed.ns.name, "change-4", "test", attempt).await;
    let job = Api::<Job>::namespaced(bed.client.clone(), &bed.ns.name).get(&job_name).await.unwrap();
    let ahead_env = job_env(&job, "GANTRY_GATE_AHEAD").unwrap_or_default();
    assert!(!ahead_env.split(' ').any(|r| r == "r2"), "GANTRY_GATE_AHEAD of the last try: {ahead_env:?}");
    assert_eq!(job_env(&job, "GANTRY_GATE_TRY"), Some(fourth.try_number.to_string()));
    let log = bed.log_of("change-4", "test", attempt).await;
    let first = log.lines().next().unwrap_or_default();
    assert_eq!(first, format!("testing r4 on [{ahead_env}] try {}", fourth.try_number), "{log}");

    // The merge stage ran only for the merged changes, once each.
    let submitted = bed.jobs.runs_with("submit");
    assert_eq!(submitted.iter().collect::<Vec<_>>(), ["change-1", "change-3", "change-4"], "submit Jobs");
    let log = bed.log_of("change-3", "submit", stage_attempt(&done[&3], "submit")).await;
    assert_eq!(log.trim(), "submitted r3");

    bed.events_appear(events).await;
    bed.jobs.assert_each_attempt_made_once();
}

#[tokio::test]
async fn a_queue_of_four_merges_around_a_broken_change_and_a_conflict() {
    let bed = GateBed::new("gate").await;
    bed.create_queue(&["r1", "r2", "r3", "r4"]).await;

    // The first tries run at once, each change tested on the ones ahead of it.
    for (i, ahead) in [(1, ""), (2, "r1"), (3, "r1 r2"), (4, "r1 r2 r3")] {
        let job = bed.jobs.made_within(&format!("change-{i}"), "test", 1, Duration::from_secs(60)).await;
        // The API server drops an empty env value: unset is "".
        assert_eq!(job_env(&job, "GANTRY_GATE_AHEAD").unwrap_or_default(), ahead, "change-{i}'s first try");
        assert_eq!(job_env(&job, "GANTRY_GATE_TRY").as_deref(), Some("1"), "change-{i}'s first try");
    }

    let events = [
        ("GateMerged", "change-1"),
        ("GateRejected", "change-2"),
        ("GateReset", "change-3"),
        ("GateMerged", "change-3"),
        ("GateReset", "change-4"),
        ("GateMerged", "change-4"),
    ];
    assert_queue_of_four_decided(&bed, &events).await;

    // What `kubectl get` shows: the Gate column.
    let table = kubectl(&["get", "gpr", "-n", &bed.ns.name]).await;
    let lines: Vec<&str> = table.lines().collect();
    // Cells start where their header does (empty cells leave gaps).
    let at = lines[0].find("GATE").unwrap_or_else(|| panic!("a GATE column: {table}"));
    let column: Vec<&str> =
        lines[1..].iter().map(|l| l.get(at..).unwrap_or("").split_whitespace().next().unwrap_or("")).collect();
    assert_eq!(column, ["Merged", "Rejected", "Merged", "Merged"], "{table}");

    // What `kubectl gantry list --gate` shows: the queue in order.
    let listed = kubectl_gantry(&bed.ns.name, &["list", "--gate", GROUP]).await;
    let rows: Vec<Vec<&str>> = listed.lines().map(cells).collect();
    assert_eq!(rows[0], ["#", "NAME", "REVISION", "VERDICT", "POSITION", "TRY", "TESTED ON", "AGE"], "{listed}");
    let shown: Vec<(&str, &str, &str, &str)> = rows[1..].iter().map(|r| (r[0], r[1], r[2], r[3])).collect();
    assert_eq!(
        shown,
        [
            ("1", "change-1", "r1", "Merged"),
            ("2", "change-2", "r2", "Rejected"),
            ("3", "change-3", "r3", "Merged"),
            ("4", "change-4", "r4", "Merged")
        ],
        "{listed}"
    );
    let fourth = gate(&bed.runs.get("change-4").await.unwrap());
    let tested_on = if fourth.ahead.is_empty() { "base".to_string() } else { "r3".to_string() };
    assert_eq!(rows[4][5..7], [fourth.try_number.to_string(), tested_on], "{listed}");
    bed.done().await;
}

#[tokio::test]
async fn an_operator_killed_mid_queue_decides_it_the_same_way_without_duplicate_jobs() {
    let mut bed = GateBed::new("gate-crash").await;
    bed.create_queue(&["r1", "r2", "r3", "r4"]).await;

    // Killed once the first tries' Jobs are made...
    for i in 1..=4 {
        bed.jobs.made_within(&format!("change-{i}"), "test", 1, Duration::from_secs(60)).await;
    }
    bed.crash_and_restart();
    // ...and again once the queue has reset a change after the rejection.
    bed.wait("change-4", "a reset", |r| {
        r.status.as_ref().and_then(|s| s.gate.as_ref()).is_some_and(|g| g.try_number >= 2)
    })
    .await;
    bed.crash_and_restart();

    // Events are best effort: one being published as the operator is killed
    // is lost (the CloudEvent outbox is what survives). The merges of 1, 3
    // and 4 are published well before or after the kills.
    let events = [("GateMerged", "change-1"), ("GateMerged", "change-3"), ("GateMerged", "change-4")];
    assert_queue_of_four_decided(&bed, &events).await;
    bed.done().await;
}

#[tokio::test]
async fn a_cancelled_change_leaves_the_queue_and_the_changes_behind_it_merge_without_it() {
    let bed = GateBed::new("gate-cancel").await;
    bed.create_queue(&["r1", "slow", "r3"]).await;
    // change-2's tests pass too; it is cancelled while change-3 waits
    // behind it, tested on r1 r2.
    let third = bed
        .wait("change-3", "its first try to pass", |r| {
            r.status.as_ref().and_then(|s| s.gate.as_ref()).is_some_and(|g| g.verdict == GateVerdict::Passed)
        })
        .await;
    let before = gate(&third);
    assert_eq!(before.try_number, 1);
    assert!(ahead_runs(&before).contains(&"change-2"), "{before:?}");
    kubectl_gantry(&bed.ns.name, &["cancel", "change-2"]).await;

    let cancelled = bed.finished("change-2").await;
    assert_eq!(phase(&cancelled), Some(RunPhase::Cancelled));
    for i in [1, 3] {
        let run = bed.finished(&format!("change-{i}")).await;
        assert_eq!(gate(&run).verdict, GateVerdict::Merged, "change-{i}: {:?}", run.status.as_ref().unwrap().message);
        assert_eq!(phase(&run), Some(RunPhase::Succeeded));
    }
    let third = bed.runs.get("change-3").await.unwrap();
    let after = gate(&third);
    assert!(after.try_number > before.try_number, "change-3 was reset: {before:?} then {after:?}");
    assert!(!ahead_runs(&after).contains(&"change-2"), "{after:?}");
    let log = bed.log_of("change-3", "test", stage_attempt(&third, "test")).await;
    assert!(!log.lines().next().unwrap_or_default().contains("r2"), "the last try ran without r2: {log}");
    bed.events_appear(&[("GateReset", "change-3"), ("GateMerged", "change-3")]).await;
    let submitted = bed.jobs.runs_with("submit");
    assert!(!submitted.contains("change-2"), "a cancelled change is not submitted: {submitted:?}");
    bed.jobs.assert_each_attempt_made_once();
    bed.done().await;
}

//! `kubectl gantry logs / rerun / cancel / resubmit / repro`: the real
//! plugin binary against runs reconciled by a real operator, checked the
//! way a user would (what it prints, its exit code, what changed).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::crds::install_crds;
use crate::support::{
    client, job_pod_and_log, kubeconfig_path, managers, stage_job, wait_for, Operator, TestNamespace,
};
use gantry::api::pipelinerun::{RunPhase, StagePhase, StageStatus};
use gantry::api::PipelineRun;

struct Bed {
    client: Client,
    ns: TestNamespace,
    runs: Api<PipelineRun>,
    jobs: Api<Job>,
    _operator: Operator,
}

/// What one run of the plugin gave.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Bed {
    async fn new(prefix: &str) -> Self {
        let client = client().await;
        install_crds(&client).await;
        let ns = TestNamespace::create(&client, prefix).await;
        let _operator = Operator::for_pipelines(&ns.name);
        let runs = Api::namespaced(client.clone(), &ns.name);
        let jobs = Api::namespaced(client.clone(), &ns.name);
        Bed { client, ns, runs, jobs, _operator }
    }

    async fn create(&self, name: &str, spec: serde_json::Value) {
        let run: PipelineRun = serde_json::from_value(json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": name}, "spec": spec
        }))
        .expect("a well-formed PipelineRun");
        self.runs.create(&PostParams::default(), &run).await.expect("create PipelineRun");
    }

    async fn wait(&self, name: &str, what: &str, cond: impl Fn(&PipelineRun) -> bool + Send + 'static) -> PipelineRun {
        wait_for(&self.runs, name, 120, what, move |r: Option<&PipelineRun>| r.is_some_and(&cond)).await
    }

    async fn finished(&self, name: &str) -> PipelineRun {
        self.wait(name, "the run to finish", |r| phase(r).is_some_and(RunPhase::is_finished)).await
    }

    /// The plugin's command line for this namespace.
    fn plugin_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-gantry"));
        command.args(["--kubeconfig", &kubeconfig_path(), "-n", &self.ns.name]).args(args).env("NO_COLOR", "1");
        command
    }

    /// Runs the plugin to its end.
    async fn plugin(&self, args: &[&str]) -> Outcome {
        let mut command = self.plugin_command(args);
        let out = tokio::task::spawn_blocking(move || command.output().expect("run kubectl-gantry")).await.unwrap();
        let outcome = Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        println!("$ kubectl gantry {}\n{}{}[exit {}]", args.join(" "), outcome.stdout, outcome.stderr, outcome.code);
        outcome
    }

    /// Runs the plugin, expecting success; its stdout.
    async fn plugin_ok(&self, args: &[&str]) -> String {
        let out = self.plugin(args).await;
        assert_eq!(out.code, 0, "kubectl gantry {args:?} failed: {}", out.stderr);
        out.stdout
    }

    /// Runs the plugin, expecting a one-line error with exit code 2 or more; the line.
    async fn plugin_refuses(&self, args: &[&str]) -> String {
        let out = self.plugin(args).await;
        assert!(out.code >= 2, "kubectl gantry {args:?} exited {}: {}{}", out.code, out.stdout, out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "one line: {:?}", out.stderr);
        assert!(out.stderr.starts_with("error: "), "{:?}", out.stderr);
        for word in ["panicked", "backtrace", "RUST_BACKTRACE"] {
            assert!(!out.stderr.contains(word), "{word} in {:?}", out.stderr);
        }
        out.stderr.trim_end().to_string()
    }

    /// Starts the plugin in the background; its stdout lines arrive on the channel.
    fn spawn_plugin(&self, args: &[&str]) -> (Child, Receiver<String>) {
        let mut child = self.plugin_command(args).stdout(Stdio::piped()).spawn().expect("start kubectl-gantry");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("[kubectl gantry] {line}");
                let _ = tx.send(line);
            }
        });
        (child, rx)
    }

    async fn job_name(&self, run: &str, stage: &str, attempt: u32) -> String {
        stage_job(&self.client, &self.ns.name, run, stage, attempt).await
    }

    async fn log_of_job(&self, job: &str) -> String {
        job_pod_and_log(&self.client, &self.ns.name, job).await.1
    }

    /// Deletes a Job and its pod, and waits until both are gone.
    async fn delete_job(&self, job: &str) {
        let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Foreground), ..Default::default() };
        self.jobs.delete(job, &dp).await.expect("delete Job");
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.jobs.get_opt(job).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "Job {job} is still there after 60s");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Creates the objects of `manifest` with `kubectl create -f -`, as a user would.
    async fn kubectl_create(&self, manifest: &str) {
        let mut child = Command::new("kubectl")
            .args(["create", "-n", &self.ns.name, "-f", "-"])
            .env("KUBECONFIG", kubeconfig_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child.stdin.take().unwrap().write_all(manifest.as_bytes()).unwrap();
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
        assert!(out.status.success(), "kubectl create -f -: {}\n{manifest}", String::from_utf8_lossy(&out.stderr));
    }

    /// Waits until the Job `name` has a succeeded pod.
    async fn job_succeeded(&self, name: &str) -> Job {
        wait_for(&self.jobs, name, 120, "the Job to succeed", |j: Option<&Job>| {
            j.and_then(|j| j.status.as_ref()).and_then(|s| s.succeeded).is_some_and(|n| n >= 1)
        })
        .await
    }

    async fn done(self) {
        self.ns.delete().await;
    }
}

fn phase(run: &PipelineRun) -> Option<RunPhase> {
    run.status.as_ref()?.phase
}

fn stage<'a>(run: &'a PipelineRun, name: &str) -> &'a StageStatus {
    run.status.as_ref().unwrap().stages.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no stage {name}"))
}

fn sh(script: &str) -> serde_json::Value {
    json!({"image": "local/busybox:1", "command": ["sh", "-c", script]})
}

/// `sdk` reports a version unique to its pod; `test` fails its first
/// attempt and passes the second, saying which it is; `publish` reads the
/// version as a substituted argument and writes an output derived from it.
/// `marker` (the namespace) makes every log line this test's own.
fn nightly(marker: &str) -> serde_json::Value {
    json!({
        "params": [{"name": "marker", "value": marker}],
        "stages": [
            {"name": "sdk", "outputs": ["version"],
             "run": sh(r#"echo "sdk built for $GANTRY_PARAM_MARKER"; echo "version=3145-$(hostname)" >> "$GANTRY_OUTPUTS""#)},
            {"name": "test", "needs": ["sdk"], "retries": 1, "retryDelaySeconds": 1,
             "run": sh(r#"echo "test attempt $GANTRY_ATTEMPT of $GANTRY_OUTPUT_SDK_VERSION"
                          [ "$GANTRY_ATTEMPT" -ge 2 ] || { echo "not ok 1 - flaky"; exit 1; }
                          echo "ok 1 - boot""#)},
            {"name": "publish", "needs": ["test"], "outputs": ["tag"],
             "run": {"image": "local/busybox:1", "command": ["sh", "-c"],
                     "args": [r#"echo "publishing $(stages.sdk.outputs.version)"; echo "tag=v${GANTRY_OUTPUT_SDK_VERSION}-$GANTRY_PARAM_MARKER" >> "$GANTRY_OUTPUTS""#]}}
        ]
    })
}

/// Where in `text` the line `line` is (panics when it is not there).
fn line_index(text: &str, line: &str) -> usize {
    text.lines().position(|l| l == line).unwrap_or_else(|| panic!("no line {line:?} in:\n{text}"))
}

#[tokio::test]
async fn logs_print_each_stage_and_attempt_and_say_when_a_pod_is_gone() {
    let bed = Bed::new("plugin-logs").await;
    let marker = bed.ns.name.clone();
    bed.create("nightly", nightly(&marker)).await;
    let run = bed.finished("nightly").await;
    assert_eq!(phase(&run), Some(RunPhase::Succeeded), "{:?}", run.status);
    let version = stage(&run, "sdk").outputs["version"].clone();

    // One stage: its log as it is, no prefix.
    let sdk = bed.plugin_ok(&["logs", "nightly", "sdk"]).await;
    assert_eq!(sdk, format!("sdk built for {marker}\n"));
    // @latest is this run, the only one.
    assert_eq!(bed.plugin_ok(&["logs", "@latest", "sdk"]).await, sdk);

    // Every stage, prefixed, in spec order; test's current (second) attempt.
    let all = bed.plugin_ok(&["logs", "nightly"]).await;
    let sdk_at = line_index(&all, &format!("[sdk] sdk built for {marker}"));
    let test_at = line_index(&all, &format!("[test] test attempt 2 of {version}"));
    let publish_at = line_index(&all, &format!("[publish] publishing {version}"));
    assert!(sdk_at < test_at && test_at < publish_at, "spec order:\n{all}");
    assert!(all.lines().all(|l| ["[sdk] ", "[test] ", "[publish] "].iter().any(|p| l.starts_with(p))), "{all}");
    assert!(!all.contains("attempt 1"), "only current attempts:\n{all}");

    // --failed: the attempt that failed, whose log says it is the first.
    let failed = bed.plugin_ok(&["logs", "nightly", "test", "--failed"]).await;
    assert_eq!(failed, format!("test attempt 1 of {version}\nnot ok 1 - flaky\n"));
    let every_failed = bed.plugin_ok(&["logs", "nightly", "--failed"]).await;
    assert_eq!(every_failed, format!("[test] test attempt 1 of {version}\n[test] not ok 1 - flaky\n"));
    let second = bed.plugin_ok(&["logs", "nightly", "test", "--attempt", "2"]).await;
    assert_eq!(second, format!("test attempt 2 of {version}\nok 1 - boot\n"));

    // Bad input: one line, exit 2, naming what is wrong.
    let e = bed.plugin_refuses(&["logs", "nightly", "deploy"]).await;
    assert_eq!(e, "error: pipelinerun \"nightly\" has no stage \"deploy\" (its stages: sdk, test, publish)");
    let e = bed.plugin_refuses(&["logs", "nightly", "test", "--attempt", "7"]).await;
    assert_eq!(e, "error: stage \"test\" of pipelinerun \"nightly\" has no attempt 7 (it has attempts 1 to 2)");
    let e = bed.plugin_refuses(&["logs", "nightly", "sdk", "--failed"]).await;
    assert_eq!(e, "error: stage \"sdk\" of pipelinerun \"nightly\" has no failed attempt");
    let e = bed.plugin_refuses(&["logs", "no-such-run"]).await;
    assert_eq!(e, format!("error: pipelinerun \"no-such-run\" in namespace \"{marker}\" not found"));
    let e = bed.plugin_refuses(&["rerun", "nightly", "deploy"]).await;
    assert!(e.contains("has no stage \"deploy\""), "{e}");
    let e = bed.plugin_refuses(&["repro", "no-such-run", "sdk"]).await;
    assert!(e.contains("\"no-such-run\"") && e.contains("not found"), "{e}");

    // A stage whose Job is gone says so, and the others are still shown.
    let sdk_job = bed.job_name("nightly", "sdk", 1).await;
    bed.delete_job(&sdk_job).await;
    let gone = format!("stage sdk attempt 1: its pod is gone (Job {sdk_job} deleted)");
    let all = bed.plugin(&["logs", "nightly"]).await;
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert_eq!(all.stderr.trim_end(), gone);
    assert!(!all.stdout.contains("[sdk]"), "{}", all.stdout);
    line_index(&all.stdout, &format!("[publish] publishing {version}"));
    let e = bed.plugin_refuses(&["logs", "nightly", "sdk"]).await;
    assert_eq!(e, format!("error: {gone}"));
    bed.done().await;
}

#[tokio::test]
async fn rerun_runs_a_stage_again_and_repro_runs_an_attempt_to_the_same_outputs() {
    let bed = Bed::new("plugin-rerun").await;
    let marker = bed.ns.name.clone();
    bed.create("nightly", nightly(&marker)).await;
    let run = bed.finished("nightly").await;
    assert_eq!(phase(&run), Some(RunPhase::Succeeded), "{:?}", run.status);
    let test_job_2 = bed.job_name("nightly", "test", 2).await;
    let test_log_2 = bed.log_of_job(&test_job_2).await;

    let said = bed.plugin_ok(&["rerun", "nightly", "test"]).await;
    assert_eq!(said, "pipelinerun/nightly: rerun of stage test requested (and the stages that need it: publish)\n");
    let run = bed
        .wait("nightly", "the rerun to finish", |r| {
            phase(r) == Some(RunPhase::Succeeded) && stage(r, "publish").attempt == 2
        })
        .await;
    assert_eq!(stage(&run, "test").attempt, 3, "the stage ran again");
    assert_eq!(stage(&run, "sdk").attempt, 1, "upstream did not");
    let test_job_3 = bed.job_name("nightly", "test", 3).await;
    assert!(bed.jobs.get_opt(&test_job_3).await.unwrap().is_some(), "a new Job {test_job_3}");
    let version = stage(&run, "sdk").outputs["version"].clone();
    assert_eq!(
        bed.plugin_ok(&["logs", "nightly", "test"]).await,
        format!("test attempt 3 of {version}\nok 1 - boot\n")
    );

    // repro from the Job that ran publish's current attempt.
    let manifest = bed.plugin_ok(&["repro", "nightly", "publish"]).await;
    let publish_job = bed.job_name("nightly", "publish", 2).await;
    let repro_name = format!("{publish_job}-repro");
    assert!(manifest.contains(&format!("name: {repro_name}")), "{manifest}");
    bed.kubectl_create(&manifest).await;
    let repro = bed.job_succeeded(&repro_name).await;
    assert!(repro.owner_references().is_empty(), "the run does not own it");
    assert!(repro.labels().keys().all(|k| !k.starts_with("gantry.dev/")), "{:?}", repro.labels());
    let (pod, log) = job_pod_and_log(&bed.client, &bed.ns.name, &repro_name).await;
    assert_eq!(log, bed.log_of_job(&publish_job).await, "the same log as the stage's");
    let written = terminated_message(&pod);
    assert_eq!(written.trim(), format!("tag={}", stage(&run, "publish").outputs["tag"]), "the same outputs");
    assert_eq!(stage(&run, "publish").outputs["tag"], format!("v{version}-{marker}"));

    // The operator leaves the repro Job alone: the run stays as it was.
    let attempts = bed.jobs.list(&ListParams::default().labels("gantry.dev/run=nightly")).await.unwrap().items.len();
    assert_eq!(attempts, 6, "sdk 1, test 1-3, publish 1-2");
    let run = bed.runs.get("nightly").await.unwrap();
    assert_eq!((phase(&run), stage(&run, "publish").attempt), (Some(RunPhase::Succeeded), 2));

    // An attempt whose Job is gone is rebuilt from the spec and the status.
    bed.delete_job(&test_job_2).await;
    let rebuilt = bed.plugin(&["repro", "nightly", "test", "--attempt", "2"]).await;
    assert_eq!(rebuilt.code, 0, "{}", rebuilt.stderr);
    assert!(rebuilt.stderr.contains(&format!("Job {test_job_2} is gone; rebuilt")), "{}", rebuilt.stderr);
    bed.kubectl_create(&rebuilt.stdout).await;
    let rebuilt_name = format!("{test_job_2}-repro");
    bed.job_succeeded(&rebuilt_name).await;
    assert_eq!(bed.log_of_job(&rebuilt_name).await, test_log_2, "attempt 2 ran again as it had");

    let e = bed.plugin_refuses(&["repro", "nightly", "test", "--attempt", "9"]).await;
    assert!(e.contains("has no attempt 9"), "{e}");
    bed.done().await;
}

/// The termination message (the outputs file) of `pod`'s stage container.
fn terminated_message(pod: &k8s_openapi::api::core::v1::Pod) -> String {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    let stage = statuses.iter().find(|c| c.name == "stage").expect("the stage container's status");
    let terminated = stage.state.as_ref().and_then(|s| s.terminated.as_ref()).expect("the container terminated");
    terminated.message.clone().unwrap_or_default()
}

/// Waits up to `secs` for the child to exit; its exit code.
fn exit_code_within(child: &mut Child, secs: u64) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("poll kubectl-gantry") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Waits up to `secs` for a line equal to `line`; every line seen meanwhile.
fn lines_until(lines: &Receiver<String>, line: &str, secs: u64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    while let Ok(next) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let found = next == line;
        seen.push(next);
        if found {
            return seen;
        }
    }
    panic!("no line {line:?} within {secs}s; seen: {seen:?}")
}

#[tokio::test]
async fn logs_follow_ends_when_a_cancelled_run_ends_and_exits_non_zero() {
    let bed = Bed::new("plugin-cancel").await;
    let marker = bed.ns.name.clone();
    bed.create(
        "long",
        json!({"params": [{"name": "marker", "value": marker}], "stages": [
            {"name": "soak", "run": sh("echo \"soaking $GANTRY_PARAM_MARKER\"; sleep 300")},
            {"name": "report", "needs": ["soak"], "run": sh("echo never")}
        ]}),
    )
    .await;
    let (mut follower, lines) = bed.spawn_plugin(&["logs", "long", "-f"]);
    lines_until(&lines, &format!("[soak] soaking {marker}"), 90);

    let e = bed.plugin_refuses(&["logs", "long", "report"]).await;
    assert_eq!(e, "error: stage \"report\" of pipelinerun \"long\" has no attempt yet (Pending)");
    let e = bed.plugin_refuses(&["rerun", "long", "soak"]).await;
    assert!(e.contains("has not finished (Running)") && e.contains("RerunIgnored"), "{e}");

    let said = bed.plugin_ok(&["cancel", "long"]).await;
    assert!(said.starts_with("pipelinerun/long: cancel requested (it was Running)"), "{said}");
    let code = tokio::task::spawn_blocking(move || exit_code_within(&mut follower, 60)).await.unwrap();
    assert_eq!(code, Some(1), "logs -f ends with the run, non-zero: it did not succeed");
    let run = bed.finished("long").await;
    assert_eq!(phase(&run), Some(RunPhase::Cancelled));
    assert_eq!(stage(&run, "soak").phase, StagePhase::Cancelled);
    // The cancel is the user's change, the status the operator's.
    let managers = managers(&run.metadata);
    assert!(managers.contains(&"kubectl-gantry") && managers.contains(&"gantry"), "{managers:?}");
    let job = bed.jobs.get_opt(&bed.job_name("long", "soak", 1).await).await.unwrap();
    assert!(job.is_none_or(|j| j.metadata.deletion_timestamp.is_some()), "the stage's Job is deleted");

    let again = bed.plugin_ok(&["cancel", "long"]).await;
    assert_eq!(again, "pipelinerun/long already finished (Cancelled): nothing to cancel\n");
    bed.done().await;
}

#[tokio::test]
async fn logs_follow_of_a_run_that_succeeds_exits_zero_and_resubmit_runs_it_again() {
    let bed = Bed::new("plugin-resubmit").await;
    let marker = bed.ns.name.clone();
    let spec = json!({"params": [{"name": "marker", "value": marker}], "stages": [
        {"name": "build", "run": sh("sleep 2; echo \"built $GANTRY_PARAM_MARKER\"")},
        {"name": "check", "needs": ["build"], "run": sh("echo \"checked $GANTRY_PARAM_MARKER\"")}
    ]});
    bed.create("quick", spec).await;
    // Started before any stage: each is followed as it starts.
    let (mut follower, lines) = bed.spawn_plugin(&["logs", "quick", "-f"]);
    let code = tokio::task::spawn_blocking(move || exit_code_within(&mut follower, 120)).await.unwrap();
    assert_eq!(code, Some(0), "the run Succeeded");
    // It exited: its stdout is closed, so the reader thread ends.
    let seen: Vec<String> = lines.iter().collect();
    assert_eq!(seen, [format!("[build] built {marker}"), format!("[check] checked {marker}")]);

    let said = bed.plugin_ok(&["resubmit", "quick"]).await;
    let copy = said
        .strip_prefix("pipelinerun/")
        .and_then(|rest| rest.strip_suffix(" created (a resubmit of quick)\n"))
        .unwrap_or_else(|| panic!("unexpected: {said:?}"))
        .to_string();
    assert!(copy.starts_with("quick-") && copy.len() == "quick-".len() + 5, "{copy}");
    let run = bed.finished(&copy).await;
    assert_eq!(phase(&run), Some(RunPhase::Succeeded), "{:?}", run.status);
    let stages: Vec<&str> = run.status.as_ref().unwrap().stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(stages, ["build", "check"]);
    assert_eq!(run.annotations()["gantry.dev/resubmitted-from"], "quick");
    assert!(managers(&run.metadata).contains(&"kubectl-gantry"), "{:?}", run.metadata.managed_fields);
    assert_eq!(bed.plugin_ok(&["logs", &copy, "check"]).await, format!("checked {marker}\n"));
    bed.done().await;
}

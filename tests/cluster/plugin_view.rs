//! `kubectl gantry describe / list / watch / graph`: the real plugin binary
//! against runs a real operator ran on the real cluster, checked the way a
//! person reading its output would.

use std::process::Output;
use std::time::Duration;

use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

use crate::crds::install_crds;
use crate::support::{client, kubeconfig_path, wait_for, Operator, TestNamespace};
use gantry::api::pipelinerun::RunPhase;
use gantry::api::PipelineRun;

/// How long one plugin command may take (a `watch` lasts as long as its run).
const PLUGIN_DEADLINE: Duration = Duration::from_secs(180);

/// The plugin with `--kubeconfig` and `-n ns`, without colour.
fn plugin(ns: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-gantry"));
    command.args(["--kubeconfig", &kubeconfig_path(), "-n", ns]).args(args).env("NO_COLOR", "1").kill_on_drop(true);
    command
}

/// Runs the plugin to the end (failing the test past [`PLUGIN_DEADLINE`]).
async fn run_plugin(mut command: tokio::process::Command) -> Output {
    let output = tokio::time::timeout(PLUGIN_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("{command:?} did not finish within {PLUGIN_DEADLINE:?}"))
        .expect("start kubectl-gantry");
    eprintln!(
        "$ {command:?}\n{}{}(exit {:?})",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        output.status.code()
    );
    output
}

async fn gantry(ns: &str, args: &[&str]) -> Output {
    run_plugin(plugin(ns, args)).await
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the plugin exited 0 and gives its stdout.
fn ok(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(output));
    stdout(output)
}

/// Asserts a failure said in one line, with `code`, naming `needle`.
fn refused(output: &Output, code: i32, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "exit code; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("error: ") && err.contains(needle), "names {needle}: {err}");
    assert!(!err.contains("panicked") && !err.to_lowercase().contains("backtrace"), "{err}");
}

fn sh(script: &str) -> serde_json::Value {
    json!({"image": "local/busybox:1", "command": ["sh", "-c", script]})
}

async fn create(client: &Client, ns: &str, name: &str, spec: serde_json::Value) {
    let run: PipelineRun = serde_json::from_value(json!({
        "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("a well-formed PipelineRun");
    Api::<PipelineRun>::namespaced(client.clone(), ns).create(&PostParams::default(), &run).await.expect("create run");
}

async fn finished(client: &Client, ns: &str, name: &str) -> PipelineRun {
    let runs = Api::<PipelineRun>::namespaced(client.clone(), ns);
    let done = |r: Option<&PipelineRun>| {
        r.and_then(|r| r.status.as_ref()).and_then(|s| s.phase).is_some_and(RunPhase::is_finished)
    };
    wait_for(&runs, name, 180, "the run to finish", done).await
}

/// The tree row of `stage` in `describe`'s output: its name, then phase,
/// attempt and duration (marks like `[finally]` left out), then details.
fn stage_row(text: &str, stage: &str) -> Vec<String> {
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(|line| line.trim_start_matches(|c: char| " │├└─✔✖●◷○↷⊘".contains(c)))
        .filter(|cells| cells.split_whitespace().next() == Some(stage))
        .map(|cells| cells.split_whitespace().filter(|w| !w.starts_with('[')).map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 1, "stage {stage} has exactly one row in:\n{text}");
    rows.into_iter().next().unwrap()
}

/// A run with needs, a stage that fails once then succeeds on retry, a TAP
/// stage with an output, and a non-gating stage whose test fails.
fn known_spec() -> serde_json::Value {
    json!({"stages": [
        {"name": "prepare", "outputs": ["version"], "run": sh("echo version=1.2.$((6*7)) >> $GANTRY_OUTPUTS")},
        {"name": "flaky", "needs": ["prepare"], "retries": 2, "retryDelaySeconds": 1,
         "run": sh("if [ \"$GANTRY_ATTEMPT\" = 1 ]; then echo first try fails; exit 1; fi; echo ok")},
        {"name": "test", "needs": ["prepare"], "results": "tap", "outputs": ["summary"],
         "run": sh("printf '1..3\\nok 1 - boot\\nok 2 - network\\nok 3 - update # SKIP no mirror\\n'; echo summary=all-good >> $GANTRY_OUTPUTS")},
        {"name": "lint", "gating": false, "results": "tap",
         "run": sh("printf '1..2\\nok 1 - format\\nnot ok 2 - style\\n'; exit 1")},
        {"name": "publish", "needs": ["flaky", "test"], "run": sh("echo publishing $(stages.prepare.outputs.version)")}
    ]})
}

#[tokio::test]
async fn describe_list_and_graph_show_a_known_run() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "plugin-view").await;
    let operator = Operator::for_pipelines(&ns.name);
    create(&client, &ns.name, "known", known_spec()).await;
    let run = finished(&client, &ns.name, "known").await;
    assert_eq!(run.status.as_ref().unwrap().phase, Some(RunPhase::Succeeded), "{:?}", run.status);

    // describe: the header and one tree row per stage.
    let text = ok(&gantry(&ns.name, &["describe", "known"]).await);
    assert!(text.lines().any(|l| l.split_whitespace().eq(["Name:", "known"])), "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().eq(["Phase:", "Succeeded"])), "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().eq(["Progress:", "5/5"])), "{text}");
    assert_eq!(stage_row(&text, "prepare")[1..3], ["Succeeded", "1/1"]);
    assert!(stage_row(&text, "prepare").contains(&"version=1.2.42".to_string()), "its output: {text}");
    assert_eq!(stage_row(&text, "flaky")[1..3], ["Succeeded", "2/3"], "failed once, passed on retry");
    assert_eq!(stage_row(&text, "test")[1..3], ["Succeeded", "1/1"]);
    assert!(text.contains("summary=all-good"), "{text}");
    assert!(text.contains("tests 2 passed, 0 failed, 1 skipped"), "{text}");
    assert_eq!(stage_row(&text, "lint")[1..3], ["Failed", "1/1"]);
    assert!(text.contains("lint [non-gating]"), "{text}");
    assert!(text.contains("tests 1 passed, 1 failed, 0 skipped") && text.contains("failing: style"), "{text}");
    assert_eq!(stage_row(&text, "publish")[1], "Succeeded", "drawn once although it needs two stages");
    assert!(text.contains("also needs test"), "{text}");

    // @latest is this run; -o json is the run itself.
    let latest = ok(&gantry(&ns.name, &["describe", "@latest"]).await);
    assert!(latest.lines().any(|l| l.split_whitespace().eq(["Name:", "known"])), "{latest}");
    let json: PipelineRun = serde_json::from_str(&ok(&gantry(&ns.name, &["describe", "known", "-o", "json"]).await))
        .expect("-o json prints the run");
    assert_eq!(json.metadata.name.as_deref(), Some("known"));
    let (shown, known) = (json.status.unwrap(), run.status.clone().unwrap());
    assert_eq!((shown.phase, shown.progress, shown.stages.len()), (known.phase, known.progress, 5));

    // list: its phase and progress; filtered out by another phase.
    let listed = ok(&gantry(&ns.name, &["list"]).await);
    let row: Vec<&str> =
        listed.lines().find(|l| l.starts_with("known ")).expect("the run is listed").split_whitespace().collect();
    assert_eq!(row[..3], ["known", "Succeeded", "5/5"], "{listed}");
    let failed_only = ok(&gantry(&ns.name, &["list", "--phase", "Failed"]).await);
    assert!(!failed_only.contains("known"), "{failed_only}");
    let succeeded_only = ok(&gantry(&ns.name, &["list", "--phase", "Succeeded"]).await);
    assert!(succeeded_only.lines().any(|l| l.starts_with("known ")), "{succeeded_only}");

    // graph --format dot: valid for Graphviz, a node per stage and an edge per need.
    let dot = ok(&gantry(&ns.name, &["graph", "known", "--format", "dot"]).await);
    let dot_file = std::env::temp_dir().join(format!("plugin-view-{}.dot", ns.name));
    std::fs::write(&dot_file, &dot).unwrap();
    let drawn = tokio::process::Command::new("dot")
        .arg("-Tsvg")
        .arg(&dot_file)
        .output()
        .await
        .expect("Graphviz's dot is installed (e2e/cluster.sh installs graphviz)");
    let _ = std::fs::remove_file(&dot_file);
    assert!(drawn.status.success(), "dot accepts the DOT: {}\n{dot}", String::from_utf8_lossy(&drawn.stderr));
    let spec = &run.spec;
    for stage in &spec.stages {
        assert!(dot.contains(&format!("  \"{}\" [label=\"{}", stage.name, stage.name)), "node {}:\n{dot}", stage.name);
        for need in &stage.needs {
            assert!(
                dot.contains(&format!("  \"{need}\" -> \"{}\";", stage.name)),
                "edge {need}->{}:\n{dot}",
                stage.name
            );
        }
    }
    let needs: usize = spec.stages.iter().map(|s| s.needs.len()).sum();
    assert_eq!(dot.matches(" -> ").count(), needs, "one edge per need:\n{dot}");

    // --format svg: the picture; without `dot` on the PATH, a one-line error.
    let svg = ok(&gantry(&ns.name, &["graph", "known", "--format", "svg"]).await);
    assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
    let mut no_dot = plugin(&ns.name, &["graph", "known", "--format", "svg"]);
    no_dot.env("PATH", "/nonexistent");
    refused(&run_plugin(no_dot).await, 2, "apt-get install graphviz");

    drop(operator);
    ns.delete().await;
}

/// Every line of `watch` without a terminal is `HH:MM:SS what happened`.
fn transition_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let (clock, rest) = line.split_once(' ').unwrap_or_else(|| panic!("a clock and a transition: {line:?}"));
            let digits: Vec<&str> = clock.split(':').collect();
            assert!(digits.len() == 3 && digits.iter().all(|d| d.len() == 2 && d.parse::<u8>().is_ok()), "{line:?}");
            rest.to_string()
        })
        .collect()
}

#[tokio::test]
async fn watch_follows_a_run_to_its_end_and_exits_with_its_result() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "plugin-watch").await;
    let operator = Operator::for_pipelines(&ns.name);
    create(
        &client,
        &ns.name,
        "good",
        json!({"stages": [
        {"name": "build", "run": sh("sleep 3; echo built")},
        {"name": "check", "needs": ["build"], "run": sh("echo checked")}]}),
    )
    .await;
    create(
        &client,
        &ns.name,
        "bad",
        json!({"stages": [
        {"name": "build", "run": sh("sleep 3; echo broken >&2; exit 3")},
        {"name": "check", "needs": ["build"], "run": sh("echo never")}]}),
    )
    .await;
    // Both watches start while their runs are still to run, and end by themselves.
    let (good, bad) =
        tokio::join!(run_plugin(plugin(&ns.name, &["watch", "good"])), run_plugin(plugin(&ns.name, &["watch", "bad"])));

    assert_eq!(good.status.code(), Some(0), "watch of a run that Succeeded exits 0");
    let lines = transition_lines(&stdout(&good));
    assert!(lines.iter().any(|l| l == "build Running (attempt 1/1)"), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("build Succeeded in ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("check Succeeded in ")), "{lines:?}");
    assert!(lines.last().unwrap().starts_with("run good Succeeded in "), "{lines:?}");
    let build_done = lines.iter().position(|l| l.starts_with("build Succeeded")).unwrap();
    let check_done = lines.iter().position(|l| l.starts_with("check Succeeded")).unwrap();
    assert!(build_done < check_done, "in the order they happened: {lines:?}");

    assert_eq!(bad.status.code(), Some(1), "watch of a run that Failed exits 1");
    let lines = transition_lines(&stdout(&bad));
    assert!(lines.iter().any(|l| l.starts_with("build Failed in ") && l.contains("code 3")), "{lines:?}");
    assert!(lines.last().unwrap().starts_with("run bad Failed in "), "{lines:?}");

    // Watching a finished run prints where it ended and exits the same way.
    let again = gantry(&ns.name, &["watch", "good"]).await;
    assert_eq!(again.status.code(), Some(0));
    assert!(transition_lines(&stdout(&again)).last().unwrap().starts_with("run good Succeeded in "));
    let again = gantry(&ns.name, &["watch", "bad"]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(transition_lines(&stdout(&again)).iter().any(|l| l.starts_with("build Failed in ")));

    drop(operator);
    ns.delete().await;
}

#[tokio::test]
async fn bad_input_gets_one_line_and_an_exit_code() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "plugin-bad").await;
    for command in [&["describe", "nosuch"][..], &["watch", "nosuch"], &["graph", "nosuch", "--format", "svg"]] {
        refused(&gantry(&ns.name, command).await, 2, "pipelinerun \"nosuch\"");
    }
    refused(&gantry(&ns.name, &["describe", "@latest"]).await, 2, "no pipelinerun");
    refused(&gantry(&ns.name, &["describe", "build", "nosuch"]).await, 2, "imagebuild \"nosuch\"");
    let kata = format!("{}-nosuch", ns.name);
    refused(&gantry(&ns.name, &["describe", "kata", &kata]).await, 2, &format!("katainstall \"{kata}\""));

    // No cluster: a kubeconfig that does not exist, or one whose server does not answer.
    let mut missing = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-gantry"));
    missing.args(["--kubeconfig", "/nonexistent/kubeconfig", "describe", "x"]);
    refused(&run_plugin(missing).await, 3, "/nonexistent/kubeconfig");
    let dead = std::env::temp_dir().join(format!("kubeconfig-dead-{}", ns.name));
    std::fs::write(
        &dead,
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n\
         clusters: [{name: dead, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: dead, user: {token: x}}]\n\
         contexts: [{name: dead, context: {cluster: dead, user: dead}}]\n",
    )
    .unwrap();
    let mut unreachable = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-gantry"));
    unreachable.args(["--kubeconfig", dead.to_str().unwrap(), "watch", "x"]);
    refused(&run_plugin(unreachable).await, 3, "https://127.0.0.1:1");
    let _ = std::fs::remove_file(dead);
    ns.delete().await;
}

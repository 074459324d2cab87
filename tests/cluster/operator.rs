//! `gantry run` against the real cluster: it starts, says what it watches,
//! and stops cleanly on Ctrl-C (SIGINT) and SIGTERM.

use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{client, start_operator};

fn wait_for_lines(rx: &mpsc::Receiver<String>, wanted: &[&str], secs: u64) {
    let mut missing: Vec<&str> = wanted.to_vec();
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !missing.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => missing.retain(|w| !line.contains(w)),
            Err(_) => panic!("operator never logged {missing:?}"),
        }
    }
}

fn stop_with(child: &mut Child, signal: &str) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
    // Up to the operator's grace period for in-flight reconciles, plus slack.
    for _ in 0..150 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("operator did not stop within 15s of {signal}");
}

#[tokio::test]
async fn operator_watches_all_three_kinds_and_stops_cleanly() {
    let client = client().await;
    crate::crds::install_crds(&client).await;
    for signal in ["-INT", "-TERM"] {
        // KataInstalls are cluster-scoped: a selector nothing matches keeps
        // this operator away from the ones tests/cluster/katainstall.rs makes.
        let (mut child, rx) = start_operator(&["--katainstall-selector", "gantry.dev/e2e-test=none"]);
        wait_for_lines(&rx, &["watching PipelineRuns", "watching ImageBuilds", "watching KataInstalls"], 30);
        let status = stop_with(&mut child, signal);
        assert!(status.success(), "exit after {signal}: {status}");
        wait_for_lines(&rx, &["stopped"], 5);
    }
}

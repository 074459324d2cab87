//! kubectl against the local cluster, for the tests that drive the
//! in-cluster operator the way an admin would (`tests/install.rs`,
//! `tests/bad_input.rs`).

use std::process::Command;
use std::time::{Duration, Instant};

/// The local cluster's kubeconfig (or `$KUBECONFIG`).
pub fn kubeconfig() -> String {
    std::env::var("KUBECONFIG").unwrap_or_else(|_| {
        let dir = std::env::var("GANTRY_E2E_DIR").unwrap_or_else(|_| "/var/lib/gantry-e2e".into());
        format!("{dir}/kubeconfig")
    })
}

/// Runs kubectl; returns (success, stdout, stderr).
pub fn kubectl_raw(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl").args(args).env("KUBECONFIG", kubeconfig()).output().expect("run kubectl");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Runs kubectl, failing the test when it fails; returns stdout.
pub fn kubectl(args: &[&str]) -> String {
    let (ok, out, err) = kubectl_raw(args);
    assert!(ok, "kubectl {args:?} failed: {err}");
    out
}

/// Polls `check` every half second for up to `secs`.
pub fn eventually(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Deletes `name` if it exists, creates it again and waits for its default ServiceAccount.
pub fn fresh_namespace(name: &str) {
    let _ = kubectl_raw(&["delete", "namespace", name, "--wait=true", "--timeout=120s"]);
    kubectl(&["create", "namespace", name]);
    eventually("the default ServiceAccount", 60, || kubectl_raw(&["-n", name, "get", "sa", "default"]).0);
}

//! `e2e/helm.py`: Helm's own library (the PyPI package helm-python-sdk, in the venv that
//! `e2e/helm-venv.sh` makes) for the tests that render, lint and install the chart
//! (`tests/install_manifests.rs`, `tests/install.rs`). No helm binary is involved.

use std::path::PathBuf;
use std::process::Command;

/// The venv's python, where `e2e/helm-venv.sh` puts it: `$GANTRY_HELM_VENV`, else
/// `$GANTRY_CACHE/helm-venv` (default `/var/cache/gantry/helm-venv`).
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("GANTRY_HELM_VENV").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("GANTRY_CACHE").unwrap_or_else(|| "/var/cache/gantry".into());
        PathBuf::from(cache).join("helm-venv")
    });
    venv.join("bin/python")
}

/// Runs `e2e/helm.py ARGS`; returns (success, stdout, stderr). Fails the test, saying how to
/// make it, when the venv is missing.
pub fn helm_raw(args: &[&str]) -> (bool, String, String) {
    let python = venv_python();
    assert!(
        python.exists(),
        "Helm's library is not installed ({} is missing): run `e2e/helm-venv.sh` (or `make helm-venv`) first",
        python.display()
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/helm.py");
    let out = Command::new(&python)
        .arg(script)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} {script}: {e}", python.display()));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Runs `e2e/helm.py ARGS`, failing the test when it fails; returns stdout.
pub fn helm(args: &[&str]) -> String {
    let (ok, out, err) = helm_raw(args);
    assert!(ok, "e2e/helm.py {args:?} failed: {err}");
    out
}

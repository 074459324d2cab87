//! `describe kata NAME`: a KataInstall's nodes (state and error), its
//! shims and RuntimeClasses, and its smoke test.

use chrono::{DateTime, Utc};
use gantry::api::katainstall::KataInstall;
use kube::ResourceExt;

use crate::build_view::condition_lines;
use crate::describe::fields;
use crate::failure::one_line;
use crate::output::{self, word, Style};
use crate::time;
use crate::tree::truncate_chars;

const MAX_MESSAGE_CHARS: usize = 100;

pub fn render(install: &KataInstall, style: &Style, now: DateTime<Utc>) -> String {
    let status = install.status.clone().unwrap_or_default();
    let spec = &install.spec;
    let default_shim = spec.default_shim.clone().or_else(|| spec.shims.first().cloned()).unwrap_or_else(|| "-".into());
    let selector = if spec.node_selector.is_empty() {
        "all nodes".to_string()
    } else {
        spec.node_selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    };
    let mut pairs = vec![
        ("Name", install.name_any()),
        ("Phase", style.phase(&word(status.phase.as_ref()))),
        ("Installer", spec.installer_image.clone()),
        (
            "Nodes",
            format!(
                "{selector}: {} of {} installed, {} failed",
                status.nodes_installed, status.nodes_desired, status.nodes_failed
            ),
        ),
        ("Shims", format!("{} (default {default_shim})", spec.shims.join(", "))),
        (
            "Runtime classes",
            if status.runtime_classes.is_empty() { "-".into() } else { status.runtime_classes.join(", ") },
        ),
    ];
    let smoke = match (&status.smoke, spec.smoke_test.enabled) {
        (_, Some(false)) => "disabled".to_string(),
        (None, _) => "not run yet".to_string(),
        (Some(smoke), _) => {
            let mut text = style.phase(&word(Some(&smoke.result)));
            if let Some(start) = smoke.start_time {
                text.push_str(&format!(" (started {} ago)", time::short((now - start).num_seconds())));
            }
            if let Some(message) = &smoke.message {
                text.push_str(&format!(": {}", truncate_chars(&one_line(message), MAX_MESSAGE_CHARS)));
            }
            text
        }
    };
    pairs.push(("Smoke test", smoke));
    for line in condition_lines(&status.conditions) {
        pairs.push(("Condition", line));
    }
    let mut text = fields(&pairs);
    if status.nodes.is_empty() {
        return text;
    }
    let rows: Vec<Vec<String>> = status
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                style.phase(&word(Some(&n.state))),
                n.message.as_deref().map(|m| truncate_chars(&one_line(m), MAX_MESSAGE_CHARS)).unwrap_or_default(),
            ]
        })
        .collect();
    text.push('\n');
    text.push_str(&output::table(&["NODE", "STATE", "ERROR"], &rows));
    if status.nodes.len() < status.nodes_desired as usize {
        text.push_str(&format!("({} of {} nodes listed)\n", status.nodes.len(), status.nodes_desired));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::tests::at;
    use serde_json::json;

    fn install(spec: serde_json::Value, status: serde_json::Value) -> KataInstall {
        serde_json::from_value(json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "KataInstall",
            "metadata": {"name": "kata"}, "spec": spec, "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn nodes_show_their_state_and_error_with_runtime_classes_and_smoke() {
        let k = install(
            json!({"installerImage": "local/kata-deploy:1", "shims": ["qemu", "clh"], "nodeSelector": {"kvm": "true"}}),
            json!({"phase": "Degraded", "nodesDesired": 2, "nodesInstalled": 1, "nodesFailed": 1,
                   "nodes": [{"name": "node-b", "state": "Failed", "message": "no /dev/kvm\non this node"},
                             {"name": "node-a", "state": "Installed"}],
                   "runtimeClasses": ["kata-qemu", "kata-clh"],
                   "smoke": {"key": "k", "result": "Passed", "startTime": "2026-12-02T07:00:00Z", "message": "verified on node-a"}}),
        );
        let text = render(&k, &Style::plain(), at(90));
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "Name:             kata",
                "Phase:            Degraded",
                "Installer:        local/kata-deploy:1",
                "Nodes:            kvm=true: 1 of 2 installed, 1 failed",
                "Shims:            qemu, clh (default qemu)",
                "Runtime classes:  kata-qemu, kata-clh",
                "Smoke test:       Passed (started 1m30s ago): verified on node-a",
                "",
                "NODE     STATE       ERROR",
                "node-b   Failed      no /dev/kvm on this node",
                "node-a   Installed",
            ]
        );
    }

    #[test]
    fn a_fresh_install_has_no_nodes_yet_and_no_smoke() {
        let k = install(json!({"installerImage": "i", "shims": ["qemu"], "defaultShim": "qemu"}), json!(null));
        let text = render(&k, &Style::plain(), at(0));
        assert!(text.contains("Nodes:            all nodes: 0 of 0 installed, 0 failed\n"), "{text}");
        assert!(text.contains("Runtime classes:  -\n") && text.ends_with("Smoke test:       not run yet\n"), "{text}");
    }
}

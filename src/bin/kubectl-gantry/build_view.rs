//! `describe build NAME`: an ImageBuild's image, digest, lifecycle, last
//! use, retention and prune, then its recent builds.

use chrono::{DateTime, Utc};
use gantry::api::imagebuild::{ImageBuild, Retention};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

use crate::describe::fields;
use crate::failure::one_line;
use crate::output::{self, word, Style};
use crate::time;
use crate::tree::truncate_chars;

/// How much of a digest the builds table shows (`sha256:` and 12 hex digits, like docker).
const SHORT_DIGEST_CHARS: usize = 19;
const MAX_MESSAGE_CHARS: usize = 80;

pub fn render(build: &ImageBuild, style: &Style, now: DateTime<Utc>) -> String {
    let status = build.status.clone().unwrap_or_default();
    let dash = || "-".to_string();
    let mut pairs = vec![
        ("Name", build.name_any()),
        ("Namespace", build.namespace().unwrap_or_default()),
        ("Phase", style.phase(&word(status.phase.as_ref()))),
        ("Kind", word(Some(&build.spec.image_kind))),
        ("Output", build.spec.output.clone()),
        ("Image", status.latest_image.clone().unwrap_or_else(dash)),
        ("Digest", status.digest.clone().unwrap_or_else(dash)),
        ("Lifecycle", word(status.lifecycle.as_ref())),
        ("Last used", status.last_used.map(|t| ago(t, now)).unwrap_or_else(|| "never".into())),
        ("Retention", retention(&build.spec.retention)),
    ];
    if let Some(prune) = &status.prune {
        let mut text = format!("{} {} (Job {})", style.phase(&word(Some(&prune.phase))), prune.image, prune.job_name);
        if let Some(message) = &prune.message {
            text.push_str(&format!(": {}", truncate_chars(&one_line(message), MAX_MESSAGE_CHARS)));
        }
        pairs.push(("Prune", text));
    }
    for line in condition_lines(&status.conditions) {
        pairs.push(("Condition", line));
    }
    let mut text = fields(&pairs);
    if status.builds.is_empty() {
        text.push_str("\nNo builds yet.\n");
        return text;
    }
    let rows: Vec<Vec<String>> = status
        .builds
        .iter()
        .rev()
        .map(|b| {
            vec![
                b.suffix.clone(),
                style.phase(&word(Some(&b.phase))),
                b.digest.as_deref().map(|d| d.chars().take(SHORT_DIGEST_CHARS).collect()).unwrap_or_else(dash),
                time::span(b.start_time, b.completion_time, now).unwrap_or_else(dash),
                b.start_time.map(|t| time::short((now - t).num_seconds())).unwrap_or_else(dash),
                b.job_name.clone(),
                b.message.as_deref().map(|m| truncate_chars(&one_line(m), MAX_MESSAGE_CHARS)).unwrap_or_default(),
            ]
        })
        .collect();
    text.push('\n');
    text.push_str(&output::table(&["BUILD", "PHASE", "DIGEST", "DURATION", "AGE", "JOB", "MESSAGE"], &rows));
    text
}

fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", time::short((now - t).num_seconds()))
}

/// The retention rules in a line: `keep last 5, obsolete after 30d, prune after 7d`.
fn retention(r: &Retention) -> String {
    if r.permanent {
        return "permanent (never obsoleted or pruned)".into();
    }
    let mut parts = vec![format!("keep last {}", r.keep_last.unwrap_or(5))];
    if let Some(after) = &r.obsolete_after {
        parts.push(format!("obsolete after {after}"));
    }
    if let Some(after) = &r.prune_after {
        parts.push(format!("prune after {after}"));
    }
    parts.join(", ")
}

/// One line per condition: `Ready False (BuildFailed): message`.
pub fn condition_lines(conditions: &[Condition]) -> Vec<String> {
    conditions
        .iter()
        .map(|c| {
            let mut line = format!("{} {}", c.type_, c.status);
            if !c.reason.is_empty() {
                line.push_str(&format!(" ({})", c.reason));
            }
            if !c.message.is_empty() {
                line.push_str(&format!(": {}", truncate_chars(&one_line(&c.message), MAX_MESSAGE_CHARS)));
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::tests::at;
    use serde_json::json;

    fn build(spec: serde_json::Value, status: serde_json::Value) -> ImageBuild {
        serde_json::from_value(json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "ImageBuild",
            "metadata": {"name": "sdk", "namespace": "ci"}, "spec": spec, "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_built_image_shows_its_digest_lifecycle_and_builds_newest_first() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let b = build(
            json!({"builder": {"image": "local/busybox:1"}, "output": "registry.local:5000/sdk",
                   "retention": {"keepLast": 3, "obsoleteAfter": "30d"}}),
            json!({"phase": "Ready", "latestImage": "registry.local:5000/sdk:c1", "digest": digest,
                   "lifecycle": "Used", "lastUsed": "2026-12-02T07:00:00Z",
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Built", "message": "",
                                   "lastTransitionTime": "2026-12-02T07:00:00Z"}],
                   "builds": [
                     {"suffix": "c0", "jobName": "sdk-build-c0", "phase": "Failed",
                      "startTime": "2026-12-02T06:00:00Z", "completionTime": "2026-12-02T06:00:09Z",
                      "message": "builder exited with code 2"},
                     {"suffix": "c1", "jobName": "sdk-build-c1", "phase": "Ready", "digest": digest,
                      "startTime": "2026-12-02T06:30:00Z", "completionTime": "2026-12-02T06:31:05Z"}]}),
        );
        let text = render(&b, &Style::plain(), at(120));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[..12],
            [
                "Name:       sdk",
                "Namespace:  ci",
                "Phase:      Ready",
                "Kind:       container",
                "Output:     registry.local:5000/sdk",
                "Image:      registry.local:5000/sdk:c1",
                &format!("Digest:     {digest}"),
                "Lifecycle:  Used",
                "Last used:  2m ago",
                "Retention:  keep last 3, obsolete after 30d",
                "Condition:  Ready True (Built)",
                "",
            ]
        );
        let table: Vec<Vec<&str>> = lines[12..].iter().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(table[0], ["BUILD", "PHASE", "DIGEST", "DURATION", "AGE", "JOB", "MESSAGE"]);
        assert_eq!(table[1], ["c1", "Ready", "sha256:abababababab", "1m5s", "32m", "sdk-build-c1"]);
        assert_eq!(table[2][..6], ["c0", "Failed", "-", "9s", "1h2m", "sdk-build-c0"]);
        assert!(lines[14].ends_with("builder exited with code 2"), "{}", lines[14]);
    }

    #[test]
    fn a_new_build_says_so_and_permanent_images_say_they_stay() {
        let b =
            build(json!({"builder": {"image": "x"}, "output": "r/sdk", "retention": {"permanent": true}}), json!(null));
        let text = render(&b, &Style::plain(), at(0));
        assert!(text.contains("Last used:  never\n"), "{text}");
        assert!(text.contains("Retention:  permanent (never obsoleted or pruned)\n"), "{text}");
        assert!(text.ends_with("\nNo builds yet.\n"), "{text}");
    }
}

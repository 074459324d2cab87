//! The stage DAG drawn as a tree, like `argo get`: each stage appears once,
//! under the first stage it needs (the others it needs are noted beside it),
//! and stages that need nothing are the roots. Spec order decides the rest,
//! so the same run always draws the same way.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use gantry::api::pipelinerun::{PipelineRun, Stage, StagePhase};
use gantry::engine::text::ELLIPSIS;

use crate::output::{self, Style};
use crate::stages::{self, StageView};

/// Where one stage goes in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Its index in `spec.stages`.
    pub index: usize,
    /// The drawing before its name, e.g. `│ ├─`.
    pub branch: String,
    /// The drawing before the lines under it (its details and its children's branches).
    pub under: String,
    /// Whether stages hang under it.
    pub has_children: bool,
    /// The stages it needs besides the one it is drawn under.
    pub also_needs: Vec<String>,
}

/// The tree's rows, in drawing order. Roots: stages that need no stage of
/// the run, `finally` ones last; children in spec order. A stage in a need
/// cycle (an invalid spec) is drawn as a root once nothing else reaches it.
pub fn layout(stages: &[Stage]) -> Vec<Placement> {
    let index: HashMap<&str, usize> = stages.iter().enumerate().rev().map(|(i, s)| (s.name.as_str(), i)).collect();
    let parent: Vec<Option<usize>> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| s.needs.iter().filter_map(|n| index.get(n.as_str()).copied()).find(|&j| j != i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); stages.len()];
    for (i, p) in parent.iter().enumerate() {
        if let Some(p) = p {
            children[*p].push(i);
        }
    }
    let roots = (0..stages.len()).filter(|&i| parent[i].is_none());
    let (last, first): (Vec<usize>, Vec<usize>) = roots.partition(|&i| stages[i].finally);
    let mut placed = vec![false; stages.len()];
    let mut rows = Vec::with_capacity(stages.len());
    let mut walk = Walk { stages, parent: &parent, children: &children, placed: &mut placed, rows: &mut rows };
    for root in first.into_iter().chain(last) {
        walk.place(root, String::new(), String::new());
    }
    while let Some(stuck) = (0..stages.len()).find(|&i| !walk.placed[i]) {
        walk.place(stuck, String::new(), String::new());
    }
    rows
}

struct Walk<'a> {
    stages: &'a [Stage],
    parent: &'a [Option<usize>],
    children: &'a [Vec<usize>],
    placed: &'a mut Vec<bool>,
    rows: &'a mut Vec<Placement>,
}

impl Walk<'_> {
    fn place(&mut self, i: usize, branch: String, under: String) {
        self.placed[i] = true;
        let shown_parent = self.parent[i].filter(|_| !branch.is_empty()).map(|p| self.stages[p].name.as_str());
        let mut also_needs: Vec<String> = Vec::new();
        for need in &self.stages[i].needs {
            if Some(need.as_str()) != shown_parent && !also_needs.contains(need) {
                also_needs.push(need.clone());
            }
        }
        let children: Vec<usize> = self.children[i].iter().copied().filter(|&c| !self.placed[c]).collect();
        self.rows.push(Placement {
            index: i,
            branch,
            under: under.clone(),
            has_children: !children.is_empty(),
            also_needs,
        });
        for (k, &child) in children.iter().enumerate() {
            if self.placed[child] {
                continue;
            }
            let last = k + 1 == children.len();
            let branch = format!("{under}{}", if last { "└─" } else { "├─" });
            let below = format!("{under}{}", if last { "  " } else { "│ " });
            self.place(child, branch, below);
        }
    }
}

/// The widest an output's value is shown, and the whole outputs line.
const MAX_VALUE_CHARS: usize = 40;
const MAX_DETAIL_CHARS: usize = 100;
/// How many failing test names are listed.
const MAX_FAILED_NAMES: usize = 3;

/// The tree as an aligned table: a row per stage (symbol, name and marks,
/// phase, attempt, duration, first detail) and a row per further detail.
pub fn render(run: &PipelineRun, style: &Style, now: DateTime<Utc>) -> String {
    let views = stages::of(run);
    let mut rows: Vec<Vec<String>> = Vec::new();
    for place in layout(&run.spec.stages) {
        let stage = &views[place.index];
        let phase = stage.phase();
        let marks: String = stage.marks().iter().map(|m| format!(" [{m}]")).collect();
        let name = format!(
            "{}{} {}{marks}",
            place.branch,
            style.in_phase_colour(&stage.phase_word(), stages::symbol(phase)),
            stage.name()
        );
        let mut details = details(stage, &place.also_needs).into_iter();
        rows.push(vec![
            name,
            style.phase(&stage.phase_word()),
            stage.attempt().unwrap_or_else(|| "-".into()),
            stage.duration(now).unwrap_or_else(|| "-".into()),
            details.next().unwrap_or_default(),
        ]);
        let under = format!("{}{}", place.under, if place.has_children { "│ " } else { "  " });
        for detail in details {
            rows.push(vec![under.clone(), String::new(), String::new(), String::new(), style.dim(&detail)]);
        }
    }
    output::table(&["STAGE", "PHASE", "ATTEMPT", "DURATION", "DETAILS"], &rows)
}

/// What is worth a line about a stage: the other stages it needs, its
/// outputs, its tests (and the first failing ones), and why it failed,
/// waits or was cancelled or skipped.
pub fn details(stage: &StageView, also_needs: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    if !also_needs.is_empty() {
        lines.push(format!("also needs {}", also_needs.join(", ")));
    }
    if let Some(status) = stage.status {
        if !status.outputs.is_empty() {
            let pairs: Vec<String> = status
                .outputs
                .iter()
                .map(|(k, v)| format!("{k}={}", truncate_chars(&one_line(v), MAX_VALUE_CHARS)))
                .collect();
            lines.push(truncate_chars(&pairs.join(" "), MAX_DETAIL_CHARS));
        }
        if let Some(tests) = &status.tests {
            lines.push(format!("tests {} passed, {} failed, {} skipped", tests.passed, tests.failed, tests.skipped));
            if !tests.failed_names.is_empty() {
                let shown: Vec<&str> = tests.failed_names.iter().take(MAX_FAILED_NAMES).map(String::as_str).collect();
                let more = tests.failed_names.len().saturating_sub(MAX_FAILED_NAMES);
                let more = if more > 0 { format!(" (+{more} more)") } else { String::new() };
                lines.push(truncate_chars(&format!("failing: {}{more}", shown.join(", ")), MAX_DETAIL_CHARS));
            }
        }
    }
    let explains =
        matches!(stage.phase(), StagePhase::Failed | StagePhase::Waiting | StagePhase::Cancelled | StagePhase::Skipped);
    if let Some(message) = stage.message().filter(|_| explains) {
        lines.push(truncate_chars(&one_line(message), MAX_DETAIL_CHARS));
    }
    lines
}

fn one_line(text: &str) -> String {
    crate::failure::one_line(text)
}

/// `text` cut to `max` characters, ending in `…` when cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}{ELLIPSIS}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::tests::{at, run_from};
    use serde_json::json;

    fn stages(spec: serde_json::Value) -> Vec<Stage> {
        serde_json::from_value(spec).unwrap()
    }

    fn drawn(stages: &[Stage]) -> Vec<String> {
        layout(stages)
            .iter()
            .map(|p| {
                let also =
                    if p.also_needs.is_empty() { String::new() } else { format!(" +{}", p.also_needs.join(",")) };
                format!("{}{}{also}", p.branch, stages[p.index].name)
            })
            .collect()
    }

    #[test]
    fn a_diamond_draws_each_stage_once_under_its_first_need() {
        let s = stages(json!([
            {"name": "sdk"},
            {"name": "packages", "needs": ["sdk"]},
            {"name": "image", "needs": ["sdk"]},
            {"name": "test", "needs": ["image", "packages"]},
            {"name": "report", "finally": true},
            {"name": "lint"},
        ]));
        assert_eq!(
            drawn(&s),
            ["sdk", "├─packages", "└─image", "  └─test +packages", "lint", "report"],
            "roots in spec order, finally last; test under image, noting packages"
        );
    }

    #[test]
    fn deeper_branches_keep_their_vertical_lines() {
        let s = stages(json!([
            {"name": "a"}, {"name": "b", "needs": ["a"]}, {"name": "c", "needs": ["b"]}, {"name": "d", "needs": ["a"]},
        ]));
        let rows = layout(&s);
        let branches: Vec<(&str, &str)> = rows.iter().map(|p| (p.branch.as_str(), p.under.as_str())).collect();
        assert_eq!(branches, [("", ""), ("├─", "│ "), ("│ └─", "│   "), ("└─", "  ")]);
        assert!(rows[0].has_children && rows[1].has_children && !rows[2].has_children);
    }

    #[test]
    fn a_cycle_or_an_unknown_need_still_draws_every_stage_once() {
        let s = stages(json!([
            {"name": "a", "needs": ["b"]}, {"name": "b", "needs": ["a"]},
            {"name": "c", "needs": ["ghost"]}, {"name": "d", "needs": ["d", "c"]},
        ]));
        assert_eq!(drawn(&s), ["c +ghost", "└─d +d", "a +b", "└─b"]);
    }

    #[test]
    fn the_table_shows_phase_attempts_outputs_tests_and_why_it_failed() {
        let run = run_from(
            json!({"defaults": {"retries": 2}, "stages": [
                {"name": "sdk", "outputs": ["version"]},
                {"name": "test", "needs": ["sdk"], "results": "tap", "gating": false},
                {"name": "report", "finally": true}]}),
            json!({"stages": [
                {"name": "sdk", "phase": "Succeeded", "attempt": 2, "firstAttempt": 1,
                 "startTime": "2026-12-02T07:00:00Z", "completionTime": "2026-12-02T07:00:42Z",
                 "outputs": {"version": "3145.0.0"}},
                {"name": "test", "phase": "Failed", "attempt": 3, "firstAttempt": 1,
                 "startTime": "2026-12-02T07:00:42Z", "completionTime": "2026-12-02T07:01:00Z",
                 "tests": {"passed": 12, "failed": 1, "skipped": 0, "failedNames": ["cl.network"]},
                 "message": "exited with code 1\n(container test)"}]}),
        );
        let text = render(&run, &Style::plain(), at(3600));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "STAGE                   PHASE       ATTEMPT   DURATION   DETAILS",
                "✔ sdk                   Succeeded   2/3       42s        version=3145.0.0",
                "└─✖ test [non-gating]   Failed      3/3       18s        tests 12 passed, 1 failed, 0 skipped",
                "                                                         failing: cl.network",
                "                                                         exited with code 1 (container test)",
                "○ report [finally]      Pending     -         -",
            ]
        );
    }

    #[test]
    fn long_outputs_and_many_failing_tests_are_cut() {
        let long = "x".repeat(300);
        let run = run_from(
            json!({"stages": [{"name": "svc", "service": {}}]}),
            json!({"stages": [{"name": "svc", "phase": "Running", "attempt": 1,
                "outputs": {"addresses": "10.0.0.1,10.0.0.2", "blob": long},
                "tests": {"passed": 0, "failed": 5, "skipped": 1, "failedNames": ["a", "b", "c", "d", "e"]}}]}),
        );
        let views = stages::of(&run);
        let lines = details(&views[0], &[]);
        assert!(lines[0].starts_with("addresses=10.0.0.1,10.0.0.2 blob=xxx"), "{}", lines[0]);
        assert!(lines[0].ends_with('…') && lines[0].chars().count() <= MAX_DETAIL_CHARS, "{}", lines[0]);
        assert_eq!(lines[1], "tests 0 passed, 5 failed, 1 skipped");
        assert_eq!(lines[2], "failing: a, b, c (+2 more)");
        assert_eq!(lines.len(), 3, "no message line for a running stage");
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate_chars("ééééé", 5), "ééééé");
        assert_eq!(truncate_chars("éééééé", 5), "éééé…");
    }
}

//! A run's stage DAG in Graphviz's DOT language: a node per stage, filled in
//! its phase's colour and labelled with its phase, attempt and duration, and
//! an edge from each stage to the stages that need it.

use chrono::{DateTime, Utc};
use gantry::api::pipelinerun::{PipelineRun, StagePhase};
use kube::ResourceExt;

use crate::output::word;
use crate::stages;

/// The fill colour of a stage in `phase` (light, so black text reads on it).
pub fn fill(phase: StagePhase) -> &'static str {
    match phase {
        StagePhase::Pending => "#eeeeee",
        StagePhase::Waiting => "#fcd9a0",
        StagePhase::Running => "#fde68a",
        StagePhase::Succeeded => "#b7e4b0",
        StagePhase::Failed => "#f4a6a6",
        StagePhase::Skipped => "#dde3ea",
        StagePhase::Cancelled => "#cccccc",
    }
}

/// `text` as a DOT quoted string: quotes and backslashes escaped (a
/// backslash would otherwise start an escape such as `\N`), line breaks as
/// DOT's centred `\n`, other control characters dropped.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The DOT text of `run`'s DAG, left to right, `finally` stages at the
/// right end. Needs that name no stage (an invalid spec) draw no edge.
pub fn render(run: &PipelineRun, now: DateTime<Utc>) -> String {
    let views = stages::of(run);
    let phase = word(run.status.as_ref().and_then(|s| s.phase.as_ref()));
    let mut out = format!("digraph {} {{\n", quote(&run.name_any()));
    out.push_str(&format!(
        "  graph [rankdir=LR, labelloc=t, fontname=\"Helvetica\", label={}];\n",
        quote(&format!("{} ({phase})", run.name_any()))
    ));
    out.push_str("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=11];\n");
    out.push_str("  edge [color=\"#666666\"];\n");
    for stage in &views {
        let marks: String = stage.marks().iter().map(|m| format!(" [{m}]")).collect();
        let mut facts = vec![stage.phase_word()];
        if let Some(attempt) = stage.attempt() {
            facts.push(format!("attempt {attempt}"));
        }
        if let Some(duration) = stage.duration(now) {
            facts.push(duration);
        }
        let label = format!("{}{marks}\n{}", stage.name(), facts.join(", "));
        let style = if stage.spec.finally || stage.spec.gating == Some(false) {
            ", style=\"rounded,filled,dashed\""
        } else {
            ""
        };
        out.push_str(&format!(
            "  {} [label={}, fillcolor=\"{}\"{style}];\n",
            quote(stage.name()),
            quote(&label),
            fill(stage.phase())
        ));
    }
    for stage in &views {
        let mut drawn: Vec<&str> = Vec::new();
        for need in &stage.spec.needs {
            if drawn.contains(&need.as_str()) || !views.iter().any(|v| v.name() == need) {
                continue;
            }
            drawn.push(need);
            out.push_str(&format!("  {} -> {};\n", quote(need), quote(stage.name())));
        }
    }
    // `finally` stages run after every other: draw them last.
    let last: Vec<String> = views.iter().filter(|v| v.spec.finally).map(|v| quote(v.name())).collect();
    if !last.is_empty() {
        out.push_str(&format!("  {{ rank=sink; {}; }}\n", last.join("; ")));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::tests::{at, run_from};
    use serde_json::json;

    #[test]
    fn quoting_escapes_quotes_backslashes_and_line_breaks() {
        assert_eq!(quote("sdk"), "\"sdk\"");
        assert_eq!(quote("a\"b\\N\nc\r"), "\"a\\\"b\\\\N\\nc\"");
    }

    #[test]
    fn every_stage_is_a_node_in_its_colour_and_every_need_an_edge() {
        let run = run_from(
            json!({"stages": [
                {"name": "sdk"},
                {"name": "test", "needs": ["sdk", "sdk"], "retries": 2},
                {"name": "report", "finally": true, "needs": ["test", "ghost"]}]}),
            json!({"phase": "Running", "stages": [
                {"name": "sdk", "phase": "Succeeded", "attempt": 1, "startTime": "2026-12-02T07:00:00Z", "completionTime": "2026-12-02T07:00:03Z"},
                {"name": "test", "phase": "Running", "attempt": 2, "firstAttempt": 1, "startTime": "2026-12-02T07:00:03Z"}]}),
        );
        let text = render(&run, at(10));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "digraph \"nightly\" {");
        assert!(lines[1].contains("label=\"nightly (Running)\""), "{}", lines[1]);
        assert_eq!(
            &lines[4..],
            [
                "  \"sdk\" [label=\"sdk\\nSucceeded, attempt 1/1, 3s\", fillcolor=\"#b7e4b0\"];",
                "  \"test\" [label=\"test\\nRunning, attempt 2/3, 7s\", fillcolor=\"#fde68a\"];",
                "  \"report\" [label=\"report [finally]\\nPending\", fillcolor=\"#eeeeee\", style=\"rounded,filled,dashed\"];",
                "  \"sdk\" -> \"test\";",
                "  \"test\" -> \"report\";",
                "  { rank=sink; \"report\"; }",
                "}",
            ],
            "one edge per distinct need, none to a stage that does not exist"
        );
    }
}

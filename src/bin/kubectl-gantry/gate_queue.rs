//! `list --gate GROUP`: one `Gate` queue in order (as the operator orders it:
//! by creation, then name), with each change's place, verdict, try and what
//! its try is tested on. Pure: `list` fetches the runs.

use chrono::{DateTime, Utc};
use gantry::api::pipelinerun::{PipelineRun, RunPhase};
use gantry::engine::conditions::from_k8s_time;
use gantry::engine::pipelinerun::gate::{ahead_value, Standing};
use gantry::engine::pipelinerun::view::standing;
use kube::ResourceExt;

use crate::output::{self, word, Style};
use crate::time;

/// A change of the queue and its place in it (1 = the oldest).
pub struct Queued {
    pub place: usize,
    pub run: PipelineRun,
}

/// The runs of `group` with policy `Gate`, in queue order, numbered.
pub fn queue_of(runs: Vec<PipelineRun>, group: &str) -> Vec<Queued> {
    let mut members: Vec<PipelineRun> =
        runs.into_iter().filter(|run| run.spec.gate().is_some_and(|c| c.group == group)).collect();
    members.sort_by_key(|run| (created(run), run.name_any()));
    members.into_iter().enumerate().map(|(i, run)| Queued { place: i + 1, run }).collect()
}

fn created(run: &PipelineRun) -> Option<DateTime<Utc>> {
    run.metadata.creation_timestamp.as_ref().map(from_k8s_time)
}

/// The queue as a table: `#`, name, revision, verdict, position (undecided
/// runs ahead, for runs still in the queue), try, what the try is tested on
/// (`base`: nothing undecided ahead of it), age.
pub fn queue_table(queue: &[Queued], style: &Style, now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = queue
        .iter()
        .map(|Queued { place, run }| {
            let status = run.status.as_ref();
            let phase = status.and_then(|s| s.phase);
            let gate = status.and_then(|s| s.gate.as_ref());
            let in_queue = standing(phase, gate.map(|g| g.verdict)) == Standing::Undecided;
            let verdict = if phase == Some(RunPhase::Cancelled) {
                word(Some(&RunPhase::Cancelled))
            } else {
                word(gate.map(|g| &g.verdict))
            };
            let tried = gate.filter(|g| g.try_number > 0);
            let position = gate.filter(|_| in_queue).map(|g| g.position.to_string());
            let tested_on = tried.map(|g| if g.ahead.is_empty() { "base".to_string() } else { ahead_value(&g.ahead) });
            let revision = run.spec.source.as_ref().and_then(|s| s.revision.clone());
            let age = created(run).map(|c| time::short((now - c).num_seconds()));
            vec![
                place.to_string(),
                run.name_any(),
                or_dash(revision),
                style.phase(&verdict),
                or_dash(position),
                or_dash(tried.map(|g| g.try_number.to_string())),
                or_dash(tested_on),
                or_dash(age),
            ]
        })
        .collect();
    output::table(&["#", "NAME", "REVISION", "VERDICT", "POSITION", "TRY", "TESTED ON", "AGE"], &rows)
}

fn or_dash(cell: Option<String>) -> String {
    cell.unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::tests::{at, run_from};
    use serde_json::json;

    fn change(name: &str, created: i64, group: &str, policy: &str, status: serde_json::Value) -> PipelineRun {
        let spec = json!({
            "source": {"revision": format!("rev-{name}")},
            "concurrency": {"group": group, "policy": policy},
            "stages": [{"name": "test"}],
        });
        let mut run = run_from(spec, status);
        run.metadata.name = Some(name.into());
        run.metadata.creation_timestamp = Some(gantry::engine::conditions::to_k8s_time(at(created)));
        run
    }

    fn gate(verdict: &str, position: u32, attempt: u32, ahead: &[&str]) -> serde_json::Value {
        let ahead: Vec<_> = ahead.iter().map(|a| json!({"run": a, "revision": format!("rev-{a}")})).collect();
        json!({"verdict": verdict, "position": position, "try": attempt, "ahead": ahead})
    }

    #[test]
    fn the_queue_is_the_groups_gated_runs_by_creation_then_name() {
        let runs = vec![
            change("c", 10, "fuel", "Gate", json!(null)),
            change("b", 5, "fuel", "Gate", json!(null)),
            change("a", 10, "fuel", "Gate", json!(null)),
            change("other-group", 1, "main", "Gate", json!(null)),
            change("queued-not-gated", 1, "fuel", "Queue", json!(null)),
        ];
        let queue = queue_of(runs, "fuel");
        let order: Vec<(usize, String)> = queue.iter().map(|q| (q.place, q.run.name_any())).collect();
        assert_eq!(order, [(1, "b".into()), (2, "a".into()), (3, "c".into())]);
    }

    #[test]
    fn the_table_shows_place_verdict_position_try_and_what_each_is_tested_on() {
        let runs = vec![
            change("one", 0, "fuel", "Gate", json!({"phase": "Succeeded", "gate": gate("Merged", 0, 1, &[])})),
            change("two", 1, "fuel", "Gate", json!({"phase": "Failed", "gate": gate("Rejected", 0, 1, &["one"])})),
            change("three", 2, "fuel", "Gate", json!({"phase": "Running", "gate": gate("Testing", 0, 2, &[])})),
            change("four", 3, "fuel", "Gate", json!({"phase": "Running", "gate": gate("Passed", 1, 2, &["three"])})),
            change("five", 4, "fuel", "Gate", json!({"phase": "Cancelled", "gate": gate("Testing", 2, 1, &["three"])})),
            change("six", 5, "fuel", "Gate", json!({"phase": "Queued", "gate": gate("Queued", 2, 0, &[])})),
            change("seven", 6, "fuel", "Gate", json!(null)),
        ];
        let text = queue_table(&queue_of(runs, "fuel"), &Style::plain(), at(60));
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "#   NAME    REVISION    VERDICT     POSITION   TRY   TESTED ON   AGE",
                "1   one     rev-one     Merged      -          1     base        1m",
                "2   two     rev-two     Rejected    -          1     rev-one     59s",
                "3   three   rev-three   Testing     0          2     base        58s",
                "4   four    rev-four    Passed      1          2     rev-three   57s",
                "5   five    rev-five    Cancelled   -          1     rev-three   56s",
                "6   six     rev-six     Queued      2          -     -           55s",
                "7   seven   rev-seven   -           -          -     -           54s",
            ]
        );
    }

    #[test]
    fn a_change_tested_on_several_lists_their_revisions_in_queue_order() {
        let runs = vec![change(
            "d",
            0,
            "fuel",
            "Gate",
            json!({"phase": "Running", "gate": gate("Testing", 3, 1, &["a", "b", "c"])}),
        )];
        let text = queue_table(&queue_of(runs, "fuel"), &Style::plain(), at(0));
        assert!(text.lines().nth(1).unwrap().contains("   rev-a rev-b rev-c   "), "{text}");
    }
}

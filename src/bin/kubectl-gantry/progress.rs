//! `watch`'s progress line: a bar of finished stages, the elapsed time and,
//! when an earlier run of the same concurrency group finished, how long
//! that one took.

use chrono::{DateTime, Utc};
use gantry::api::pipelinerun::{PipelineRun, RunPhase};
use gantry::engine::conditions::from_k8s_time;
use kube::ResourceExt;

use crate::output::{word, Style};
use crate::time;

const BAR_WIDTH: usize = 24;

/// `[██████░░░░░░]`: `done` of `total` as a bar `width` cells wide.
pub fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = (done.min(total) * width).checked_div(total).unwrap_or(width);
    format!("[{}{}]", "█".repeat(filled), "░".repeat(width - filled))
}

/// The bar, `3/6 stages`, the elapsed time and the estimate:
/// `[████████░░░░] 3/6 stages   elapsed 1m5s   previous run took 2m10s, about 1m5s left`.
pub fn line(run: &PipelineRun, previous_seconds: Option<i64>, style: &Style, now: DateTime<Utc>) -> String {
    let total = run.spec.stages.len();
    let stages = run.status.as_ref().map(|s| s.stages.as_slice()).unwrap_or_default();
    let done = stages.iter().filter(|s| s.phase.is_finished()).count().min(total);
    let phase = word(run.status.as_ref().and_then(|s| s.phase.as_ref()));
    let mut text = format!("{} {done}/{total} stages", style.in_phase_colour(&phase, &bar(done, total, BAR_WIDTH)));
    let (start, end) = run.status.as_ref().map(|s| (s.start_time, s.completion_time)).unwrap_or_default();
    let elapsed = start.map(|start| (end.unwrap_or(now) - start).num_seconds());
    match elapsed {
        Some(seconds) => text.push_str(&format!("   elapsed {}", time::short(seconds))),
        None => text.push_str("   not started"),
    }
    if let Some(previous) = previous_seconds {
        text.push_str(&format!("   previous run took {}", time::short(previous)));
        let left = previous - elapsed.unwrap_or(0);
        if end.is_none() && left > 0 {
            text.push_str(&format!(", about {} left", time::short(left)));
        }
    }
    text
}

/// How long the latest earlier run of `run`'s concurrency group took, among
/// `others`: the one that Succeeded last before `run` was created (a failed
/// run stops early, so its time would promise too little).
pub fn previous_duration(run: &PipelineRun, others: &[PipelineRun]) -> Option<i64> {
    let group = &run.spec.concurrency.as_ref()?.group;
    let created = run.metadata.creation_timestamp.as_ref().map(from_k8s_time);
    others
        .iter()
        .filter(|o| o.uid() != run.uid() && o.spec.concurrency.as_ref().is_some_and(|c| &c.group == group))
        .filter_map(|o| {
            let status = o.status.as_ref().filter(|s| s.phase == Some(RunPhase::Succeeded))?;
            let (start, end) = (status.start_time?, status.completion_time?);
            created.is_none_or(|c| end <= c).then_some((end, (end - start).num_seconds()))
        })
        .max_by_key(|(end, _)| *end)
        .map(|(_, seconds)| seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::tests::{at, run_from};
    use serde_json::json;

    #[test]
    fn the_bar_fills_with_finished_stages() {
        assert_eq!(bar(0, 4, 8), "[░░░░░░░░]");
        assert_eq!(bar(1, 4, 8), "[██░░░░░░]");
        assert_eq!(bar(4, 4, 8), "[████████]");
        assert_eq!(bar(9, 4, 8), "[████████]");
        assert_eq!(bar(0, 0, 4), "[████]", "nothing to do is done");
    }

    fn running(stage_phases: &[&str], start: Option<&str>) -> PipelineRun {
        let names = ["a", "b", "c", "d"];
        run_from(
            json!({"concurrency": {"group": "nightly"}, "stages": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}),
            json!({"phase": "Running", "startTime": start, "stages": stage_phases.iter().zip(names)
                .map(|(p, n)| json!({"name": n, "phase": p})).collect::<Vec<_>>()}),
        )
    }

    #[test]
    fn the_line_counts_finished_stages_and_time_left() {
        let run = running(&["Succeeded", "Skipped", "Running", "Pending"], Some("2026-12-02T07:00:00Z"));
        let text = line(&run, Some(130), &Style::plain(), at(65));
        assert_eq!(
            text,
            "[████████████░░░░░░░░░░░░] 2/4 stages   elapsed 1m5s   previous run took 2m10s, about 1m5s left"
        );
        let late = line(&run, Some(30), &Style::plain(), at(65));
        assert!(late.ends_with("elapsed 1m5s   previous run took 30s"), "{late}");
        let waiting = line(&running(&[], None), None, &Style::plain(), at(5));
        assert!(waiting.ends_with("0/4 stages   not started"), "{waiting}");
    }

    fn finished(name: &str, uid: &str, phase: &str, start: &str, end: &str) -> PipelineRun {
        let mut run = run_from(
            json!({"concurrency": {"group": "nightly"}, "stages": []}),
            json!({"phase": phase, "startTime": start, "completionTime": end}),
        );
        run.metadata.name = Some(name.into());
        run.metadata.uid = Some(uid.into());
        run
    }

    #[test]
    fn the_estimate_is_the_latest_earlier_success_of_the_same_group() {
        let mut this = running(&[], None);
        this.metadata.uid = Some("this".into());
        this.metadata.creation_timestamp = Some(gantry::engine::conditions::to_k8s_time(at(3600)));
        let mut other_group = finished("x", "x", "Succeeded", "2026-12-02T07:10:00Z", "2026-12-02T07:10:05Z");
        other_group.spec.concurrency.as_mut().unwrap().group = "pr".into();
        let others = vec![
            finished("old", "1", "Succeeded", "2026-12-02T07:00:00Z", "2026-12-02T07:02:00Z"),
            finished("newer", "2", "Succeeded", "2026-12-02T07:20:00Z", "2026-12-02T07:21:05Z"),
            finished("failed", "3", "Failed", "2026-12-02T07:30:00Z", "2026-12-02T07:30:10Z"),
            finished("later", "4", "Succeeded", "2026-12-02T08:30:00Z", "2026-12-02T08:40:00Z"),
            other_group,
            this.clone(),
        ];
        assert_eq!(previous_duration(&this, &others), Some(65));
        this.spec.concurrency = None;
        assert_eq!(previous_duration(&this, &others), None, "no group, no estimate");
    }
}

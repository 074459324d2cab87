//! The gate's rules, one decision at a time, then whole queues simulated
//! against Zuul's sequential meaning: the merged changes are exactly those
//! that pass on top of every change merged ahead of them, in queue order.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::engine::testing::t;

fn change(run: &str) -> GateChange {
    GateChange { run: run.into(), revision: Some(format!("rev-{run}")) }
}

fn queued(name: &str, standing: Standing, decided_secs: Option<i64>) -> QueuedRun {
    QueuedRun { name: name.into(), revision: Some(format!("rev-{name}")), standing, decided_at: decided_secs.map(t) }
}

fn tested_on(runs: &[&str], try_number: u32) -> GateStatus {
    GateStatus {
        ahead: runs.iter().map(|r| change(r)).collect(),
        try_number,
        verdict: GateVerdict::Testing,
        ..Default::default()
    }
}

#[test]
fn a_new_run_in_the_window_starts_its_first_try_on_the_undecided_runs_ahead() {
    let ahead = [queued("a", Standing::Merged, Some(1)), queued("b", Standing::Undecided, None)];
    let d = decide(None, &ahead, 20, TryOutcome::Running, MergeOutcome::NoMergeStages);
    assert_eq!(d.step, Step::StartTry { reset: false });
    assert_eq!(d.ahead, vec![change("b")], "a merged change is part of the base, not ahead");
    assert_eq!(d.position, 1);
    assert_eq!(ahead_value(&d.ahead), "rev-b");
}

#[test]
fn outside_the_window_a_run_waits() {
    let ahead: Vec<QueuedRun> = (0..3).map(|i| queued(&format!("r{i}"), Standing::Undecided, None)).collect();
    let d = decide(None, &ahead, 3, TryOutcome::Running, MergeOutcome::NoMergeStages);
    assert_eq!(d.step, Step::Wait { reset: false });
    assert_eq!(verdict_of(&d.step), GateVerdict::Queued);
}

#[test]
fn a_try_stands_when_the_runs_it_included_merged() {
    let current = tested_on(&["a", "b"], 1);
    let ahead = [queued("a", Standing::Merged, Some(1)), queued("b", Standing::Undecided, None)];
    let d = decide(Some(&current), &ahead, 20, TryOutcome::Running, MergeOutcome::NoMergeStages);
    assert_eq!(d.step, Step::Test);
}

#[test]
fn a_rejected_or_withdrawn_run_ahead_resets_the_try_that_included_it() {
    let current = tested_on(&["a", "b"], 1);
    for gone in [Standing::Rejected, Standing::Withdrawn] {
        let ahead = [queued("a", Standing::Undecided, None), queued("b", gone, Some(2))];
        let d = decide(Some(&current), &ahead, 20, TryOutcome::Passed, MergeOutcome::NoMergeStages);
        assert_eq!(d.step, Step::StartTry { reset: true }, "{gone:?}");
        assert_eq!(d.ahead, vec![change("a")]);
    }
    // A deleted run is simply absent.
    let ahead = [queued("a", Standing::Undecided, None)];
    let d = decide(Some(&current), &ahead, 20, TryOutcome::Running, MergeOutcome::NoMergeStages);
    assert_eq!(d.step, Step::StartTry { reset: true });
}

#[test]
fn a_run_that_appears_ahead_resets_a_try_made_without_it() {
    let current = tested_on(&["a"], 1);
    let ahead = [queued("a", Standing::Undecided, None), queued("late", Standing::Undecided, None)];
    let d = decide(Some(&current), &ahead, 20, TryOutcome::Running, MergeOutcome::NoMergeStages);
    assert_eq!(d.step, Step::StartTry { reset: true });
}

#[test]
fn a_reset_run_outside_the_shrunken_window_stops_and_waits() {
    let current = tested_on(&["a", "b", "c"], 2);
    let ahead = [
        queued("a", Standing::Undecided, None),
        queued("b", Standing::Rejected, Some(5)),
        queued("c", Standing::Undecided, None),
        queued("d", Standing::Undecided, None),
    ];
    let d = decide(Some(&current), &ahead, 3, TryOutcome::Running, MergeOutcome::NoMergeStages);
    assert_eq!(d.step, Step::Wait { reset: true });
    assert_eq!(d.position, 3);
}

#[test]
fn a_failure_behind_undecided_runs_waits_and_at_the_head_rejects() {
    let current = tested_on(&["a"], 1);
    let undecided = [queued("a", Standing::Undecided, None)];
    let d = decide(Some(&current), &undecided, 20, TryOutcome::Failed, MergeOutcome::NoMergeStages);
    assert_eq!(d.step, Step::FailedWaiting);
    assert_eq!(verdict_of(&d.step), GateVerdict::Testing);
    let merged = [queued("a", Standing::Merged, Some(3))];
    let d = decide(Some(&current), &merged, 20, TryOutcome::Failed, MergeOutcome::NoMergeStages);
    assert!(matches!(d.step, Step::Rejected(_)), "{:?}", d.step);
}

#[test]
fn a_pass_waits_for_the_runs_ahead_then_merges_through_its_merge_stages() {
    let current = tested_on(&["a"], 1);
    let undecided = [queued("a", Standing::Undecided, None)];
    let d = decide(Some(&current), &undecided, 20, TryOutcome::Passed, MergeOutcome::Unfinished);
    assert_eq!(d.step, Step::PassedWaiting);
    let merged = [queued("a", Standing::Merged, Some(3))];
    let at_head = |merge| decide(Some(&current), &merged, 20, TryOutcome::Passed, merge).step;
    assert_eq!(at_head(MergeOutcome::Unfinished), Step::Merge);
    assert_eq!(at_head(MergeOutcome::Succeeded), Step::Merged);
    assert_eq!(at_head(MergeOutcome::NoMergeStages), Step::Merged);
    assert!(matches!(at_head(MergeOutcome::Failed), Step::Rejected(_)));
}

#[test]
fn the_window_grows_by_one_per_merge_and_halves_per_rejection_down_to_the_floor() {
    let decisions = |list: &[(Standing, i64)]| -> Vec<QueuedRun> {
        list.iter().enumerate().map(|(i, (s, at))| queued(&format!("r{i}"), *s, Some(*at))).collect()
    };
    assert_eq!(window(20, &[]), 20);
    assert_eq!(window(20, &decisions(&[(Standing::Merged, 1), (Standing::Merged, 2)])), 22);
    assert_eq!(window(20, &decisions(&[(Standing::Rejected, 1)])), 10);
    // In the order they were decided: 20 → 10 → 11 → 5 → 3 (floor) → 4.
    let mixed = decisions(&[
        (Standing::Merged, 3),
        (Standing::Rejected, 1),
        (Standing::Rejected, 4),
        (Standing::Rejected, 5),
        (Standing::Merged, 6),
    ]);
    assert_eq!(window(20, &mixed), 4);
    assert_eq!(window(2, &decisions(&[(Standing::Rejected, 1)])), 2, "a window set below the floor is its own floor");
    let withdrawn = [queued("x", Standing::Withdrawn, Some(1))];
    assert_eq!(window(20, &withdrawn), 20, "a cancel is no decision");
}

// ---- Whole queues -------------------------------------------------------

/// One simulated change: does its test pass on top of a set of changes?
#[derive(Debug, Clone)]
struct Change {
    /// Fails whatever is ahead.
    broken: bool,
    /// Fails when this change is in what it is tested on.
    conflicts_with: Option<usize>,
    /// Its merge stage fails.
    merge_fails: bool,
    /// Ticks its try takes.
    duration: u32,
    /// Cancelled at this tick, if still undecided.
    cancel_at: Option<u32>,
}

impl Change {
    fn passes_on(&self, tested_on: &BTreeSet<usize>) -> bool {
        !self.broken && !self.conflicts_with.is_some_and(|c| tested_on.contains(&c))
    }
}

/// A simulated run: its gate status and the state of its try.
#[derive(Debug, Clone, Default)]
struct SimRun {
    gate: Option<GateStatus>,
    /// Tick the current try finishes, and its result then.
    try_ends: Option<(u32, bool)>,
    merge_started: Option<u32>,
    standing: Option<Standing>,
    decided_at: Option<u32>,
    /// Every try's `ahead`, in order.
    tries: Vec<Vec<usize>>,
}

fn index_of(run: &str) -> usize {
    run.trim_start_matches('c').parse().unwrap()
}

fn name_of(i: usize) -> String {
    format!("c{i}")
}

/// Runs the queue until every change is decided (or a bound on ticks is
/// hit); returns the runs.
fn simulate(changes: &[Change], initial_window: u32, with_merge_stages: bool) -> Vec<SimRun> {
    let mut runs = vec![SimRun::default(); changes.len()];
    for tick in 0..10_000u32 {
        for (i, c) in changes.iter().enumerate() {
            if c.cancel_at == Some(tick) && runs[i].standing.is_none() {
                runs[i].standing = Some(Standing::Withdrawn);
            }
        }
        let snapshot: Vec<QueuedRun> = runs
            .iter()
            .enumerate()
            .map(|(i, r)| QueuedRun {
                name: name_of(i),
                revision: Some(format!("rev-{i}")),
                standing: r.standing.unwrap_or(Standing::Undecided),
                decided_at: r.decided_at.map(|d| t(i64::from(d))),
            })
            .collect();
        let w = window(initial_window, &snapshot);
        for i in 0..changes.len() {
            if runs[i].standing.is_some() {
                continue;
            }
            let run = &runs[i];
            let outcome = match run.try_ends {
                Some((end, passed)) if tick >= end => {
                    if passed {
                        TryOutcome::Passed
                    } else {
                        TryOutcome::Failed
                    }
                }
                _ => TryOutcome::Running,
            };
            let merge = match (with_merge_stages, run.merge_started) {
                (false, _) => MergeOutcome::NoMergeStages,
                (true, Some(started)) if tick > started => {
                    if changes[i].merge_fails {
                        MergeOutcome::Failed
                    } else {
                        MergeOutcome::Succeeded
                    }
                }
                (true, _) => MergeOutcome::Unfinished,
            };
            let d = decide(run.gate.as_ref(), &snapshot[..i], w, outcome, merge);
            let run = &mut runs[i];
            match &d.step {
                Step::StartTry { .. } => {
                    assert!(d.position < w, "a try starts only inside the window");
                    let on: BTreeSet<usize> =
                        d.ahead.iter().map(|c| index_of(&c.run)).chain(merged_before(&snapshot, i)).collect();
                    run.try_ends = Some((tick + changes[i].duration, changes[i].passes_on(&on)));
                    let next = run.gate.as_ref().map_or(0, |g| g.try_number) + 1;
                    let verdict = GateVerdict::Testing;
                    run.gate =
                        Some(GateStatus { ahead: d.ahead.clone(), try_number: next, verdict, ..Default::default() });
                    run.tries.push(d.ahead.iter().map(|c| index_of(&c.run)).collect());
                    run.merge_started = None;
                }
                Step::Wait { reset: true } => {
                    run.try_ends = None;
                    run.merge_started = None;
                    if let Some(g) = &mut run.gate {
                        g.verdict = GateVerdict::Queued;
                    }
                }
                Step::Merge if run.merge_started.is_none() => run.merge_started = Some(tick),
                Step::Merged => {
                    run.standing = Some(Standing::Merged);
                    run.decided_at = Some(tick);
                }
                Step::Rejected(_) => {
                    run.standing = Some(Standing::Rejected);
                    run.decided_at = Some(tick);
                }
                _ => {}
            }
        }
        if runs.iter().all(|r| r.standing.is_some()) {
            return runs;
        }
    }
    panic!("the queue never drained: {runs:#?}");
}

/// The changes merged ahead of run `i` in `snapshot`: the base it is tested on.
fn merged_before(snapshot: &[QueuedRun], i: usize) -> Vec<usize> {
    snapshot[..i].iter().enumerate().filter(|(_, r)| r.standing == Standing::Merged).map(|(j, _)| j).collect()
}

/// What a sequential gate (one change at a time, in order) would merge.
fn sequential(changes: &[Change], withdrawn: &BTreeSet<usize>, with_merge_stages: bool) -> Vec<usize> {
    let mut base = BTreeSet::new();
    for (i, c) in changes.iter().enumerate() {
        if withdrawn.contains(&i) {
            continue;
        }
        if c.passes_on(&base) && !(with_merge_stages && c.merge_fails) {
            base.insert(i);
        }
    }
    base.into_iter().collect()
}

fn check_against_zuul(changes: &[Change], window: u32, merge_stages: bool) {
    let runs = simulate(changes, window, merge_stages);
    let withdrawn: BTreeSet<usize> =
        runs.iter().enumerate().filter(|(_, r)| r.standing == Some(Standing::Withdrawn)).map(|(i, _)| i).collect();
    let merged: Vec<usize> =
        runs.iter().enumerate().filter(|(_, r)| r.standing == Some(Standing::Merged)).map(|(i, _)| i).collect();
    assert_eq!(merged, sequential(changes, &withdrawn, merge_stages), "merged set; runs: {runs:#?}");
    // Merged in queue order.
    let mut order: Vec<(u32, usize)> = merged.iter().map(|&i| (runs[i].decided_at.unwrap(), i)).collect();
    order.sort();
    assert!(order.windows(2).all(|w| w[0].1 < w[1].1), "merged in queue order: {order:?}");
    // No change rejected for a failure caused by a change ahead: a rejected
    // change fails on the base of everything merged ahead of it.
    for (i, r) in runs.iter().enumerate() {
        if r.standing == Some(Standing::Rejected) {
            let base: BTreeSet<usize> = merged.iter().copied().filter(|&m| m < i).collect();
            let fails = !changes[i].passes_on(&base) || (merge_stages && changes[i].merge_fails);
            assert!(fails, "c{i} was rejected though it passes on what merged ahead of it {base:?}");
        }
    }
}

#[test]
fn a_queue_of_four_where_the_second_fails_and_the_third_conflicts_with_it() {
    let ok = Change { broken: false, conflicts_with: None, merge_fails: false, duration: 3, cancel_at: None };
    let changes = vec![
        ok.clone(),
        Change { broken: true, ..ok.clone() },
        Change { conflicts_with: Some(1), ..ok.clone() },
        ok.clone(),
    ];
    let runs = simulate(&changes, 20, true);
    let standing: Vec<Standing> = runs.iter().map(|r| r.standing.unwrap()).collect();
    assert_eq!(standing, [Standing::Merged, Standing::Rejected, Standing::Merged, Standing::Merged]);
    assert_eq!(runs[3].tries.first(), Some(&vec![0, 1, 2]), "the fourth is first tested on everything ahead");
    assert!(!runs[3].tries.last().unwrap().contains(&1), "its last try is tested without the second");
    assert_eq!(runs[2].tries.len(), 2, "the third is retried once the second is rejected");
    check_against_zuul(&changes, 20, true);
}

fn arb_change(n: usize) -> impl Strategy<Value = Change> {
    (
        prop::bool::weighted(0.2),
        prop::option::weighted(0.2, 0..n),
        prop::bool::weighted(0.1),
        1u32..6,
        prop::option::weighted(0.1, 0u32..30),
    )
        .prop_map(|(broken, conflicts_with, merge_fails, duration, cancel_at)| Change {
            broken,
            conflicts_with,
            merge_fails,
            duration,
            cancel_at,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn queues_of_up_to_twenty_merge_what_a_sequential_gate_would(
        changes in (1usize..=20).prop_flat_map(|n| prop::collection::vec(arb_change(n), n)),
        window in prop::sample::select(vec![1u32, 3, 5, 20]),
        merge_stages in any::<bool>(),
    ) {
        check_against_zuul(&changes, window, merge_stages);
    }
}

#[test]
fn every_run_of_a_twenty_queue_with_no_failure_merges_in_one_try() {
    let ok = Change { broken: false, conflicts_with: None, merge_fails: false, duration: 2, cancel_at: None };
    let runs = simulate(&vec![ok; 20], 20, false);
    assert!(runs.iter().all(|r| r.standing == Some(Standing::Merged) && r.tries.len() == 1));
    let by_tries: BTreeMap<usize, usize> = runs.iter().enumerate().map(|(i, r)| (i, r.tries[0].len())).collect();
    assert!(by_tries.iter().all(|(i, ahead)| ahead == i), "each tested on everything ahead: {by_tries:?}");
}

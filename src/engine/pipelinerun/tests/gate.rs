//! `Gate` queues through the real planner: several runs of one group, each
//! planned with the others as its group, Jobs that pass or fail by what
//! their try is tested on (`GANTRY_GATE_AHEAD`), cancels, and status writes
//! that get lost (an operator that restarts before writing).

use std::collections::BTreeSet;

use super::*;
use crate::api::common::Source;
use crate::api::pipelinerun::{GateVerdict, Verdict};

/// One change of the queue and how its tests behave.
#[derive(Debug, Clone, Default)]
struct Change {
    /// Its test fails whatever is ahead.
    broken: bool,
    /// Its test fails when this change's revision is ahead.
    conflicts_with: Option<usize>,
    /// Its merge stage fails.
    merge_fails: bool,
    /// Cancelled at this tick (if still running).
    cancel_at: Option<u32>,
}

fn revision(i: usize) -> String {
    format!("r{i}")
}

fn gate_spec(i: usize, merge_stage: bool, window: Option<u32>) -> PipelineRunSpec {
    let mut stages = vec![stage("test", &[])];
    if merge_stage {
        let mut merge = stage("submit", &["test"]);
        merge.merge = true;
        stages.push(merge);
    }
    PipelineRunSpec {
        source: Some(Source { revision: Some(revision(i)), ..Default::default() }),
        concurrency: Some(Concurrency { group: "fuel-7.0".into(), policy: ConcurrencyPolicy::Gate, window }),
        stages,
        ..Default::default()
    }
}

/// A run of the queue: what the cluster holds for it.
struct Member {
    name: String,
    uid: String,
    spec: PipelineRunSpec,
    status: PipelineRunStatus,
    jobs: Vec<JobObservation>,
    created_jobs: BTreeSet<String>,
    /// `GANTRY_GATE_AHEAD` of each test Job, by Job name.
    tested_on: Vec<(String, String)>,
    /// The changes merged when each test Job was made: the base it tests on.
    base: Vec<(String, Vec<usize>)>,
}

struct Queue {
    changes: Vec<Change>,
    members: Vec<Member>,
    settings: Settings,
    now: DateTime<Utc>,
}

impl Queue {
    fn new(changes: Vec<Change>, merge_stage: bool, window: Option<u32>) -> Self {
        let members = (0..changes.len())
            .map(|i| Member {
                name: format!("change-{i:02}"),
                uid: format!("uid-{i}"),
                spec: gate_spec(i, merge_stage, window),
                status: PipelineRunStatus::default(),
                jobs: Vec::new(),
                created_jobs: BTreeSet::new(),
                tested_on: Vec::new(),
                base: Vec::new(),
            })
            .collect();
        Queue { changes, members, settings: Settings::default(), now: t0() }
    }

    fn created(i: usize) -> DateTime<Utc> {
        t0() + chrono::Duration::seconds(i as i64)
    }

    fn group_for(&self, me: usize) -> Vec<GroupMember> {
        self.members
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != me)
            .map(|(j, m)| GroupMember {
                name: m.name.clone(),
                created: Self::created(j),
                started: m.status.start_time,
                finished: m.status.phase.is_some_and(RunPhase::is_finished),
                superseded: false,
                policy: ConcurrencyPolicy::Gate,
                revision: Some(revision(j)),
                phase: m.status.phase,
                gate_verdict: m.status.gate.as_ref().map(|g| g.verdict),
                completed: m.status.completion_time,
            })
            .collect()
    }

    /// Plans every run once (in an order that varies with `tick`); a plan's
    /// status is dropped when `lose` says so (its actions still happen).
    fn plan_all(&mut self, tick: u32, lose: &dyn Fn(u32, usize) -> bool) {
        let n = self.members.len();
        for k in 0..n {
            let i = if tick.is_multiple_of(2) { k } else { n - 1 - k };
            if self.changes[i].cancel_at == Some(tick) {
                self.members[i].spec.cancel = true;
            }
            let observed =
                Observed { jobs: self.members[i].jobs.clone(), group: self.group_for(i), ..Default::default() };
            let m = &self.members[i];
            let view = View {
                name: &m.name,
                uid: &m.uid,
                generation: Some(1),
                created: Self::created(i),
                spec: &m.spec,
                status: &m.status,
                rerun: None,
                superseded_by: None,
                settings: &self.settings,
            };
            let plan = plan(&view, &observed, self.now);
            let merged: Vec<usize> = (0..n)
                .filter(|&j| self.members[j].status.gate.as_ref().is_some_and(|g| g.verdict == GateVerdict::Merged))
                .collect();
            let m = &mut self.members[i];
            for action in &plan.actions {
                match action {
                    Action::CreateJob(l) => {
                        assert!(m.created_jobs.insert(l.job_name.clone()), "Job {} created twice", l.job_name);
                        if l.stage == "test" {
                            m.tested_on.push((l.job_name.clone(), env_of(l, "GANTRY_GATE_AHEAD").unwrap()));
                            m.base.push((l.job_name.clone(), merged.clone()));
                        }
                        m.jobs.push(JobObservation {
                            stage: l.stage.clone(),
                            attempt: l.attempt,
                            outcome: JobOutcome {
                                name: l.job_name.clone(),
                                created: Some(self.now),
                                ..Default::default()
                            },
                        });
                    }
                    Action::DeleteJob { name } => m.jobs.retain(|j| &j.outcome.name != name),
                    _ => {}
                }
            }
            if !lose(tick, i) {
                m.status = plan.status;
            }
        }
    }

    /// Ends every active Job: a test by what it was tested on, a merge by the change.
    fn finish_jobs(&mut self) {
        for (i, m) in self.members.iter_mut().enumerate() {
            let change = &self.changes[i];
            for job in m.jobs.iter_mut().filter(|j| j.outcome.state == JobState::Active) {
                let passed = if job.stage == "test" {
                    let ahead = &m.tested_on.iter().find(|(n, _)| n == &job.outcome.name).unwrap().1;
                    let base = &m.base.iter().find(|(n, _)| n == &job.outcome.name).unwrap().1;
                    let ahead: Vec<&str> = ahead.split_whitespace().collect();
                    let on = |c: usize| ahead.contains(&revision(c).as_str()) || base.contains(&c);
                    !change.broken && !change.conflicts_with.is_some_and(on)
                } else {
                    !change.merge_fails
                };
                job.outcome.state = if passed { JobState::Succeeded } else { JobState::Failed };
                job.outcome.finished = Some(self.now);
                job.outcome.pod = Some(format!("{}-x", job.outcome.name));
                if !passed {
                    job.outcome.message = Some("container stage exited with code 1 (Error)".into());
                }
            }
        }
    }

    fn run(&mut self, lose: &dyn Fn(u32, usize) -> bool) {
        for tick in 0..400 {
            self.plan_all(tick, lose);
            if self.members.iter().all(|m| m.status.phase.is_some_and(RunPhase::is_finished)) {
                return;
            }
            self.finish_jobs();
            self.now += chrono::Duration::seconds(5);
        }
        let state: Vec<_> = self.members.iter().map(|m| (&m.name, m.status.phase, &m.status.gate)).collect();
        panic!("the queue never drained: {state:#?}");
    }

    fn verdicts(&self) -> Vec<Option<GateVerdict>> {
        self.members.iter().map(|m| m.status.gate.as_ref().map(|g| g.verdict)).collect()
    }
}

/// What a gate testing one change at a time, in order, would merge.
fn sequential(changes: &[Change], withdrawn: &BTreeSet<usize>, merge_stage: bool) -> Vec<usize> {
    let mut merged: Vec<usize> = Vec::new();
    for (i, c) in changes.iter().enumerate().filter(|(i, _)| !withdrawn.contains(i)) {
        let conflict = c.conflicts_with.is_some_and(|x| merged.contains(&x));
        let fails = c.broken || conflict || (merge_stage && c.merge_fails);
        if !fails {
            merged.push(i);
        }
    }
    merged
}

fn check(queue: &Queue, merge_stage: bool) {
    let withdrawn: BTreeSet<usize> =
        (0..queue.members.len()).filter(|&i| queue.members[i].status.phase == Some(RunPhase::Cancelled)).collect();
    let merged: Vec<usize> =
        (0..queue.members.len()).filter(|&i| queue.verdicts()[i] == Some(GateVerdict::Merged)).collect();
    assert_eq!(merged, sequential(&queue.changes, &withdrawn, merge_stage), "verdicts {:?}", queue.verdicts());
    let mut by_time: Vec<(DateTime<Utc>, usize)> =
        merged.iter().map(|&i| (queue.members[i].status.completion_time.unwrap(), i)).collect();
    by_time.sort();
    assert!(by_time.windows(2).all(|w| w[0].1 < w[1].1), "merged in queue order: {by_time:?}");
    for (i, m) in queue.members.iter().enumerate() {
        let phase = m.status.phase.unwrap();
        let verdict = m.status.gate.as_ref().map(|g| g.verdict);
        match verdict {
            Some(GateVerdict::Merged) => assert_eq!(phase, RunPhase::Succeeded),
            Some(GateVerdict::Rejected) => assert_eq!(phase, RunPhase::Failed, "{}", m.name),
            _ => assert_eq!(phase, RunPhase::Cancelled, "{}: {verdict:?}", m.name),
        }
        let merge_jobs = m.created_jobs.iter().filter(|j| j.contains("-submit-")).count();
        if merge_stage && merge_jobs > 0 {
            let ok =
                verdict == Some(GateVerdict::Merged) || queue.changes[i].merge_fails || phase == RunPhase::Cancelled;
            assert!(ok, "{} ran its merge stage but did not merge", m.name);
        }
        if verdict == Some(GateVerdict::Merged) && merge_stage {
            assert_eq!(merge_jobs, 1, "{}: one merge", m.name);
        }
        let expected = if phase == RunPhase::Succeeded {
            crate::api::pipelinerun::Decision::Pass
        } else {
            crate::api::pipelinerun::Decision::Fail
        };
        assert_eq!(m.status.verdict.as_ref().map(|v: &Verdict| v.decision), Some(expected), "{}", m.name);
    }
}

#[test]
fn four_changes_the_second_failing_and_the_third_conflicting_with_it() {
    let changes = vec![
        Change::default(),
        Change { broken: true, ..Default::default() },
        Change { conflicts_with: Some(1), ..Default::default() },
        Change::default(),
    ];
    let mut queue = Queue::new(changes, true, None);
    queue.run(&|_, _| false);
    use GateVerdict::*;
    assert_eq!(queue.verdicts(), [Some(Merged), Some(Rejected), Some(Merged), Some(Merged)]);
    let fourth = &queue.members[3];
    assert_eq!(fourth.tested_on.first().map(|(_, a)| a.as_str()), Some("r0 r1 r2"), "first tried on all ahead");
    let last = &fourth.tested_on.last().unwrap().1;
    assert!(!last.contains("r1"), "its last try is tested without the second: {last}");
    let gate = fourth.status.gate.as_ref().unwrap();
    assert!(gate.try_number >= 2 && gate.ahead.iter().all(|c| c.run != "change-01"), "{gate:?}");
    assert!(
        queue.members[1].created_jobs.iter().all(|j| !j.contains("-submit-")),
        "the rejected change never ran its merge stage"
    );
    // Attempt numbers went on across tries, and history kept the old try.
    let test = fourth.status.stages.iter().find(|s| s.name == "test").unwrap();
    assert_eq!(test.attempt as usize, fourth.tested_on.len());
    assert!(test.history.len() >= 2, "{:?}", test.history);
    let reasons: Vec<String> = fourth.status.gate.iter().filter_map(|g| g.reason.clone()).collect();
    assert!(reasons[0].starts_with("merged"), "{reasons:?}");
    check(&queue, true);
}

#[test]
fn a_change_ahead_cancelled_resets_those_tested_with_it() {
    let changes = vec![Change::default(), Change { cancel_at: Some(1), ..Default::default() }, Change::default()];
    let mut queue = Queue::new(changes, false, None);
    queue.run(&|_, _| false);
    use GateVerdict::*;
    assert_eq!(queue.members[1].status.phase, Some(RunPhase::Cancelled));
    assert_eq!(queue.verdicts()[0], Some(Merged));
    assert_eq!(queue.verdicts()[2], Some(Merged));
    let last = &queue.members[2].tested_on.last().unwrap().1;
    assert!(!last.contains("r1"), "{last}");
    check(&queue, false);
}

#[test]
fn a_window_of_one_tests_the_head_alone_and_grows_with_each_merge() {
    let mut queue = Queue::new(vec![Change::default(); 4], false, Some(1));
    queue.run(&|_, _| false);
    let first_tries: Vec<&str> = queue.members.iter().map(|m| m.tested_on[0].1.as_str()).collect();
    // Window 1: the second starts once the first merged (on the base); then
    // the window is 2, so the third starts beside the second, on top of it.
    assert_eq!(first_tries, ["", "", "r1", ""], "what each run was first tested on");
    check(&queue, false);
}

fn arb_change(n: usize) -> impl Strategy<Value = Change> {
    (
        prop::bool::weighted(0.2),
        prop::option::weighted(0.25, 0..n),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.1, 0u32..12),
    )
        .prop_map(|(broken, conflicts_with, merge_fails, cancel_at)| Change {
            broken,
            conflicts_with,
            merge_fails,
            cancel_at,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Queues of up to 20 changes, failures and conflicts anywhere, cancels,
    /// windows from 1 to 20, and status writes lost at random: the planner
    /// merges exactly what a sequential gate would, in order, makes no Job
    /// twice and runs merge stages only for the changes it merges.
    #[test]
    fn queues_merge_what_a_sequential_gate_would(
        changes in (1usize..=20).prop_flat_map(|n| prop::collection::vec(arb_change(n), n)),
        window in prop::option::of(prop::sample::select(vec![1u32, 3, 20])),
        merge_stage in any::<bool>(),
        lost in prop::collection::btree_set((0u32..60, 0usize..20), 0..15),
    ) {
        let mut queue = Queue::new(changes, merge_stage, window);
        queue.run(&|tick, i| lost.contains(&(tick, i)));
        check(&queue, merge_stage);
    }
}

//! Status stays bounded, and random pipelines with random outcomes finish consistently.

use super::*;

#[test]
fn status_stays_bounded_under_many_retries_and_long_messages() {
    let mut flaky = stage("a", &[]);
    flaky.retries = Some(10);
    flaky.retry_delay_seconds = Some(1);
    let mut sim = Sim::new(spec(vec![flaky]));
    sim.step();
    for _ in 0..11 {
        let job = sim.observed.jobs.last_mut().unwrap();
        job.outcome.state = JobState::Failed;
        job.outcome.message = Some("x".repeat(100_000));
        sim.step();
        sim.advance(700);
        sim.step();
    }
    assert_eq!(sim.phase("a"), StagePhase::Failed);
    assert!(sim.stage("a").history.len() <= MAX_HISTORY);
    let size = serde_json::to_string(&sim.status).unwrap().len();
    assert!(size < 16 * 1024, "status is {size} bytes");
}

/// Random pipelines with random outcomes, driven to the end.
fn scenario() -> impl Strategy<Value = (PipelineRunSpec, Vec<bool>, bool)> {
    (1usize..12).prop_flat_map(|n| {
        (
            proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..3), n),
            proptest::collection::vec((0u32..3, any::<bool>(), any::<bool>()), n),
            proptest::collection::vec(any::<bool>(), 64),
            any::<bool>(),
        )
            .prop_map(move |(picks, opts, outcomes, fail_fast)| {
                let stages = (0..n)
                    .map(|i| {
                        let needs: Vec<String> = if i == 0 {
                            vec![]
                        } else {
                            picks[i].iter().map(|ix| format!("s{}", ix.index(i))).collect()
                        };
                        let mut s = stage(&format!("s{i}"), &[]);
                        s.needs = needs;
                        s.retries = Some(opts[i].0);
                        s.retry_delay_seconds = Some(1);
                        s.gating = Some(opts[i].1);
                        s.finally = opts[i].2 && i == n - 1;
                        if s.finally {
                            s.needs.clear();
                        }
                        s
                    })
                    .collect();
                let mut s = spec(stages);
                s.fail_fast = fail_fast;
                (s, outcomes, fail_fast)
            })
    })
}

proptest! {
    #[test]
    fn every_run_finishes_consistently((spec, outcomes, _fail_fast) in scenario()) {
        let mut sim = Sim::new(spec.clone());
        let mut draws = outcomes.into_iter().cycle();
        for _ in 0..200 {
            sim.step();
            if sim.status.phase.is_some_and(RunPhase::is_finished) {
                break;
            }
            let active: Vec<String> = sim.observed.jobs.iter().filter(|j| j.outcome.state == JobState::Active).map(|j| j.stage.clone()).collect();
            for s in active {
                if draws.next().unwrap() { sim.succeed(&s) } else { sim.fail(&s) }
            }
            sim.advance(601);
        }
        prop_assert!(sim.status.phase.is_some_and(RunPhase::is_finished), "run did not finish: {:?}", sim.status);
        let mut attempts: BTreeMap<&str, u32> = BTreeMap::new();
        for job in &sim.observed.jobs {
            *attempts.entry(job.stage.as_str()).or_default() += 1;
        }
        for stage in &spec.stages {
            let st = sim.stage(&stage.name);
            prop_assert!(st.phase.is_finished(), "{} is {:?}", stage.name, st.phase);
            let made = attempts.get(stage.name.as_str()).copied().unwrap_or(0);
            prop_assert!(made <= stage.retries.unwrap_or(0) + 1, "{} made {} Jobs", stage.name, made);
            if st.phase == StagePhase::Succeeded && !stage.finally {
                for need in &stage.needs {
                    prop_assert!(sim.phase(need).is_success(), "{} succeeded though {} is {:?}", stage.name, need, sim.phase(need));
                }
            }
        }
        let gating_failed = spec.stages.iter().any(|s| s.gating != Some(false) && sim.phase(&s.name) == StagePhase::Failed);
        prop_assert_eq!(sim.status.phase == Some(RunPhase::Succeeded), !gating_failed);
        let job_names: std::collections::BTreeSet<&String> = sim.created_jobs.iter().collect();
        prop_assert_eq!(job_names.len(), sim.created_jobs.len(), "a Job name was created twice");
    }
}

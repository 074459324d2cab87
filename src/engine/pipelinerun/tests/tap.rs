//! TAP results decide a stage: merged across attempts, naming failed tests, and honest about a cut log.

use super::*;

#[test]
fn tap_results_merge_across_attempts_a_test_passing_once_passes() {
    let mut kola = stage("kola", &[]);
    kola.retries = Some(1);
    kola.retry_delay_seconds = Some(1);
    kola.results = Some(ResultsFormat::Tap);
    let mut sim = Sim::new(spec(vec![kola]));
    sim.step();
    sim.fail("kola");
    sim.observed.logs.insert(job("kola", 1), "1..3\nok 1 - boot\nnot ok 2 - network\nok 3 - update\n".into());
    let view_status = sim.status.clone();
    let view = sim.view(&view_status);
    assert_eq!(logs_wanted(&view, &sim.observed), [job("kola", 1)]);
    sim.step();
    assert_eq!(sim.phase("kola"), StagePhase::Waiting);
    assert_eq!(sim.stage("kola").tests.as_ref().unwrap().failed, 1);
    sim.advance(1);
    sim.step();
    sim.fail("kola"); // the rerun of the failed test exits non-zero for another reason...
    sim.observed.logs.insert(job("kola", 2), "1..1\nok 1 - network\n".into());
    sim.step();
    // ...but every test has passed in some attempt, so the stage passes.
    assert_eq!(sim.phase("kola"), StagePhase::Succeeded);
    let tests = sim.stage("kola").tests.clone().unwrap();
    assert_eq!((tests.passed, tests.failed), (3, 0));
    assert_eq!(sim.status.phase, Some(RunPhase::Succeeded));
}

#[test]
fn tap_failures_in_every_attempt_fail_the_stage_naming_the_test() {
    let mut kola = stage("kola", &[]);
    kola.results = Some(ResultsFormat::Tap);
    let mut sim = Sim::new(spec(vec![kola]));
    sim.step();
    sim.succeed("kola"); // exit 0, but the TAP says otherwise
    sim.observed.logs.insert(job("kola", 1), "1..2\nok 1 - boot\nnot ok 2 - network\n".into());
    sim.step();
    assert_eq!(sim.phase("kola"), StagePhase::Failed);
    let tests = sim.stage("kola").tests.clone().unwrap();
    assert_eq!(tests.failed_names, ["network"]);
}

#[test]
fn a_tap_verdict_from_a_cut_log_says_the_log_was_cut() {
    let mut kola = stage("kola", &[]);
    kola.results = Some(ResultsFormat::Tap);
    let mut sim = Sim::new(spec(vec![kola]));
    sim.step();
    sim.succeed("kola");
    // Tests 1 to 4 were in the part of the log the operator did not read.
    sim.observed.logs.insert(job("kola", 1), "ok 5 - boot\n1..5\n".into());
    sim.observed.logs_cut.insert(job("kola", 1));
    sim.step();
    assert_eq!(sim.phase("kola"), StagePhase::Failed);
    let message = sim.stage("kola").message.clone().unwrap_or_default();
    assert!(message.contains("the log is longer than 4 MiB: TAP was read from its last 4 MiB"), "{message}");
}

//! TAP parsing and merging across attempts, by example and by property.

use super::TapOutcome::{Failed, Passed, Skipped};
use super::*;
use proptest::prelude::*;

fn test(number: u32, name: &str, outcome: TapOutcome) -> TapTest {
    TapTest { number, name: name.to_owned(), outcome }
}

fn outcomes(report: &TapReport) -> Vec<(&str, TapOutcome)> {
    report.tests.iter().map(|t| (t.name.as_str(), t.outcome)).collect()
}

fn counts(passed: u32, failed: u32, skipped: u32, failed_names: &[&str]) -> TestCounts {
    TestCounts { passed, failed, skipped, failed_names: failed_names.iter().map(|n| (*n).to_owned()).collect() }
}

// ---- parse ----

#[test]
fn parses_a_plain_tap_stream() {
    let report = parse("TAP version 13\n1..3\nok 1 - boots\nnot ok 2 - logs in\nok 3 - shuts down\n");
    assert_eq!(
        report,
        TapReport {
            tests: vec![test(1, "boots", Passed), test(2, "logs in", Failed), test(3, "shuts down", Passed),],
            planned: Some(3),
            bailed_out: None,
        }
    );
}

#[test]
fn numbers_are_optional_and_default_to_the_next_one() {
    let report = parse("ok - first\nnot ok second\nok\nok 7 seventh\nok eighth?");
    assert_eq!(
        report.tests,
        vec![
            test(1, "first", Passed),
            test(2, "second", Failed),
            test(3, "#3", Passed),
            test(7, "seventh", Passed),
            test(8, "eighth?", Passed),
        ]
    );
}

#[test]
fn name_cleanup() {
    let report = parse("ok 1 -   spaced out   \nok 2 -\nok 3 -dash-kept\nok 4 1st\nok 5 - a \\# b\n");
    assert_eq!(
        outcomes(&report),
        vec![("spaced out", Passed), ("#2", Passed), ("-dash-kept", Passed), ("1st", Passed), ("a # b", Passed),]
    );
    assert_eq!(report.tests[3].number, 4);
}

#[test]
fn a_hash_that_is_not_a_directive_stays_in_the_name() {
    let report = parse("ok 1 - fixes issue #42\nnot ok 2 - issue \\# SKIP is escaped");
    assert_eq!(outcomes(&report), vec![("fixes issue #42", Passed), ("issue # SKIP is escaped", Failed)]);
}

#[test]
fn skip_and_todo_directives() {
    let log = "\
ok 1 - no gpu # SKIP no GPU on this node
not ok 2 - odd # skip
ok 3 # SKIPPED
not ok 4 - flaky thing # TODO fix in v2
ok 5 - unexpectedly fixed # todo
not ok 6 - todoist # todoist is not a directive
";
    assert_eq!(
        outcomes(&parse(log)),
        vec![
            ("no gpu", Skipped),
            ("odd", Skipped),
            ("#3", Skipped),
            ("flaky thing", Skipped),
            ("unexpectedly fixed", Passed),
            ("todoist # todoist is not a directive", Failed),
        ]
    );
}

#[test]
fn skip_all_plan() {
    let report = parse("1..0 # skip no database configured\n");
    assert_eq!(report.planned, Some(0));
    assert!(report.tests.is_empty());
}

#[test]
fn plan_may_come_last_and_only_the_first_counts() {
    let report = parse("ok 1\nok 2\n1..2\n1..9\n");
    assert_eq!(report.planned, Some(2));
}

#[test]
fn malformed_plans_are_not_plans() {
    for line in ["1..", "1..x", "1..3 tests", "2..3", " 1..3", "1..99999999999"] {
        assert_eq!(parse(line).planned, None, "{line:?}");
    }
    assert_eq!(parse("1..3   ").planned, Some(3));
}

#[test]
fn bail_out_stops_parsing() {
    let report = parse("1..3\nok 1 - a\nBail out! db down\nok 2 - b\nBail out! again\n");
    assert_eq!(report.bailed_out.as_deref(), Some("db down"));
    assert_eq!(outcomes(&report), vec![("a", Passed)]);
}

#[test]
fn subtests_and_yaml_blocks_are_ignored() {
    let log = "\
TAP version 13
1..2
# Subtest: group
    1..2
    ok 1 - inner one
    not ok 2 - inner two
ok 1 - group
not ok 2 - outer
  ---
  message: 'expected 1, got 2'
  data:
    ok: 3
  ...
";
    let report = parse(log);
    assert_eq!(outcomes(&report), vec![("group", Passed), ("outer", Failed)]);
    assert_eq!(report.planned, Some(2));
}

#[test]
fn log_noise_is_ignored() {
    let log = "\
Pulling image quay.io/x/tests:latest
+ ./run-tests.sh
okay, starting the suite
ok 1 - boots\r
[INFO] not okay to continue? just kidding
	ok 99 - tab-indented, ignored
not ok2 - glued, not a test
# a comment
notok 3
ok 2 - halts
done in 3.2s
";
    assert_eq!(outcomes(&parse(log)), vec![("boots", Passed), ("halts", Passed)]);
}

#[test]
fn empty_log_has_no_tap() {
    assert_eq!(parse(""), TapReport::default());
}

// ---- merge ----

#[test]
fn flaky_test_passing_on_retry_counts_as_passed() {
    let first = parse("1..3\nok 1 - a\nnot ok 2 - b\nok 3 - c\n");
    let retry = parse("1..1\nok 1 - b\n");
    let merged = merge(&[first, retry]);
    assert_eq!(merged.counts, counts(3, 0, 0, &[]));
    assert!(merged.all_passed);
    assert!(merged.problems.is_empty());
}

#[test]
fn test_failing_in_every_attempt_counts_as_failed() {
    let first = parse("1..3\nok 1 - a\nnot ok 2 - b\nok 3 - c\n");
    let retry = parse("1..1\nnot ok 1 - b\n");
    let merged = merge(&[first, retry]);
    assert_eq!(merged.counts, counts(2, 1, 0, &["b"]));
    assert!(!merged.all_passed);
    assert!(merged.problems.is_empty(), "failures are not problems");
}

#[test]
fn skipped_only_if_never_run() {
    let first = parse("ok 1 - a # SKIP\nok 2 - b # SKIP\nok 3 - c # SKIP\n");
    let retry = parse("ok 1 - a\nnot ok 2 - b\nnot ok 3 - c # TODO\n");
    let merged = merge(&[first, retry]);
    assert_eq!(merged.counts, counts(1, 1, 1, &["b"]));
}

#[test]
fn todo_failures_do_not_fail_the_stage() {
    let merged = merge(&[parse("1..2\nok 1 - a\nnot ok 2 - b # TODO later\n")]);
    assert_eq!(merged.counts, counts(1, 0, 1, &[]));
    assert!(merged.all_passed);
}

#[test]
fn bail_out_in_the_last_attempt_fails_the_stage() {
    let merged = merge(&[parse("1..2\nok 1 - a\nnot ok 2 - b\n"), parse("Bail out! db down\n")]);
    assert_eq!(merged.counts, counts(1, 1, 0, &["b"]));
    assert!(!merged.all_passed);
    assert_eq!(merged.problems, vec!["attempt 2 bailed out: db down"]);
}

#[test]
fn bail_out_in_an_earlier_attempt_is_forgiven() {
    let merged = merge(&[parse("ok 1 - a\nBail out!\n"), parse("1..2\nok 1 - a\nok 2 - b\n")]);
    assert!(merged.all_passed, "{merged:?}");
}

#[test]
fn bail_out_without_a_reason() {
    let merged = merge(&[parse("ok 1 - a\nBail out!\n")]);
    assert_eq!(merged.problems, vec!["attempt 1 bailed out"]);
}

#[test]
fn plan_mismatch_in_the_last_attempt_fails_the_stage() {
    let merged = merge(&[parse("1..5\nok 1 - a\nok 2 - b\nok 3 - c\n")]);
    assert_eq!(merged.counts, counts(3, 0, 0, &[]));
    assert!(!merged.all_passed);
    assert_eq!(merged.problems, vec!["attempt 1 planned 5 tests but reported 3"]);

    let merged = merge(&[parse("1..1\nok 1 - a\nok 2 - b\n")]);
    assert_eq!(merged.problems, vec!["attempt 1 planned 1 test but reported 2"]);
}

#[test]
fn plan_mismatch_in_an_earlier_attempt_is_forgiven() {
    let merged = merge(&[parse("1..5\nnot ok 1 - a\n"), parse("1..1\nok 1 - a\n")]);
    assert!(merged.all_passed, "{merged:?}");
}

#[test]
fn missing_plan_is_fine() {
    assert!(merge(&[parse("ok 1 - a\n")]).all_passed);
}

#[test]
fn no_tap_output_is_a_problem() {
    let merged = merge(&[parse("Segmentation fault (core dumped)\n")]);
    assert!(!merged.all_passed);
    assert_eq!(merged.problems, vec!["no TAP output found"]);

    let merged = merge(&[]);
    assert!(!merged.all_passed);
    assert_eq!(merged.problems, vec!["no TAP output found"]);
}

#[test]
fn a_plan_without_tests_is_a_problem_unless_it_skips_everything() {
    let merged = merge(&[parse("1..3\n")]);
    assert_eq!(merged.problems, vec!["attempt 1 planned 3 tests but reported 0", "no test results found"]);

    let merged = merge(&[parse("1..0 # skip no database\n")]);
    assert!(merged.all_passed);
    assert_eq!(merged.counts, counts(0, 0, 0, &[]));
}

#[test]
fn earlier_tests_count_even_if_the_last_attempt_ran_none() {
    let merged = merge(&[parse("ok 1 - a\n"), parse("nothing here\n")]);
    assert!(merged.all_passed, "{merged:?}");
}

#[test]
fn repeated_names_within_an_attempt_are_separate_tests() {
    let merged = merge(&[parse("ok 1 - works\nnot ok 2 - works\n")]);
    assert_eq!(merged.counts, counts(1, 1, 0, &["works"]));
    assert!(!merged.all_passed);

    // Matched occurrence by occurrence across attempts.
    let merged = merge(&[parse("not ok 1 - works\nok 2 - works\n"), parse("ok 1 - works\n")]);
    assert_eq!(merged.counts, counts(2, 0, 0, &[]));
}

#[test]
fn failed_names_are_sorted_capped_and_shortened() {
    let long_name = "x".repeat(300);
    let mut log = format!("not ok 1 - {long_name}\n");
    for i in (0..30).rev() {
        log.push_str(&format!("not ok - test {i:02}\n"));
    }
    let merged = merge(&[parse(&log)]);
    let names = &merged.counts.failed_names;
    assert_eq!(merged.counts.failed, 31);
    assert_eq!(names.len(), MAX_FAILED_NAMES);
    assert_eq!(names[0], "test 00");
    assert_eq!(names[19], "test 19");
    assert!(names.windows(2).all(|w| w[0] <= w[1]));

    let merged = merge(&[parse(&format!("not ok 1 - {long_name}\n"))]);
    let name = &merged.counts.failed_names[0];
    assert_eq!(name.len(), MAX_FAILED_NAME_BYTES);
    assert!(name.ends_with('…'));
}

// ---- properties ----

fn any_outcome() -> impl Strategy<Value = TapOutcome> {
    prop_oneof![Just(Passed), Just(Failed), Just(Skipped)]
}

/// Names from a small pool, so attempts share (and repeat) names.
fn pooled_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(str::to_owned)
}

/// Names the renderer can write and the parser reads back unchanged.
fn plain_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9 _.:/()-]{0,15}[a-z0-9]"
}

fn report_with(name: impl Strategy<Value = String>) -> impl Strategy<Value = TapReport> {
    (prop::collection::vec((name, any_outcome()), 0..8), prop::option::of(0u32..10), prop::option::of("[a-z ]{0,10}"))
        .prop_map(|(tests, planned, bailed_out)| TapReport {
            tests: tests
                .into_iter()
                .zip(1..)
                .map(|((name, outcome), number)| TapTest { number, name, outcome })
                .collect(),
            planned,
            bailed_out: bailed_out.map(|reason| reason.trim().to_owned()),
        })
}

const NOISE: [&str; 6] =
    ["+ make test", "    ok 1 - indented subtest", "# comment", "  ---", "okay then", "TAP version 13"];

/// Writes `report` as a TAP log, with a noise line after each line.
fn render(report: &TapReport) -> String {
    let mut lines = Vec::new();
    if let Some(planned) = report.planned {
        lines.push(format!("1..{planned}"));
    }
    for test in &report.tests {
        let (status, directive) = match test.outcome {
            Passed => ("ok", ""),
            Failed => ("not ok", ""),
            Skipped => ("ok", " # SKIP not today"),
        };
        lines.push(format!("{status} {} - {}{directive}", test.number, test.name));
    }
    if let Some(reason) = &report.bailed_out {
        lines.push(format!("Bail out! {reason}"));
    }
    lines.iter().zip(NOISE.iter().cycle()).map(|(line, noise)| format!("{line}\n{noise}\n")).collect()
}

fn outcome_counts(report: &TapReport) -> (u32, u32, u32) {
    let n = |o| report.tests.iter().filter(|t| t.outcome == o).count() as u32;
    (n(Passed), n(Failed), n(Skipped))
}

fn merged_counts(attempts: &[TapReport]) -> (u32, u32, u32) {
    let c = merge(attempts).counts;
    (c.passed, c.failed, c.skipped)
}

proptest! {
    #[test]
    fn parse_reads_back_what_render_writes(report in report_with(plain_name())) {
        prop_assert_eq!(parse(&render(&report)), report);
    }

    #[test]
    fn single_attempt_counts_match_the_parsed_tests(report in report_with(pooled_name())) {
        let parsed = parse(&render(&report));
        prop_assert_eq!(merged_counts(std::slice::from_ref(&parsed)), outcome_counts(&parsed));
    }

    #[test]
    fn counts_do_not_depend_on_attempt_order(
        (attempts, shuffled) in prop::collection::vec(report_with(pooled_name()), 0..5)
            .prop_flat_map(|attempts| (Just(attempts.clone()), Just(attempts).prop_shuffle())),
    ) {
        prop_assert_eq!(merge(&attempts).counts, merge(&shuffled).counts);
    }

    #[test]
    fn rerunning_failed_tests_never_increases_the_failed_count(
        (first, retry) in prop::collection::btree_map(pooled_name(), any_outcome(), 0..5)
            .prop_flat_map(|first| {
                let failed: Vec<String> = first
                    .iter()
                    .filter(|(_, outcome)| **outcome == Failed)
                    .map(|(name, _)| name.clone())
                    .collect();
                let n = failed.len();
                (
                    Just(first),
                    prop::sample::subsequence(failed, 0..=n),
                    prop::collection::vec(any_outcome(), n),
                )
            })
            .prop_map(|(first, rerun, new_outcomes)| {
                let report = |tests: Vec<(String, TapOutcome)>| TapReport {
                    tests: tests
                        .into_iter()
                        .zip(1..)
                        .map(|((name, outcome), number)| TapTest { number, name, outcome })
                        .collect(),
                    ..TapReport::default()
                };
                (report(first.into_iter().collect()), report(rerun.into_iter().zip(new_outcomes).collect()))
            }),
    ) {
        let before = merge(std::slice::from_ref(&first)).counts.failed;
        let fixed = retry.tests.iter().filter(|t| t.outcome == Passed).count() as u32;
        let after = merge(&[first, retry]).counts.failed;
        prop_assert_eq!(after, before - fixed);
    }

    #[test]
    fn another_attempt_adds_failures_only_through_new_or_skipped_tests(
        attempts in prop::collection::vec(report_with(pooled_name()), 0..4),
        extra in report_with(pooled_name()),
    ) {
        let before = merged_outcomes(&attempts);
        let failed_before = merge(&attempts).counts.failed;
        let not_run_before = keyed_tests(&extra)
            .into_iter()
            .filter(|(key, _)| before.get(key).is_none_or(|o| *o == Skipped))
            .count() as u32;
        let mut more = attempts;
        more.push(extra);
        prop_assert!(merge(&more).counts.failed <= failed_before + not_run_before);
    }

    #[test]
    fn another_attempt_never_undoes_a_pass_or_a_failure(
        attempts in prop::collection::vec(report_with(pooled_name()), 0..4),
        extra in report_with(pooled_name()),
    ) {
        let before = merged_outcomes(&attempts);
        let mut more = attempts;
        more.push(extra);
        let after = merged_outcomes(&more);
        for (key, outcome) in &before {
            let still = match outcome {
                Passed => after.get(key) == Some(&Passed),
                Failed => matches!(after.get(key), Some(Passed | Failed)),
                Skipped => after.contains_key(key),
            };
            prop_assert!(still, "{:?} was {:?}, now {:?}", key, outcome, after.get(key));
        }
    }

    #[test]
    fn all_passed_means_no_failures_and_no_problems(
        attempts in prop::collection::vec(report_with(pooled_name()), 0..4),
    ) {
        let merged = merge(&attempts);
        prop_assert_eq!(
            merged.all_passed,
            merged.counts.failed == 0 && merged.problems.is_empty()
        );
        prop_assert!(merged.counts.failed_names.len() <= MAX_FAILED_NAMES);
    }

    #[test]
    fn parse_never_panics_and_finds_at_most_one_test_per_line(log in "\\PC{0,200}") {
        let report = parse(&log);
        prop_assert!(report.tests.len() <= log.split('\n').count());
    }

    #[test]
    fn parse_never_panics_on_tap_like_lines(
        lines in prop::collection::vec(
            "(not )?ok( [0-9]{1,12})?( -)?( [a-z#\\\\]{0,6})?( # (SKIP|TODO|skip|x)[a-z ]{0,4})?",
            0..10,
        ),
    ) {
        let report = parse(&lines.join("\n"));
        prop_assert_eq!(report.tests.len(), lines.len());
    }
}

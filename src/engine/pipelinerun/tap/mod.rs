//! Test Anything Protocol (a TAP 12/13 subset): reading test results from a
//! container log and merging them across retry attempts.

use std::collections::{BTreeMap, HashMap};

use crate::api::common::TestCounts;
use crate::engine::text::truncate;

/// At most this many failed test names are listed in [`TestCounts`].
pub const MAX_FAILED_NAMES: usize = 20;

/// Each failed test name listed in [`TestCounts`] is shortened to this many
/// bytes.
pub const MAX_FAILED_NAME_BYTES: usize = 100;

/// A bail-out reason is quoted in a problem up to this many bytes.
const MAX_BAIL_OUT_REASON_BYTES: usize = 200;

/// The result of one test, after applying its directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TapOutcome {
    /// `ok`, or `ok` with a `TODO` directive.
    Passed,
    /// `not ok` without a directive.
    Failed,
    /// A `SKIP` directive, or `not ok` with a `TODO` directive.
    Skipped,
}

/// One top-level test line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapTest {
    /// The test's number: as written, or one more than the previous test's
    /// (1 for the first) when left out.
    pub number: u32,
    /// The description without a leading `- ` and the directive, trimmed;
    /// `#N` (its number) when that leaves nothing.
    pub name: String,
    /// Whether it passed, failed or was skipped.
    pub outcome: TapOutcome,
}

/// What one attempt's log says about its tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapReport {
    /// The top-level tests, in the order they were reported.
    pub tests: Vec<TapTest>,
    /// `N` from the first `1..N` plan line, if there was one.
    pub planned: Option<u32>,
    /// The reason from a `Bail out!` line, if there was one.
    pub bailed_out: Option<String>,
}

/// The outcome of a stage's tests over all its attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergedResults {
    /// Passed, failed and skipped tests, and the failed tests' names.
    pub counts: TestCounts,
    /// Whether the stage's tests count as a success.
    pub all_passed: bool,
    /// Every reason other than failed tests that `all_passed` is false.
    pub problems: Vec<String>,
}

/// Reads the TAP results in a container log.
///
/// Only top-level lines count: indented lines (subtests, YAML diagnostic
/// blocks) and anything that is not TAP are ignored, as are lines after
/// `Bail out!`. Recognised lines are a `1..N` plan (the first one counts),
/// `ok`/`not ok` test lines with an optional number and `# SKIP`/`# TODO`
/// directive, and `Bail out! reason`. In a description, `\#` is a literal
/// `#`; a `#` not followed by SKIP or TODO is kept as part of the name.
pub fn parse(log: &str) -> TapReport {
    let mut report = TapReport::default();
    for raw_line in log.split('\n') {
        match classify(raw_line.trim_end_matches('\r')) {
            TapLine::Plan(planned) => {
                report.planned.get_or_insert(planned);
            }
            TapLine::Test(test) => {
                let next_number = report.tests.last().map_or(1, |previous| previous.number.saturating_add(1));
                report.tests.push(test.into_test(next_number));
            }
            TapLine::BailOut(reason) => {
                report.bailed_out = Some(reason);
                break;
            }
            TapLine::Other => {}
        }
    }
    report
}

/// What one log line means in TAP.
enum TapLine {
    /// `1..N`.
    Plan(u32),
    /// `ok ...` or `not ok ...`.
    Test(TestLine),
    /// `Bail out! reason`.
    BailOut(String),
    /// Anything else, including `TAP version 13`, comments and indented
    /// lines.
    Other,
}

/// Works out what `line` (without its line ending) means in TAP.
fn classify(line: &str) -> TapLine {
    if let Some(reason) = line.strip_prefix("Bail out!") {
        return TapLine::BailOut(reason.trim().to_owned());
    }
    if let Some(planned) = parse_plan(line) {
        return TapLine::Plan(planned);
    }
    parse_test_line(line).map_or(TapLine::Other, TapLine::Test)
}

/// `N` from a `1..N` plan, optionally followed by a `# comment` such as
/// `1..0 # skip no database`.
fn parse_plan(line: &str) -> Option<u32> {
    let (digits, rest) = split_leading(line.strip_prefix("1..")?, |c| c.is_ascii_digit());
    let rest = rest.trim();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    digits.parse().ok()
}

/// A test line before its position in the report is known.
struct TestLine {
    /// Whether it started with `ok` rather than `not ok`.
    ok: bool,
    /// The number, if written.
    number: Option<u32>,
    /// The description, before cleaning up.
    description: String,
    /// The directive, if any.
    directive: Option<Directive>,
}

/// A `#` directive on a test line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    /// `# SKIP reason`.
    Skip,
    /// `# TODO reason`.
    Todo,
}

impl TestLine {
    /// The test, numbered `next_number` when the line had no number.
    fn into_test(self, next_number: u32) -> TapTest {
        let number = self.number.unwrap_or(next_number);
        TapTest { number, name: test_name(&self.description, number), outcome: outcome(self.ok, self.directive) }
    }
}

/// Parses `ok [N] [description] [# directive]` or the same after `not ok`.
fn parse_test_line(line: &str) -> Option<TestLine> {
    let (ok, rest) = match line.strip_prefix("not ok") {
        Some(rest) => (false, rest),
        None => (true, line.strip_prefix("ok")?),
    };
    if rest.chars().next().is_some_and(|c| !c.is_whitespace()) {
        return None; // "okay", "not okay": not a test line.
    }
    let (number, rest) = split_test_number(rest.trim_start());
    let (description, directive) = split_directive(rest);
    Some(TestLine { ok, number, description: description.to_owned(), directive })
}

/// Splits a leading test number (digits standing on their own, fitting in
/// 32 bits) off `s`.
fn split_test_number(s: &str) -> (Option<u32>, &str) {
    let (digits, rest) = split_leading(s, |c| c.is_ascii_digit());
    let stands_alone = !rest.starts_with(|c: char| c.is_alphanumeric());
    match digits.parse() {
        Ok(number) if stands_alone => (Some(number), rest),
        _ => (None, s),
    }
}

/// Splits a description at the first unescaped `#` that starts a SKIP or
/// TODO directive.
fn split_directive(s: &str) -> (&str, Option<Directive>) {
    let mut escaped = false;
    for (index, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '#' => {
                if let Some(directive) = directive_at(&s[index + 1..]) {
                    return (&s[..index], Some(directive));
                }
            }
            _ => {}
        }
    }
    (s, None)
}

/// The directive `text` (what follows a `#`) starts with, if any. SKIP may
/// be spelled `skip`, `SKIPPED` etc.; TODO must be the whole word.
fn directive_at(text: &str) -> Option<Directive> {
    let (word, _) = split_leading(text.trim_start(), |c| c.is_ascii_alphabetic());
    let word = word.to_ascii_lowercase();
    if word.starts_with("skip") {
        Some(Directive::Skip)
    } else if word == "todo" {
        Some(Directive::Todo)
    } else {
        None
    }
}

/// The test's name: `description` trimmed, without a leading `- ` and with
/// `\#` and `\\` unescaped; `#number` when that is empty.
fn test_name(description: &str, number: u32) -> String {
    let trimmed = description.trim();
    let without_dash = match trimmed.strip_prefix('-') {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => rest.trim(),
        _ => trimmed,
    };
    let name = unescape(without_dash);
    if name.is_empty() {
        format!("#{number}")
    } else {
        name
    }
}

/// Replaces `\#` with `#` and `\\` with `\`.
fn unescape(s: &str) -> String {
    let mut unescaped = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(&next)) if next == '#' || next == '\\' => {
                unescaped.push(next);
                chars.next();
            }
            _ => unescaped.push(c),
        }
    }
    unescaped
}

/// The outcome of a test line: a SKIP directive always skips; a TODO
/// directive turns a failure into a skip.
fn outcome(ok: bool, directive: Option<Directive>) -> TapOutcome {
    match (ok, directive) {
        (_, Some(Directive::Skip)) | (false, Some(Directive::Todo)) => TapOutcome::Skipped,
        (true, _) => TapOutcome::Passed,
        (false, None) => TapOutcome::Failed,
    }
}

/// Splits `s` after its longest prefix of characters matching `keep`.
fn split_leading(s: &str, keep: impl Fn(char) -> bool) -> (&str, &str) {
    let end = s.find(|c: char| !keep(c)).unwrap_or(s.len());
    s.split_at(end)
}

/// Merges the reports of a stage's attempts, oldest first.
///
/// Tests are matched by name, not number, as a retry may rerun only the
/// failed tests; when one attempt reports a name several times, its n-th
/// occurrence is matched with the n-th occurrence in other attempts. A test
/// passed if it passed in any attempt, failed if it failed in some attempt
/// and passed in none, and was skipped if it was only ever skipped.
///
/// The tests all passed when none failed, the last attempt did not bail
/// out, the last attempt's plan (if any) matches the number of tests it
/// reported, and some test was seen or the last plan was `1..0`.
pub fn merge(attempts: &[TapReport]) -> MergedResults {
    let outcomes = merged_outcomes(attempts);
    let counts = count(&outcomes);
    let problems = problems(attempts, outcomes.is_empty());
    MergedResults { all_passed: counts.failed == 0 && problems.is_empty(), counts, problems }
}

/// Identifies a test across attempts: its name, and which occurrence of that
/// name within its attempt it is (1 for the first).
type TestKey = (String, u32);

/// Each test's best outcome over all attempts: passed beats failed beats
/// skipped.
fn merged_outcomes(attempts: &[TapReport]) -> BTreeMap<TestKey, TapOutcome> {
    let mut merged: BTreeMap<TestKey, TapOutcome> = BTreeMap::new();
    for attempt in attempts {
        for (key, outcome) in keyed_tests(attempt) {
            let best = merged.entry(key).or_insert(outcome);
            if rank(outcome) > rank(*best) {
                *best = outcome;
            }
        }
    }
    merged
}

/// The attempt's tests with the keys that match them across attempts.
fn keyed_tests(attempt: &TapReport) -> Vec<(TestKey, TapOutcome)> {
    let mut occurrences: HashMap<&str, u32> = HashMap::new();
    attempt
        .tests
        .iter()
        .map(|test| {
            let occurrence = occurrences.entry(test.name.as_str()).or_insert(0);
            *occurrence = occurrence.saturating_add(1);
            ((test.name.clone(), *occurrence), test.outcome)
        })
        .collect()
}

/// How much an outcome says about a test: a pass anywhere settles it.
fn rank(outcome: TapOutcome) -> u8 {
    match outcome {
        TapOutcome::Skipped => 0,
        TapOutcome::Failed => 1,
        TapOutcome::Passed => 2,
    }
}

/// Counts merged outcomes and lists (some of) the failed tests' names.
fn count(outcomes: &BTreeMap<TestKey, TapOutcome>) -> TestCounts {
    let tally = |wanted: TapOutcome| {
        let n = outcomes.values().filter(|&&o| o == wanted).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    TestCounts {
        passed: tally(TapOutcome::Passed),
        failed: tally(TapOutcome::Failed),
        skipped: tally(TapOutcome::Skipped),
        failed_names: failed_names(outcomes),
    }
}

/// The failed tests' names, sorted, without repeats, capped at
/// [`MAX_FAILED_NAMES`] and each shortened to [`MAX_FAILED_NAME_BYTES`].
fn failed_names(outcomes: &BTreeMap<TestKey, TapOutcome>) -> Vec<String> {
    let mut names: Vec<&str> = outcomes
        .iter()
        .filter(|(_, outcome)| **outcome == TapOutcome::Failed)
        .map(|((name, _), _)| name.as_str())
        .collect();
    names.dedup(); // Already sorted: the map is ordered by name first.
    names.into_iter().take(MAX_FAILED_NAMES).map(|name| truncate(name, MAX_FAILED_NAME_BYTES)).collect()
}

/// Explains each reason other than failed tests that the attempts do not
/// count as a success.
fn problems(attempts: &[TapReport], no_tests_seen: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(last) = attempts.last() {
        let attempt_number = attempts.len();
        problems.extend(bail_out_problem(last, attempt_number));
        problems.extend(plan_problem(last, attempt_number));
    }
    let last_plan_skips_all = attempts.last().and_then(|a| a.planned) == Some(0);
    if no_tests_seen && !last_plan_skips_all {
        problems.push(no_tests_problem(attempts));
    }
    problems
}

/// Why the attempt bailing out is a problem, if it did.
fn bail_out_problem(attempt: &TapReport, attempt_number: usize) -> Option<String> {
    let reason = attempt.bailed_out.as_deref()?;
    Some(if reason.is_empty() {
        format!("attempt {attempt_number} bailed out")
    } else {
        let reason = truncate(reason, MAX_BAIL_OUT_REASON_BYTES);
        format!("attempt {attempt_number} bailed out: {reason}")
    })
}

/// Why the attempt's plan is a problem, if it does not match its tests.
fn plan_problem(attempt: &TapReport, attempt_number: usize) -> Option<String> {
    let planned = attempt.planned?;
    let reported = attempt.tests.len();
    if usize::try_from(planned).is_ok_and(|planned| planned == reported) {
        return None;
    }
    let noun = if planned == 1 { "test" } else { "tests" };
    Some(format!("attempt {attempt_number} planned {planned} {noun} but reported {reported}"))
}

/// Why no tests being seen is a problem, distinguishing logs with no TAP at
/// all from TAP without test lines.
fn no_tests_problem(attempts: &[TapReport]) -> String {
    let any_tap = attempts.iter().any(|a| a.planned.is_some() || a.bailed_out.is_some());
    if any_tap {
        "no test results found".to_owned()
    } else {
        "no TAP output found".to_owned()
    }
}

#[cfg(test)]
mod tests;

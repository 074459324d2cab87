//! Go/Kubernetes-style durations such as `90s`, `45m`, `1h30m` or `1d12h`,
//! as written in timeouts and retry delays.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::text::truncate;

/// Longest timeout anything may ask for: a run, a stage, a build, a Kata
/// smoke test or cleanup, the operator's default stage timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Longest retention period (`obsoleteAfter`, `pruneAfter`): ten years.
pub const MAX_RETENTION: Duration = Duration::from_secs(3650 * 24 * 60 * 60);

/// Parses like [`parse_duration`] and refuses durations longer than `limit`
/// (every duration a user writes has one, so time arithmetic stays in range).
pub fn parse_duration_at_most(input: &str, limit: Duration) -> Result<Duration, String> {
    let duration = parse_duration(input)?;
    if duration > limit {
        return Err(format!("{}: longer than the limit of {}", quote(input), format_duration(limit)));
    }
    Ok(duration)
}

/// `time + duration`, saturating at the end of year 9999 instead of
/// overflowing (which would panic): a deadline that far is "never".
pub fn later(time: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| time.checked_add_signed(delta))
        .map_or_else(far_future, |t| t.min(far_future()))
}

/// `time + seconds` (negative: earlier), saturating like [`later`].
pub fn later_by_secs(time: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    if seconds < 0 {
        return chrono::TimeDelta::try_seconds(seconds).and_then(|d| time.checked_add_signed(d)).unwrap_or(time);
    }
    later(time, Duration::from_secs(seconds.unsigned_abs()))
}

/// The latest time Gantry writes: 9999-12-31T23:59:59Z (RFC 3339 has four-digit years).
pub fn far_future() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The units a duration may use, largest first, with their length
/// in milliseconds. Also the order [`format_duration`] writes them in.
const UNITS: [(&str, u64); 5] =
    [("d", 24 * 60 * 60 * 1000), ("h", 60 * 60 * 1000), ("m", 60 * 1000), ("s", 1000), ("ms", 1)];

/// What every parse error tells the user to write instead.
const EXPECTED: &str = "a duration like 90s, 45m, 2h or 1h30m";

/// Inputs are quoted in error messages up to this many bytes.
const MAX_QUOTED_INPUT_BYTES: usize = 64;

/// Parses a duration made of one or more `<digits><unit>` parts, with units
/// `d`, `h`, `m`, `s` and `ms`, e.g. `2h`, `1h30m`, `90s`, `1d12h`, `500ms`.
/// Parts may come in any order and add up, as in Go.
///
/// Rejects empty input, numbers without a unit, unknown units, signs,
/// fractions, whitespace, durations too long to represent, and a total of
/// zero. The error quotes the input and says what is expected.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    if input.is_empty() {
        return Err(syntax_error(input));
    }
    let mut rest = input;
    let mut total_millis: u64 = 0;
    while !rest.is_empty() {
        let (part_millis, after_part) = parse_part(rest).map_err(|e| e.message(input))?;
        total_millis = total_millis.checked_add(part_millis).ok_or_else(|| PartError::TooLong.message(input))?;
        rest = after_part;
    }
    if total_millis == 0 {
        return Err(zero_error(input));
    }
    Ok(Duration::from_millis(total_millis))
}

/// Why one `<digits><unit>` part could not be read.
enum PartError {
    /// Not digits followed by a known unit.
    Malformed,
    /// More milliseconds than fit in 64 bits.
    TooLong,
}

impl PartError {
    /// The user-facing message for this error in `input`.
    fn message(&self, input: &str) -> String {
        match self {
            PartError::Malformed => syntax_error(input),
            PartError::TooLong => too_long_error(input),
        }
    }
}

/// Parses one `<digits><unit>` part at the start of `s`, returning its
/// length in milliseconds and the text after it.
fn parse_part(s: &str) -> Result<(u64, &str), PartError> {
    let (digits, after_digits) = split_leading(s, |c| c.is_ascii_digit());
    let (unit, rest) = split_leading(after_digits, |c| c.is_ascii_alphabetic());
    if digits.is_empty() {
        return Err(PartError::Malformed);
    }
    let unit_millis =
        UNITS.iter().find(|(name, _)| *name == unit).map(|(_, millis)| *millis).ok_or(PartError::Malformed)?;
    let millis =
        digits.parse::<u64>().ok().and_then(|count| count.checked_mul(unit_millis)).ok_or(PartError::TooLong)?;
    Ok((millis, rest))
}

/// Splits `s` after its longest prefix of characters matching `keep`.
fn split_leading(s: &str, keep: impl Fn(char) -> bool) -> (&str, &str) {
    let end = s.find(|c: char| !keep(c)).unwrap_or(s.len());
    s.split_at(end)
}

/// The error for input that is not a duration at all.
fn syntax_error(input: &str) -> String {
    format!("{}: expected {EXPECTED}", quote(input))
}

/// The error for a duration too long to represent.
fn too_long_error(input: &str) -> String {
    format!("{}: too long; expected {EXPECTED}", quote(input))
}

/// The error for a duration that adds up to zero.
fn zero_error(input: &str) -> String {
    format!("{}: must be longer than zero; expected {EXPECTED}", quote(input))
}

/// `input` in double quotes, escaped and shortened for an error message.
fn quote(input: &str) -> String {
    format!("{:?}", truncate(input, MAX_QUOTED_INPUT_BYTES))
}

/// Writes `duration` in the compact form [`parse_duration`] reads, largest
/// unit first and leaving out zero parts: 90 seconds is `1m30s`, 36 hours is
/// `1d12h`, 1.5 seconds is `1s500ms`.
///
/// Sub-millisecond precision is dropped; a duration under a millisecond is
/// written `0s` (which [`parse_duration`] rejects as a timeout).
pub fn format_duration(duration: Duration) -> String {
    let mut remaining_millis = duration.as_millis();
    let mut formatted = String::new();
    for (unit, unit_millis) in UNITS {
        let unit_millis = u128::from(unit_millis);
        let count = remaining_millis / unit_millis;
        if count > 0 {
            formatted.push_str(&format!("{count}{unit}"));
            remaining_millis %= unit_millis;
        }
    }
    if formatted.is_empty() {
        formatted.push_str("0s");
    }
    formatted
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn parses_single_units() {
        assert_eq!(parse_duration("90s"), Ok(secs(90)));
        assert_eq!(parse_duration("45m"), Ok(secs(45 * 60)));
        assert_eq!(parse_duration("2h"), Ok(secs(2 * 3600)));
        assert_eq!(parse_duration("1d"), Ok(secs(86_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn parses_combined_units() {
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("1d12h"), Ok(secs(36 * 3600)));
        assert_eq!(parse_duration("1m30s"), Ok(secs(90)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2h0m"), Ok(secs(7200)));
    }

    #[test]
    fn parts_in_any_order_add_up() {
        assert_eq!(parse_duration("30m1h"), Ok(secs(5400)));
        assert_eq!(parse_duration("1h1h"), Ok(secs(7200)));
    }

    #[test]
    fn leading_zeros_are_fine() {
        assert_eq!(parse_duration("007s"), Ok(secs(7)));
    }

    #[test]
    fn rejects_malformed_input_with_the_expected_message() {
        assert_eq!(parse_duration("2x"), Err(r#""2x": expected a duration like 90s, 45m, 2h or 1h30m"#.to_owned()));
        for bad in [
            "", "90", "h", "1h30", "-5m", "+5m", " 5m", "5m ", "5 m", "1.5h", "5M", "5us", "5µs", "1h-30m", "m5",
            "5mss", "ms",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains(EXPECTED), "{bad:?}: {err}");
            assert!(err.starts_with(&format!("{bad:?}")), "{bad:?}: {err}");
        }
    }

    #[test]
    fn rejects_a_zero_total() {
        for zero in ["0s", "0ms", "0h0m", "0d"] {
            let err = parse_duration(zero).expect_err(zero);
            assert!(err.contains("longer than zero"), "{err}");
        }
    }

    #[test]
    fn rejects_overflow() {
        for huge in
            ["18446744073709551616ms", "18446744073709551615s", "99999999999999999999999d", "18446744073709551615ms1ms"]
        {
            let err = parse_duration(huge).expect_err(huge);
            assert!(err.contains("too long"), "{err}");
        }
        assert_eq!(parse_duration("18446744073709551615ms"), Ok(Duration::from_millis(u64::MAX)));
    }

    #[test]
    fn long_input_is_shortened_in_the_error() {
        let long = "x".repeat(1000);
        let err = parse_duration(&long).expect_err("garbage");
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_duration(secs(90)), "1m30s");
        assert_eq!(format_duration(secs(5400)), "1h30m");
        assert_eq!(format_duration(secs(7200)), "2h");
        assert_eq!(format_duration(secs(36 * 3600)), "1d12h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(secs(86_400 + 1)), "1d1s");
    }

    #[test]
    fn formats_zero_and_sub_millisecond_as_zero_seconds() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_micros(999)), "0s");
        assert_eq!(format_duration(Duration::from_micros(1001)), "1ms");
    }

    #[test]
    fn formats_the_largest_duration() {
        assert!(!format_duration(Duration::MAX).is_empty());
    }

    #[test]
    fn bounded_parsing_names_the_limit() {
        assert_eq!(parse_duration_at_most("30d", MAX_TIMEOUT), Ok(MAX_TIMEOUT));
        let err = parse_duration_at_most("100000000d", MAX_TIMEOUT).unwrap_err();
        assert_eq!(err, r#""100000000d": longer than the limit of 30d"#);
        assert!(parse_duration_at_most("soon", MAX_TIMEOUT).unwrap_err().contains(EXPECTED));
    }

    #[test]
    fn later_saturates_instead_of_overflowing() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        assert_eq!(later(now, secs(60)), Utc.with_ymd_and_hms(2026, 12, 1, 0, 1, 0).unwrap());
        assert_eq!(later(now, Duration::MAX), far_future());
        assert_eq!(later(now, Duration::from_millis(u64::MAX)), far_future());
        assert_eq!(later_by_secs(now, i64::MAX), far_future());
        assert_eq!(later_by_secs(now, -60), Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 0).unwrap());
        assert_eq!(later_by_secs(DateTime::<Utc>::MIN_UTC, i64::MIN), DateTime::<Utc>::MIN_UTC);
    }

    proptest! {
        #[test]
        fn later_never_panics_and_never_goes_back(secs_since_epoch in 0i64..253_402_300_799, millis: u64) {
            let start = Utc.timestamp_opt(secs_since_epoch, 0).unwrap();
            let end = later(start, Duration::from_millis(millis));
            prop_assert!(end >= start && end <= far_future());
        }

        #[test]
        fn parse_inverts_format(millis in 1u64..=u64::MAX) {
            let duration = Duration::from_millis(millis);
            prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }

        #[test]
        fn parse_inverts_format_for_everyday_durations(millis in 1u64..=7 * 86_400_000) {
            let duration = Duration::from_millis(millis);
            prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,30}") {
            let _ = parse_duration(&input);
        }

        #[test]
        fn accepted_durations_are_positive(input in "[0-9]{1,4}(d|h|m|s|ms)([0-9]{1,4}(d|h|m|s|ms)){0,3}") {
            if let Ok(duration) = parse_duration(&input) {
                prop_assert!(duration > Duration::ZERO);
            }
        }
    }
}

//! Durations and ages the way kubectl prints them: `45s`, `3m12s`, `2h5m`, `4d3h`.

use chrono::{DateTime, Utc};

/// `seconds` as kubectl's short human form (two units at most).
pub fn short(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3_599 => with_rest(s / 60, "m", s % 60, "s"),
        3_600..=86_399 => with_rest(s / 3_600, "h", (s % 3_600) / 60, "m"),
        _ => with_rest(s / 86_400, "d", (s % 86_400) / 3_600, "h"),
    }
}

fn with_rest(major: i64, major_unit: &str, minor: i64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

/// How long from `start` to `end` (to `now` while it has not ended).
pub fn span(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<String> {
    let start = start?;
    Some(short((end.unwrap_or(now) - start).num_seconds()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(short(0), "0s");
        assert_eq!(short(59), "59s");
        assert_eq!(short(60), "1m");
        assert_eq!(short(192), "3m12s");
        assert_eq!(short(7_500), "2h5m");
        assert_eq!(short(3 * 86_400 + 3_600 * 4 + 5), "3d4h");
        assert_eq!(short(-5), "0s");
    }

    #[test]
    fn a_span_still_running_counts_to_now() {
        let t0 = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let now = t0 + chrono::Duration::seconds(75);
        assert_eq!(span(Some(t0), None, now).as_deref(), Some("1m15s"));
        assert_eq!(span(Some(t0), Some(t0 + chrono::Duration::seconds(5)), now).as_deref(), Some("5s"));
        assert_eq!(span(None, None, now), None);
    }
}

//! The unique suffix of a build: its tag, and the label of its Jobs.

use chrono::{DateTime, Utc};

use crate::api::imagebuild::BuildRecord;

/// The suffix of a build started at `now`: the prefix plus a UTC timestamp,
/// like the containers org's `IMG_SFX` (`c20261121t150102z`). Made unique
/// against `taken` (earlier builds) by appending `-2`, `-3`, ...
pub fn build_suffix(prefix: &str, now: DateTime<Utc>, taken: &[BuildRecord]) -> String {
    let base = format!("{prefix}{}", now.format("%Y%m%dt%H%M%Sz"));
    let used = |s: &str| taken.iter().any(|b| b.suffix == s);
    if !used(&base) {
        return base;
    }
    (2..).map(|n| format!("{base}-{n}")).find(|s| !used(s)).expect("an unused suffix exists")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::imagebuild::BuildRecordPhase;
    use chrono::TimeZone;

    #[test]
    fn suffixes_are_prefix_plus_utc_time_and_unique() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 15, 1, 2).unwrap();
        assert_eq!(build_suffix("c", now, &[]), "c20261121t150102z");
        let taken = [BuildRecord {
            suffix: "b20261121t150102z".into(),
            job_name: "img-b20261121t150102z".into(),
            phase: BuildRecordPhase::Ready,
            generation: Some(1),
            ..Default::default()
        }];
        assert_eq!(build_suffix("b", now, &taken), "b20261121t150102z-2");
    }
}

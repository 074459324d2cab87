//! The unique suffix of a build: its tag, and the label of its Jobs.

use chrono::{DateTime, Utc};

use crate::api::imagebuild::BuildRecord;

/// The suffix of a build started at `now`: the prefix plus a UTC timestamp,
/// like the containers org's `IMG_SFX` (`c20261121t150102z`). Made unique
/// against `taken` (earlier builds) by appending `-2`, `-3`, ...
pub fn build_suffix(prefix: &str, now: DateTime<Utc>, taken: &[BuildRecord]) -> String {
    let base = format!("{prefix}{}", now.format(TIME_FORMAT));
    let used = |s: &str| taken.iter().any(|b| b.suffix == s);
    if !used(&base) {
        return base;
    }
    (2..).map(|n| format!("{base}-{n}")).find(|s| !used(s)).expect("an unused suffix exists")
}

/// The time part of a suffix: `YYYYMMDDtHHMMSSz`.
const TIME_FORMAT: &str = "%Y%m%dt%H%M%Sz";
/// Its length.
const TIME_LEN: usize = 16;

/// Whether `s` is a suffix [`build_suffix`] makes: at most 8 lowercase
/// letters or digits, a UTC time, and maybe `-N`.
pub fn is_build_suffix(s: &str) -> bool {
    let base = match s.rsplit_once('-') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => s,
    };
    if !base.is_ascii() || !(TIME_LEN..=TIME_LEN + 8).contains(&base.len()) {
        return false;
    }
    let (prefix, time) = base.split_at(base.len() - TIME_LEN);
    prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && chrono::NaiveDateTime::parse_from_str(time, TIME_FORMAT).is_ok()
}

/// Whether `image` could be an ImageBuild's latest image (`OUTPUT:SUFFIX`).
/// One that cannot (`local/busybox:1`, a digest reference) is no build's,
/// so the controller need not look at the ImageBuilds when a stage runs it.
pub fn may_be_built_image(image: &str) -> bool {
    match image.rsplit_once(':') {
        Some((repository, tag)) => !repository.is_empty() && !image.contains('@') && is_build_suffix(tag),
        None => false,
    }
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

    #[test]
    fn stage_images_that_no_build_made_are_told_apart() {
        for image in
            ["10.88.0.1:5000/fedora-cache:c20261121t150102z", "reg/sdk:b20261121t150102z-2", "x:20261121t150102z"]
        {
            assert!(may_be_built_image(image), "{image}");
        }
        for image in [
            "local/busybox:1",
            "10.88.0.1:5000/fedora-cache",
            "reg/sdk:c20261121t150102z@sha256:00",
            "reg/sdk:c20261321t150102z",
            "reg/sdk:toolongprefix20261121t150102z",
            "reg/sdk:C20261121t150102z",
            "reg/sdk:c20261121t150102z-",
            ":c20261121t150102z",
            "reg/sdk:é0261121t150102z",
        ] {
            assert!(!may_be_built_image(image), "{image}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_suffix_made_is_recognised(prefix in "[a-z0-9]{0,8}", secs in 0i64..253_402_300_799, taken in 0usize..3) {
            let now = DateTime::from_timestamp(secs, 0).unwrap();
            let mut records = Vec::new();
            for _ in 0..=taken {
                let suffix = build_suffix(&prefix, now, &records);
                proptest::prop_assert!(is_build_suffix(&suffix), "{}", suffix);
                let image = format!("10.88.0.1:5000/out:{suffix}");
                proptest::prop_assert!(may_be_built_image(&image), "{}", image);
                records.push(BuildRecord { suffix, ..Default::default() });
            }
        }
    }
}

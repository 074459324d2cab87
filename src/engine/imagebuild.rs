//! Pure ImageBuild decisions: the unique suffix of a build, whether a new
//! build is due (never in a loop), and the retention clock.

use chrono::{DateTime, Utc};

use super::duration::{later, parse_duration};
use crate::api::imagebuild::{BuildRecord, ImageBuildStatus, Lifecycle, Retention};

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

/// Why a build starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildTrigger {
    /// Nothing was built yet.
    First,
    /// The spec changed (a new `metadata.generation`).
    SpecChanged { from: i64, to: i64 },
    /// The `gantry.dev/rebuild` annotation asked for it (its value).
    Requested(String),
}

/// Whether a new build is due. A build is tied to the generation it built
/// and a rebuild request to the annotation value it answered, so a failed
/// build is not retried by itself and a request is honoured once.
pub fn build_due(
    generation: i64,
    rebuild_request: Option<&str>,
    handled_request: Option<&str>,
    status: &ImageBuildStatus,
) -> Option<BuildTrigger> {
    let Some(last) = status.builds.last() else { return Some(BuildTrigger::First) };
    if last.phase == "Building" {
        return None;
    }
    if let Some(built) = last.generation {
        if built != generation {
            return Some(BuildTrigger::SpecChanged { from: built, to: generation });
        }
    }
    match rebuild_request {
        Some(request) if Some(request) != handled_request => Some(BuildTrigger::Requested(request.to_string())),
        _ => None,
    }
}

/// Where the image stands in its retention lifecycle at `now`, and when
/// that next changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleState {
    /// The lifecycle to show.
    pub lifecycle: Lifecycle,
    /// Whether the prune Job should run now.
    pub prune_due: bool,
    /// When to look again.
    pub next_change: Option<DateTime<Utc>>,
}

/// The retention clock. `last_used` falls back to the latest build's
/// completion; `pruned` says the prune Job already succeeded.
pub fn lifecycle(
    retention: &Retention,
    last_used: Option<DateTime<Utc>>,
    pruned: bool,
    now: DateTime<Utc>,
) -> LifecycleState {
    let used = LifecycleState { lifecycle: Lifecycle::Used, prune_due: false, next_change: None };
    if retention.permanent {
        return LifecycleState { lifecycle: Lifecycle::Permanent, ..used };
    }
    if pruned {
        return LifecycleState { lifecycle: Lifecycle::Pruned, ..used };
    }
    let (Some(last_used), Some(obsolete_after)) =
        (last_used, retention.obsolete_after.as_deref().and_then(|d| parse_duration(d).ok()))
    else {
        return used;
    };
    let obsolete_at = later(last_used, obsolete_after);
    if now < obsolete_at {
        return LifecycleState { next_change: Some(obsolete_at), ..used };
    }
    let prune_after = retention.prune_after.as_deref().and_then(|d| parse_duration(d).ok());
    match prune_after {
        None => LifecycleState { lifecycle: Lifecycle::Obsolete, ..used },
        Some(after) => {
            let prune_at = later(obsolete_at, after);
            LifecycleState {
                lifecycle: Lifecycle::Obsolete,
                prune_due: now >= prune_at,
                next_change: (now < prune_at).then_some(prune_at),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 15, 1, 2).unwrap() + chrono::Duration::seconds(secs)
    }

    fn record(suffix: &str, phase: &str, generation: i64) -> BuildRecord {
        BuildRecord {
            suffix: suffix.into(),
            job_name: format!("img-{suffix}"),
            phase: phase.into(),
            generation: Some(generation),
            ..Default::default()
        }
    }

    #[test]
    fn suffixes_are_prefix_plus_utc_time_and_unique() {
        assert_eq!(build_suffix("c", t(0), &[]), "c20261121t150102z");
        let taken = [record("b20261121t150102z", "Ready", 1)];
        assert_eq!(build_suffix("b", t(0), &taken), "b20261121t150102z-2");
    }

    #[test]
    fn a_build_is_due_first_on_spec_change_and_once_per_rebuild_request() {
        let mut status = ImageBuildStatus::default();
        assert_eq!(build_due(1, None, None, &status), Some(BuildTrigger::First));
        status.builds.push(record("c1", "Building", 1));
        assert_eq!(build_due(2, Some("x"), None, &status), None, "never while one is building");
        status.builds[0].phase = "Failed".into();
        assert_eq!(build_due(1, None, None, &status), None, "a failed build is not retried by itself");
        assert_eq!(build_due(2, None, None, &status), Some(BuildTrigger::SpecChanged { from: 1, to: 2 }));
        assert_eq!(build_due(1, Some("now"), None, &status), Some(BuildTrigger::Requested("now".into())));
        assert_eq!(build_due(1, Some("now"), Some("now"), &status), None, "a request is honoured once");
    }

    fn retention(obsolete: Option<&str>, prune: Option<&str>, permanent: bool) -> Retention {
        Retention {
            obsolete_after: obsolete.map(String::from),
            prune_after: prune.map(String::from),
            permanent,
            ..Default::default()
        }
    }

    #[test]
    fn unused_images_go_obsolete_then_get_pruned() {
        let r = retention(Some("30s"), Some("60s"), false);
        let state = lifecycle(&r, Some(t(0)), false, t(10));
        assert_eq!((state.lifecycle, state.prune_due, state.next_change), (Lifecycle::Used, false, Some(t(30))));
        let state = lifecycle(&r, Some(t(0)), false, t(30));
        assert_eq!((state.lifecycle, state.prune_due, state.next_change), (Lifecycle::Obsolete, false, Some(t(90))));
        let state = lifecycle(&r, Some(t(0)), false, t(90));
        assert_eq!((state.lifecycle, state.prune_due), (Lifecycle::Obsolete, true));
        assert_eq!(lifecycle(&r, Some(t(0)), true, t(100)).lifecycle, Lifecycle::Pruned);
    }

    #[test]
    fn use_resets_the_clock_and_permanent_images_are_never_retired() {
        let r = retention(Some("30s"), Some("60s"), false);
        assert_eq!(lifecycle(&r, Some(t(80)), false, t(100)).lifecycle, Lifecycle::Used);
        let keep = retention(Some("30s"), Some("60s"), true);
        let state = lifecycle(&keep, Some(t(0)), false, t(100_000));
        assert_eq!((state.lifecycle, state.prune_due), (Lifecycle::Permanent, false));
        assert_eq!(
            lifecycle(&retention(None, None, false), Some(t(0)), false, t(1_000_000)).lifecycle,
            Lifecycle::Used
        );
    }

    proptest! {
        /// Lifecycle only moves forward while the image stays unused.
        #[test]
        fn the_clock_never_goes_back(a in 0i64..500, b in 0i64..500, obsolete in 1u32..100, prune in 1u32..100) {
            let r = retention(Some(&format!("{obsolete}s")), Some(&format!("{prune}s")), false);
            let (early, late) = (a.min(b), a.max(b));
            let rank = |l: Lifecycle| match l { Lifecycle::Used => 0, Lifecycle::Obsolete => 1, _ => 2 };
            let s1 = lifecycle(&r, Some(t(0)), false, t(early));
            let s2 = lifecycle(&r, Some(t(0)), false, t(late));
            prop_assert!(rank(s1.lifecycle) <= rank(s2.lifecycle));
            prop_assert!(!s1.prune_due || s2.prune_due);
        }
    }
}

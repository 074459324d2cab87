//! The retention clock of an image: Used, then Obsolete when unused for
//! `obsoleteAfter`, then due for its prune Job `pruneAfter` later.

use chrono::{DateTime, Utc};

use crate::api::imagebuild::{Lifecycle, Retention};
use crate::engine::duration::{later, parse_duration};

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
    use crate::engine::testing::t;
    use proptest::prelude::*;

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

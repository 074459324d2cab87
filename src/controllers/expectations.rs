//! What a reconcile just created or deleted, remembered until the watch
//! cache has seen it, as Kubernetes' own controllers do ("expectations").
//!
//! A cache lags behind the operator's own writes. A run whose status says
//! its stage runs Job X, read with a cache that has not seen X yet, would
//! take X for a Job that disappeared and fail the stage; a Job it deleted
//! and still sees could be acted on again. So: while a created child is
//! not in the cache, the owner is not planned (the child's watch event
//! wakes it); a deleted child still in the cache is hidden from the planner.
//! An expectation the cache never meets (the child was created and deleted
//! again between two reconciles) expires after [`EXPECTATION_TIMEOUT`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an expectation the cache has not met is kept.
pub const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Children created or deleted per owner (by the owner's UID), not yet seen
/// so by the cache.
#[derive(Default)]
pub struct Expectations {
    owners: Mutex<HashMap<String, Pending>>,
}

#[derive(Default)]
struct Pending {
    created: HashMap<String, Instant>,
    deleted: HashMap<String, Instant>,
}

/// What the cache has not caught up with, for one owner.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unmet {
    /// Children created that the cache does not show yet.
    pub created: BTreeSet<String>,
    /// Children deleted that the cache still shows.
    pub deleted: BTreeSet<String>,
}

impl Expectations {
    /// `owner` created `child` just now.
    pub fn created(&self, owner: &str, child: &str) {
        let mut owners = self.owners.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let pending = owners.entry(owner.to_string()).or_default();
        pending.deleted.remove(child);
        pending.created.insert(child.to_string(), Instant::now());
    }

    /// `owner` deleted `child` just now.
    pub fn deleted(&self, owner: &str, child: &str) {
        let mut owners = self.owners.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let pending = owners.entry(owner.to_string()).or_default();
        pending.created.remove(child);
        pending.deleted.insert(child.to_string(), Instant::now());
    }

    /// Compares `owner`'s expectations with the children the cache shows
    /// (`cached`), forgets those met or expired at `now`, and returns the rest.
    pub fn unmet(&self, owner: &str, cached: &BTreeSet<String>, now: Instant) -> Unmet {
        let mut owners = self.owners.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(pending) = owners.get_mut(owner) else { return Unmet::default() };
        let fresh = |since: &Instant| now.saturating_duration_since(*since) < EXPECTATION_TIMEOUT;
        pending.created.retain(|child, since| !cached.contains(child) && fresh(since));
        pending.deleted.retain(|child, since| cached.contains(child) && fresh(since));
        let unmet = Unmet {
            created: pending.created.keys().cloned().collect(),
            deleted: pending.deleted.keys().cloned().collect(),
        };
        if pending.created.is_empty() && pending.deleted.is_empty() {
            owners.remove(owner);
        }
        unmet
    }

    /// Forgets every owner for which `keep` is false (owners deleted).
    pub fn retain_owners(&self, keep: impl Fn(&str) -> bool) {
        self.owners.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|owner, _| keep(owner));
    }

    /// How many owners have unmet expectations.
    pub fn len(&self) -> usize {
        self.owners.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Whether no owner has unmet expectations.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_created_child_is_awaited_until_the_cache_shows_it() {
        let expectations = Expectations::default();
        expectations.created("run-uid", "nightly-test-1");
        let now = Instant::now();
        let unmet = expectations.unmet("run-uid", &set(&["nightly-build-1"]), now);
        assert_eq!(unmet.created, set(&["nightly-test-1"]));
        assert!(expectations.unmet("other-uid", &set(&[]), now).created.is_empty(), "per owner");
        let unmet = expectations.unmet("run-uid", &set(&["nightly-build-1", "nightly-test-1"]), now);
        assert_eq!(unmet, Unmet::default());
        assert!(expectations.is_empty(), "met expectations are forgotten");
        assert_eq!(expectations.unmet("run-uid", &set(&[]), now), Unmet::default(), "and not awaited again");
    }

    #[test]
    fn a_deleted_child_is_hidden_until_the_cache_drops_it() {
        let expectations = Expectations::default();
        expectations.deleted("run-uid", "nightly-test-1");
        let now = Instant::now();
        assert_eq!(expectations.unmet("run-uid", &set(&["nightly-test-1"]), now).deleted, set(&["nightly-test-1"]));
        assert_eq!(expectations.unmet("run-uid", &set(&[]), now), Unmet::default());
        assert!(expectations.unmet("run-uid", &set(&["nightly-test-1"]), now).deleted.is_empty(), "met once");
    }

    #[test]
    fn an_expectation_never_met_expires() {
        let expectations = Expectations::default();
        expectations.created("run-uid", "gone-before-the-cache-saw-it");
        let later = Instant::now() + EXPECTATION_TIMEOUT;
        assert_eq!(expectations.unmet("run-uid", &set(&[]), later), Unmet::default());
        assert!(expectations.is_empty());
    }

    #[test]
    fn deleting_what_was_just_created_replaces_the_expectation() {
        let expectations = Expectations::default();
        expectations.created("run-uid", "j");
        expectations.deleted("run-uid", "j");
        let unmet = expectations.unmet("run-uid", &set(&["j"]), Instant::now());
        assert_eq!((unmet.created, unmet.deleted), (set(&[]), set(&["j"])));
    }

    #[test]
    fn deleted_owners_are_forgotten() {
        let expectations = Expectations::default();
        expectations.created("gone", "j");
        expectations.created("alive", "k");
        expectations.retain_owners(|owner| owner == "alive");
        assert_eq!(expectations.len(), 1);
    }
}

//! Whether a cached object is older than the status this process last
//! wrote for it. The watch delivers the operator's own status write a few
//! milliseconds after the write returns; a reconcile woken meanwhile (by a
//! Job it just created, say) would plan from the old status, adopt what it
//! already recorded and write it all again. It waits for the cache instead.
//!
//! Kubernetes calls resourceVersions opaque, but every API server backed by
//! etcd hands out its revision, an increasing integer; a version that does
//! not parse as one is never called stale, so nothing waits on it.

use std::collections::HashMap;
use std::sync::Mutex;

/// The resourceVersion each object (by UID) was left at by this process's
/// last status write, until the cache has caught up with it.
#[derive(Default)]
pub struct WrittenVersions {
    versions: Mutex<HashMap<String, u64>>,
}

impl WrittenVersions {
    /// The status of `uid` was written and stored at `version`.
    pub fn written(&self, uid: &str, version: Option<&str>) {
        let mut versions = self.versions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match version.and_then(|v| v.parse().ok()) {
            Some(version) => versions.insert(uid.to_string(), version),
            None => versions.remove(uid),
        };
    }

    /// Whether the cached copy of `uid`, at `cached`, predates the last
    /// status written for it. Once it does not, the written version is forgotten.
    pub fn is_stale(&self, uid: &str, cached: Option<&str>) -> bool {
        let mut versions = self.versions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(&written) = versions.get(uid) else { return false };
        let stale = cached.and_then(|v| v.parse::<u64>().ok()).is_some_and(|cached| cached < written);
        if !stale {
            versions.remove(uid);
        }
        stale
    }

    /// Forgets every object for which `keep` is false (objects deleted).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.versions.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|uid, _| keep(uid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_older_than_the_last_write_is_stale_until_the_cache_catches_up() {
        let written = WrittenVersions::default();
        assert!(!written.is_stale("u1", Some("100")), "nothing written: never stale");
        written.written("u1", Some("120"));
        assert!(written.is_stale("u1", Some("119")));
        assert!(!written.is_stale("u2", Some("1")), "per object");
        assert!(!written.is_stale("u1", Some("120")), "the copy the write returned");
        assert!(!written.is_stale("u1", Some("119")), "forgotten once caught up");
        written.written("u1", Some("130"));
        assert!(!written.is_stale("u1", Some("131")), "a later change by someone else");
    }

    #[test]
    fn a_version_that_is_not_a_number_never_waits() {
        let written = WrittenVersions::default();
        written.written("u1", Some("opaque"));
        assert!(!written.is_stale("u1", Some("1")));
        written.written("u1", Some("5"));
        assert!(!written.is_stale("u1", Some("opaque")));
        assert!(!written.is_stale("u1", None));
    }

    #[test]
    fn deleted_objects_are_forgotten() {
        let written = WrittenVersions::default();
        written.written("gone", Some("5"));
        written.retain(|uid| uid != "gone");
        assert!(!written.is_stale("gone", Some("1")));
    }
}

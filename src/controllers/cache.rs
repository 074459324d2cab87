//! A watch cache of children grouped by their parent's label (a run's Jobs
//! and pods by `gantry.dev/run`), so a reconcile reads its own children in
//! time proportional to their number, not to every child in the cluster,
//! and without a request to the API server.
//!
//! kube-runtime's reflector `Store` has no index: finding one run's Jobs
//! would scan them all, on every reconcile. This cache keeps the same
//! guarantees as a reflector: a relist (`Init` … `InitDone`) is buffered and
//! swapped in whole, so a reader never sees a half-listed state, and
//! readers wait until the first list is complete ([`ChildCache::ready`]).
//! It also says which events are news for the parent: a Job whose pod
//! started changes nothing a planner reads, and need not wake its run.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

/// A child's place: its namespace and the value of the grouping label.
type Group = (String, String);

/// A child's identity: namespace and name.
type Key = (String, String);

/// Children of kind `K`, grouped by the value of one label.
pub struct ChildCache<K> {
    label: &'static str,
    /// What of a child its parent reads (see [`ChildCache::with_news`]).
    signature: Option<fn(&K) -> u64>,
    inner: RwLock<Groups<K>>,
    ready: watch::Sender<bool>,
}

struct Groups<K> {
    by_group: HashMap<Group, HashMap<String, Arc<K>>>,
    group_of: HashMap<Key, Group>,
    /// The objects of a relist in progress (between `Init` and `InitDone`).
    relisting: Option<Vec<K>>,
}

impl<K> Default for Groups<K> {
    fn default() -> Self {
        Self { by_group: HashMap::new(), group_of: HashMap::new(), relisting: None }
    }
}

impl<K: Resource> Groups<K> {
    fn insert(&mut self, label: &str, object: K) {
        let key = key_of(&object);
        self.remove(&key);
        let Some(value) = object.labels().get(label).cloned() else {
            return; // not a child of any parent: nothing reads it
        };
        let group = (key.0.clone(), value);
        self.by_group.entry(group.clone()).or_default().insert(key.1.clone(), Arc::new(object));
        self.group_of.insert(key, group);
    }

    fn get(&self, key: &Key) -> Option<&Arc<K>> {
        self.by_group.get(self.group_of.get(key)?)?.get(&key.1)
    }

    fn remove(&mut self, key: &Key) {
        let Some(group) = self.group_of.remove(key) else { return };
        if let Some(children) = self.by_group.get_mut(&group) {
            children.remove(&key.1);
            if children.is_empty() {
                self.by_group.remove(&group);
            }
        }
    }
}

fn key_of<K: Resource>(object: &K) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

impl<K: Resource + Clone> ChildCache<K> {
    /// An empty cache grouping children by `label`; not ready until its
    /// first list is complete.
    pub fn new(label: &'static str) -> Arc<Self> {
        Self::build(label, None)
    }

    /// The same, where an update is news for the parent only when it changes
    /// `signature` (a hash of what the parent reads); a new child, a deleted
    /// one and a relist always are.
    pub fn with_news(label: &'static str, signature: fn(&K) -> u64) -> Arc<Self> {
        Self::build(label, Some(signature))
    }

    fn build(label: &'static str, signature: Option<fn(&K) -> u64>) -> Arc<Self> {
        Arc::new(Self { label, signature, inner: RwLock::new(Groups::default()), ready: watch::channel(false).0 })
    }

    /// Folds one watch event into the cache; returns whether it is news for
    /// the child's parent.
    pub fn apply(&self, event: &Event<K>) -> bool {
        let mut groups = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        match event {
            Event::Apply(object) => {
                let news = match (self.signature, groups.get(&key_of(object))) {
                    (Some(signature), Some(cached)) => signature(cached) != signature(object),
                    _ => true,
                };
                groups.insert(self.label, object.clone());
                return news;
            }
            Event::Delete(object) => groups.remove(&key_of(object)),
            Event::Init => groups.relisting = Some(Vec::new()),
            Event::InitApply(object) => groups.relisting.get_or_insert_with(Vec::new).push(object.clone()),
            Event::InitDone => {
                let listed = groups.relisting.take().unwrap_or_default();
                let mut fresh = Groups::default();
                for object in listed {
                    fresh.insert(self.label, object);
                }
                *groups = fresh;
                drop(groups);
                self.ready.send_replace(true);
            }
        }
        true
    }

    /// The children in `namespace` whose label has `value`, in no order.
    pub fn group(&self, namespace: &str, value: &str) -> Vec<Arc<K>> {
        let groups = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let group = (namespace.to_string(), value.to_string());
        groups.by_group.get(&group).map(|children| children.values().cloned().collect()).unwrap_or_default()
    }

    /// The child `name` in `namespace`, if cached.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let groups = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        groups.get(&(namespace.to_string(), name.to_string())).cloned()
    }

    /// How many children are cached.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner()).group_of.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once the first list is complete (at once after that).
    pub async fn ready(&self) {
        let mut ready = self.ready.subscribe();
        // Err only when the sender is gone, and it lives as long as `self`.
        let _ = ready.wait_for(|ready| *ready).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::Job;

    fn job(ns: &str, name: &str, run: Option<&str>) -> Job {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "labels": run.map(|r| serde_json::json!({"gantry.dev/run": r}))}
        }))
        .unwrap()
    }

    fn names(jobs: Vec<Arc<Job>>) -> Vec<String> {
        let mut names: Vec<String> = jobs.iter().map(|j| j.name_any()).collect();
        names.sort();
        names
    }

    #[test]
    fn children_are_found_by_namespace_and_label() {
        let cache = ChildCache::<Job>::new("gantry.dev/run");
        cache.apply(&Event::Apply(job("a", "nightly-build-1", Some("nightly"))));
        cache.apply(&Event::Apply(job("a", "nightly-test-1", Some("nightly"))));
        cache.apply(&Event::Apply(job("b", "nightly-build-1", Some("nightly"))));
        cache.apply(&Event::Apply(job("a", "weekly-build-1", Some("weekly"))));
        cache.apply(&Event::Apply(job("a", "stray", None)));
        assert_eq!(names(cache.group("a", "nightly")), ["nightly-build-1", "nightly-test-1"]);
        assert_eq!(names(cache.group("b", "nightly")), ["nightly-build-1"]);
        assert!(cache.group("a", "monthly").is_empty());
        assert_eq!(cache.len(), 4, "an object without the label is not kept");
        assert!(cache.get("a", "weekly-build-1").is_some() && cache.get("b", "weekly-build-1").is_none());
    }

    #[test]
    fn an_update_replaces_a_child_and_a_relabel_moves_it() {
        let cache = ChildCache::<Job>::new("gantry.dev/run");
        cache.apply(&Event::Apply(job("a", "j", Some("one"))));
        cache.apply(&Event::Apply(job("a", "j", Some("two"))));
        assert!(cache.group("a", "one").is_empty());
        assert_eq!(names(cache.group("a", "two")), ["j"]);
        cache.apply(&Event::Apply(job("a", "j", None)));
        assert!(cache.is_empty(), "losing the label drops it");
    }

    #[test]
    fn a_deleted_child_is_gone() {
        let cache = ChildCache::<Job>::new("gantry.dev/run");
        cache.apply(&Event::Apply(job("a", "j", Some("r"))));
        cache.apply(&Event::Delete(job("a", "j", Some("r"))));
        assert!(cache.group("a", "r").is_empty());
        assert!(cache.is_empty());
    }

    #[test]
    fn a_relist_replaces_everything_at_once_when_it_is_done() {
        let cache = ChildCache::<Job>::new("gantry.dev/run");
        cache.apply(&Event::Apply(job("a", "old", Some("r"))));
        cache.apply(&Event::Init);
        cache.apply(&Event::InitApply(job("a", "new", Some("r"))));
        assert_eq!(names(cache.group("a", "r")), ["old"], "readers see the last complete state meanwhile");
        cache.apply(&Event::InitDone);
        assert_eq!(names(cache.group("a", "r")), ["new"], "the child deleted while the watch was down is gone");
    }

    #[test]
    fn an_update_is_news_only_when_it_changes_what_the_parent_reads() {
        fn finished(job: &Job) -> u64 {
            job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) as u64
        }
        let cache = ChildCache::<Job>::with_news("gantry.dev/run", finished);
        let mut j = job("a", "j", Some("r"));
        assert!(cache.apply(&Event::Apply(j.clone())), "a new child is news");
        j.metadata.annotations = Some([("seen".to_string(), "1".to_string())].into());
        assert!(!cache.apply(&Event::Apply(j.clone())), "nothing the parent reads changed");
        assert!(cache.get("a", "j").unwrap().metadata.annotations.is_some(), "but the cache has the update");
        j.status = Some(k8s_openapi::api::batch::v1::JobStatus { succeeded: Some(1), ..Default::default() });
        assert!(cache.apply(&Event::Apply(j.clone())));
        assert!(cache.apply(&Event::Delete(j)), "a deleted child is news");
        assert!(ChildCache::<Job>::new("gantry.dev/run").apply(&Event::Apply(job("a", "j", Some("r")))));
    }

    #[tokio::test]
    async fn readers_wait_for_the_first_complete_list() {
        let cache = ChildCache::<Job>::new("gantry.dev/run");
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), cache.ready()).await;
        assert!(waiting.is_err(), "not ready before the first list");
        cache.apply(&Event::Init);
        cache.apply(&Event::InitApply(job("a", "j", Some("r"))));
        cache.apply(&Event::InitDone);
        cache.ready().await;
        assert_eq!(cache.len(), 1);
    }
}

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
//!
//! The children of a finished run are not kept at all ([`ChildCache::retire`]):
//! a finished run reads nothing until a rerun, and at 2000 runs their Jobs
//! and pods would be most of the operator's memory. Nor are the children a
//! running parent is done with ([`ChildCache::forget`]: a stage's Job and
//! pods once its status records it finished), unless it asks for them back
//! ([`ChildCache::recall`]).
//!
//! Each child is kept as its JSON (after the controller's `lean` step):
//! k8s-openapi's structs hold every optional field inline (a `Job` is
//! 2.8 KB before its first label, a `Pod` 2.5 KB), where a lean stage Job's
//! JSON is a few hundred bytes. A reconcile decodes its own few children.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tracing::warn;

/// A child's place: its namespace and the value of the grouping label.
type Group = (String, String);

/// A child's identity: namespace and name.
type Key = (String, String);

/// A cached child: its JSON, the signature of what its parent reads, and
/// the name of its controller (a pod's Job).
struct Entry {
    json: Box<[u8]>,
    signature: u64,
    owner: Option<Box<str>>,
}

/// Children of kind `K`, grouped by the value of one label.
pub struct ChildCache<K> {
    label: &'static str,
    /// What of a child its parent reads (see [`ChildCache::with_news`]).
    signature: Option<fn(&K) -> u64>,
    inner: RwLock<Groups>,
    ready: watch::Sender<bool>,
}

#[derive(Default)]
struct Groups {
    by_group: HashMap<Group, HashMap<String, Entry>>,
    group_of: HashMap<Key, Group>,
    /// The children of a relist in progress (between `Init` and `InitDone`).
    relisting: Option<Vec<(Key, String, Entry)>>,
    /// Groups whose children are not kept: their parent has finished.
    retired: HashSet<Group>,
    /// Children not kept, by group: by their own name or their controller's
    /// (a forgotten Job's pods are forgotten with it).
    forgotten: HashMap<Group, HashSet<String>>,
}

impl Groups {
    /// Keeps `entry`, unless its group is retired or it is forgotten.
    fn insert(&mut self, key: Key, value: String, entry: Entry) {
        self.remove(&key);
        let group = (key.0.clone(), value);
        if self.is_dropped(&group, &key.1, entry.owner.as_deref()) {
            return;
        }
        self.by_group.entry(group.clone()).or_default().insert(key.1.clone(), entry);
        self.group_of.insert(key, group);
    }

    /// Whether the child `name` of `group`, controlled by `owner`, is not kept.
    fn is_dropped(&self, group: &Group, name: &str, owner: Option<&str>) -> bool {
        self.retired.contains(group)
            || self
                .forgotten
                .get(group)
                .is_some_and(|names| names.contains(name) || owner.is_some_and(|owner| names.contains(owner)))
    }

    fn get(&self, key: &Key) -> Option<&Entry> {
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

impl<K: Resource + Serialize + DeserializeOwned> ChildCache<K> {
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

    /// The child's key, grouping label value and entry; `None` for a child
    /// without the label (no parent reads it).
    fn entry(&self, object: &K) -> Option<(Key, String, Entry)> {
        let value = object.labels().get(self.label)?.clone();
        let json = match serde_json::to_vec(object) {
            Ok(json) => json.into_boxed_slice(),
            Err(e) => {
                warn!(error = %e, "cannot cache a child");
                return None;
            }
        };
        let signature = self.signature.map_or(0, |signature| signature(object));
        let owner =
            object.owner_references().iter().find(|o| o.controller == Some(true)).map(|o| o.name.as_str().into());
        Some((key_of(object), value, Entry { json, signature, owner }))
    }

    /// Folds one watch event into the cache; returns whether it is news for
    /// the child's parent.
    pub fn apply(&self, event: &Event<K>) -> bool {
        match event {
            Event::Apply(object) => {
                let entry = self.entry(object);
                let mut groups = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                let key = key_of(object);
                let before = groups.get(&key).map(|e| e.signature);
                groups.remove(&key);
                let Some((key, value, entry)) = entry else { return true };
                if groups.is_dropped(&(key.0.clone(), value.clone()), &key.1, entry.owner.as_deref()) {
                    return false; // its parent has finished, or is done with it: nothing to tell it
                }
                let news = self.signature.is_none() || before != Some(entry.signature);
                groups.insert(key, value, entry);
                news
            }
            Event::Delete(object) => {
                self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&key_of(object));
                true
            }
            Event::Init => {
                self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner()).relisting = Some(Vec::new());
                true
            }
            Event::InitApply(object) => {
                let entry = self.entry(object);
                let mut groups = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                groups.relisting.get_or_insert_with(Vec::new).extend(entry);
                true
            }
            Event::InitDone => {
                let mut groups = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                let listed = groups.relisting.take().unwrap_or_default();
                let mut fresh = Groups {
                    retired: std::mem::take(&mut groups.retired),
                    forgotten: std::mem::take(&mut groups.forgotten),
                    ..Default::default()
                };
                for (key, value, entry) in listed {
                    fresh.insert(key, value, entry);
                }
                *groups = fresh;
                drop(groups);
                self.ready.send_replace(true);
                true
            }
        }
    }

    /// The children in `namespace` whose label has `value`, in no order.
    pub fn group(&self, namespace: &str, value: &str) -> Vec<K> {
        let groups = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let group = (namespace.to_string(), value.to_string());
        let children = groups.by_group.get(&group).into_iter().flat_map(|children| children.values());
        children.filter_map(decode).collect()
    }

    /// The child `name` in `namespace`, if cached.
    pub fn get(&self, namespace: &str, name: &str) -> Option<K> {
        let groups = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        groups.get(&(namespace.to_string(), name.to_string())).and_then(decode)
    }

    /// Stops keeping the children of the group `value` in `namespace`, and
    /// drops those kept: their parent has finished and reads nothing more.
    pub fn retire(&self, namespace: &str, value: &str) {
        let mut groups = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let group = (namespace.to_string(), value.to_string());
        groups.forgotten.remove(&group); // all of them are dropped now
        if !groups.retired.insert(group.clone()) {
            return;
        }
        for name in groups.by_group.remove(&group).into_iter().flat_map(|children| children.into_keys()) {
            groups.group_of.remove(&(namespace.to_string(), name));
        }
    }

    /// Keeps the group's children again, from their next event on: its
    /// parent is rerun, or a new parent took the name.
    pub fn unretire(&self, namespace: &str, value: &str) {
        let group = (namespace.to_string(), value.to_string());
        let mut groups = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        groups.retired.remove(&group);
    }

    /// Forgets the retired groups, and the forgotten children of the
    /// groups, that `keep` says no to (their parent is gone).
    pub fn retain_groups(&self, keep: impl Fn(&str, &str) -> bool) {
        let mut groups = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        groups.retired.retain(|(namespace, value)| keep(namespace, value));
        groups.forgotten.retain(|(namespace, value), _| keep(namespace, value));
    }

    /// Stops keeping the children `names` of the group `value` in
    /// `namespace`, and the children they control (a Job's pods): their
    /// parent is done with them. Their later events are no news.
    pub fn forget(&self, namespace: &str, value: &str, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let mut groups = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let group = (namespace.to_string(), value.to_string());
        if groups.retired.contains(&group) {
            return;
        }
        groups.forgotten.entry(group.clone()).or_default().extend(names.iter().cloned());
        let dropped: Vec<String> = groups.by_group.get(&group).map_or_else(Vec::new, |children| {
            children
                .iter()
                .filter(|(name, entry)| groups.is_dropped(&group, name, entry.owner.as_deref()))
                .map(|(name, _)| name.clone())
                .collect()
        });
        for name in dropped {
            groups.remove(&(namespace.to_string(), name));
        }
    }

    /// The names of the forgotten children of the group `value` in
    /// `namespace` (empty for most: read once per reconcile).
    pub fn forgotten(&self, namespace: &str, value: &str) -> HashSet<String> {
        let groups = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let group = (namespace.to_string(), value.to_string());
        groups.forgotten.get(&group).cloned().unwrap_or_default()
    }

    /// Keeps the forgotten children of the group `value` in `namespace`
    /// again, starting with `children` (read from the API server: a watch
    /// event may never come for them).
    pub fn recall(&self, namespace: &str, value: &str, children: Vec<K>) {
        let group = (namespace.to_string(), value.to_string());
        self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner()).forgotten.remove(&group);
        for child in children {
            self.apply(&Event::Apply(child));
        }
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

/// The child an entry holds (what was encoded decodes, short of a bug).
fn decode<K: DeserializeOwned>(entry: &Entry) -> Option<K> {
    serde_json::from_slice(&entry.json).inspect_err(|e| warn!(error = %e, "cannot decode a cached child")).ok()
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

    fn names(jobs: Vec<Job>) -> Vec<String> {
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

    #[test]
    fn a_finished_parents_children_are_dropped_and_not_kept_again_until_it_is_rerun() {
        let cache = ChildCache::<Job>::new("gantry.dev/run");
        cache.apply(&Event::Apply(job("a", "done-build-1", Some("done"))));
        cache.apply(&Event::Apply(job("a", "live-build-1", Some("live"))));
        cache.apply(&Event::Apply(job("b", "done-build-1", Some("done"))));
        cache.retire("a", "done");
        assert!(cache.group("a", "done").is_empty() && cache.get("a", "done-build-1").is_none());
        assert_eq!(cache.len(), 2, "another run's children, and a namespace's namesake, stay");
        assert!(!cache.apply(&Event::Apply(job("a", "done-build-1", Some("done")))), "no news for a finished run");
        cache.apply(&Event::Init);
        cache.apply(&Event::InitApply(job("a", "done-build-1", Some("done"))));
        cache.apply(&Event::InitApply(job("a", "live-build-1", Some("live"))));
        cache.apply(&Event::InitDone);
        assert!(cache.group("a", "done").is_empty(), "a relist does not bring them back");
        assert_eq!(names(cache.group("a", "live")), ["live-build-1"]);
        cache.unretire("a", "done");
        assert!(cache.apply(&Event::Apply(job("a", "done-build-2", Some("done")))), "a rerun's new Job is news");
        assert_eq!(names(cache.group("a", "done")), ["done-build-2"]);
        cache.retire("a", "gone");
        cache.retain_groups(|_, run| run != "gone");
        cache.apply(&Event::Apply(job("a", "gone-build-1", Some("gone"))));
        assert_eq!(names(cache.group("a", "gone")), ["gone-build-1"], "a new run of that name is kept");
    }

    fn pod(ns: &str, name: &str, run: &str, job: &str) -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"gantry.dev/run": run},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": "u",
                                              "controller": true}]}
        }))
        .unwrap()
    }

    #[test]
    fn children_a_parent_is_done_with_are_dropped_with_their_pods_until_recalled() {
        let jobs = ChildCache::<Job>::new("gantry.dev/run");
        let pods = ChildCache::<k8s_openapi::api::core::v1::Pod>::new("gantry.dev/run");
        for name in ["r-a-1", "r-b-1"] {
            jobs.apply(&Event::Apply(job("ns", name, Some("r"))));
            pods.apply(&Event::Apply(pod("ns", &format!("{name}-x1"), "r", name)));
        }
        jobs.apply(&Event::Apply(job("other", "r-a-1", Some("r"))));
        let done = ["r-a-1".to_string()];
        jobs.forget("ns", "r", &done);
        pods.forget("ns", "r", &done);
        assert_eq!(names(jobs.group("ns", "r")), ["r-b-1"]);
        assert_eq!(pods.group("ns", "r").len(), 1, "the forgotten Job's pod went with it");
        assert!(pods.get("ns", "r-b-1-x1").is_some());
        assert!(jobs.get("other", "r-a-1").is_some(), "the same name in another namespace stays");
        assert_eq!(jobs.forgotten("ns", "r"), HashSet::from(["r-a-1".to_string()]));

        assert!(!jobs.apply(&Event::Apply(job("ns", "r-a-1", Some("r")))), "a forgotten child's update is no news");
        assert!(!pods.apply(&Event::Apply(pod("ns", "r-a-1-x2", "r", "r-a-1"))), "nor a new pod of it");
        jobs.apply(&Event::Init);
        jobs.apply(&Event::InitApply(job("ns", "r-a-1", Some("r"))));
        jobs.apply(&Event::InitApply(job("ns", "r-b-1", Some("r"))));
        jobs.apply(&Event::InitDone);
        assert_eq!(names(jobs.group("ns", "r")), ["r-b-1"], "a relist does not bring it back");

        jobs.recall("ns", "r", vec![job("ns", "r-a-1", Some("r"))]);
        assert_eq!(names(jobs.group("ns", "r")), ["r-a-1", "r-b-1"], "recalled with what was read");
        assert!(jobs.forgotten("ns", "r").is_empty());
        pods.recall("ns", "r", vec![]);
        assert!(pods.apply(&Event::Apply(pod("ns", "r-a-1-x2", "r", "r-a-1"))), "kept again from its next event");

        jobs.forget("ns", "r", &done);
        jobs.retire("ns", "r");
        jobs.unretire("ns", "r");
        assert!(jobs.forgotten("ns", "r").is_empty(), "retiring drops everything, so forgetting ends");
        jobs.forget("ns", "gone", &done);
        jobs.retain_groups(|_, run| run != "gone");
        assert!(jobs.forgotten("ns", "gone").is_empty(), "a deleted parent's forgotten children are let go");
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

//! Sharding PipelineRuns across replicas (`gantry run --shards N`).
//!
//! Every run falls in one of [`BUCKETS`] buckets, a stable hash of its
//! namespace and its concurrency group (its own name when it has none), so
//! the runs of one group (one gate queue) always share a bucket. The bucket
//! space does not depend on the number of shards: changing `--shards`
//! relabels nothing. Shard `k` of `N` owns the buckets `b` with
//! `b % N == k`. The bucket is written on the run as the label
//! [`LABEL_SHARD`], and every child (stage Jobs, their pods, the workspace
//! claim) inherits it, so a replica watches only its shards' objects with a
//! set-based label selector: runs in its buckets ([`selector`]); children
//! not in the other shards' buckets ([`children_selector`]), so children
//! made before sharding, without the label, are still seen.

use std::collections::BTreeSet;

use crate::api::PipelineRun;
use crate::engine::naming::fnv1a;
pub use crate::engine::naming::LABEL_SHARD;

/// How many buckets runs are spread over; also the most shards there can be.
pub const BUCKETS: u32 = 64;

/// The bucket of the run named `name` in `namespace`, in concurrency
/// group `group` if it has one.
pub fn bucket(namespace: &str, group: Option<&str>, name: &str) -> u32 {
    let key = group.unwrap_or(name);
    (fnv1a(format!("{namespace}/{key}").as_bytes()) % u64::from(BUCKETS)) as u32
}

/// The bucket `run`'s namespace and group (or name) hash to.
pub fn hashed_bucket(run: &PipelineRun) -> u32 {
    let group = run.spec.concurrency.as_ref().map(|c| c.group.as_str());
    let meta = &run.metadata;
    bucket(meta.namespace.as_deref().unwrap_or_default(), group, meta.name.as_deref().unwrap_or_default())
}

/// The bucket a label value names, when it is one (a number below [`BUCKETS`]
/// written the canonical way, so that a selector listing buckets matches it).
pub fn parse_label(value: &str) -> Option<u32> {
    let n: u32 = value.parse().ok()?;
    (n < BUCKETS && n.to_string() == value).then_some(n)
}

/// The bucket `run` is in: its label's, when that is valid; else its hash.
/// Children get this value, so they always land where their run is watched.
pub fn run_bucket(run: &PipelineRun) -> u32 {
    let labelled = run.metadata.labels.as_ref().and_then(|l| l.get(LABEL_SHARD));
    labelled.and_then(|v| parse_label(v)).unwrap_or_else(|| hashed_bucket(run))
}

/// Whether `run` needs (re)labelling: no shard label, or one that names no bucket.
pub fn needs_label(run: &PipelineRun) -> bool {
    let labelled = run.metadata.labels.as_ref().and_then(|l| l.get(LABEL_SHARD));
    labelled.and_then(|v| parse_label(v)).is_none()
}

/// The shard of `shards` that owns `bucket`.
pub fn shard_of(bucket: u32, shards: u32) -> u32 {
    bucket % shards.max(1)
}

/// The buckets the shards `held` (of `shards`) own, in order.
pub fn buckets_of(held: &BTreeSet<u32>, shards: u32) -> Vec<u32> {
    (0..BUCKETS).filter(|b| held.contains(&shard_of(*b, shards))).collect()
}

/// The label selector of the objects the shards `held` (of `shards`) own:
/// `gantry.dev/shard in (b1,b2,...)`. `None` when they own no bucket.
pub fn selector(held: &BTreeSet<u32>, shards: u32) -> Option<String> {
    let buckets = buckets_of(held, shards);
    (!buckets.is_empty()).then(|| format!("{LABEL_SHARD} in ({})", join(&buckets)))
}

/// The label selector of the children (Jobs, pods) the shards `held` (of
/// `shards`) watch: `gantry.dev/shard notin (the other shards' buckets)`,
/// which also matches children without the label (made before sharding;
/// only their run's owner acts on them). `None` when every shard is held.
pub fn children_selector(held: &BTreeSet<u32>, shards: u32) -> Option<String> {
    let others: BTreeSet<u32> = (0..shards).filter(|k| !held.contains(k)).collect();
    let buckets = buckets_of(&others, shards);
    (!buckets.is_empty()).then(|| format!("{LABEL_SHARD} notin ({})", join(&buckets)))
}

/// The label selector of the runs without a valid shard label: missing, or
/// naming no bucket (`notin` matches objects without the label too).
pub fn unlabelled_selector() -> String {
    format!("{LABEL_SHARD} notin ({})", join(&(0..BUCKETS).collect::<Vec<_>>()))
}

fn join(buckets: &[u32]) -> String {
    buckets.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(ns: &str, name: &str, group: Option<&str>, label: Option<&str>) -> PipelineRun {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": name, "namespace": ns,
                         "labels": label.map(|l| serde_json::json!({LABEL_SHARD: l}))},
            "spec": {"stages": [{"name": "a", "run": {"image": "x"}}],
                     "concurrency": group.map(|g| serde_json::json!({"group": g}))}
        }))
        .unwrap()
    }

    #[test]
    fn the_bucket_is_a_fixed_hash_of_namespace_and_group_or_name() {
        // Pinned: a change of hash would move every run of a running fleet.
        assert_eq!(bucket("ci", None, "nightly"), (fnv1a(b"ci/nightly") % 64) as u32);
        assert_eq!(bucket("ci", None, "nightly"), bucket("ci", None, "nightly"));
        assert_eq!(hashed_bucket(&run("ci", "nightly", None, None)), bucket("ci", None, "nightly"));
        // Every run of a group shares its bucket, whatever its name.
        let buckets: BTreeSet<u32> =
            (0..50).map(|i| hashed_bucket(&run("ci", &format!("r{i}"), Some("release"), None))).collect();
        assert_eq!(buckets, BTreeSet::from([bucket("ci", Some("release"), "")]));
        assert_ne!(bucket("ci", Some("release"), ""), bucket("other", Some("release"), ""), "per namespace");
    }

    #[test]
    fn buckets_spread_evenly_over_names() {
        let mut counts = [0u32; BUCKETS as usize];
        for i in 0..6400 {
            counts[bucket("ci", None, &format!("run-{i}")) as usize] += 1;
        }
        // 100 expected per bucket.
        assert!(counts.iter().all(|c| (60..=140).contains(c)), "{counts:?}");
        let two_shards = (0..1000).filter(|i| shard_of(bucket("ci", None, &format!("r{i}")), 2) == 0).count();
        assert!((400..=600).contains(&two_shards), "{two_shards}");
    }

    #[test]
    fn a_valid_label_is_kept_and_anything_else_is_relabelled() {
        let hashed = hashed_bucket(&run("ci", "n", None, None));
        let other = (hashed + 1) % BUCKETS;
        let labelled = run("ci", "n", None, Some(&other.to_string()));
        assert_eq!((run_bucket(&labelled), needs_label(&labelled)), (other, false), "the label wins");
        for bad in ["64", "-1", "07", "x", "", " 3"] {
            let r = run("ci", "n", None, Some(bad));
            assert_eq!((run_bucket(&r), needs_label(&r)), (hashed, true), "{bad:?}");
        }
        assert!(needs_label(&run("ci", "n", None, None)));
    }

    #[test]
    fn shard_k_of_n_owns_the_buckets_equal_to_k_modulo_n() {
        assert_eq!(shard_of(13, 4), 1);
        assert_eq!(shard_of(13, 1), 0);
        assert_eq!(
            buckets_of(&BTreeSet::from([1]), 4),
            vec![1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61]
        );
        assert_eq!(buckets_of(&BTreeSet::from([0, 1]), 2).len(), 64);
        assert!(buckets_of(&BTreeSet::new(), 2).is_empty());
        // 64 shards: one bucket each.
        assert_eq!(buckets_of(&BTreeSet::from([63]), 64), vec![63]);
    }

    #[test]
    fn selectors_list_the_held_buckets_or_none_of_them() {
        let held = BTreeSet::from([0]);
        let sel = selector(&held, 16).unwrap();
        assert_eq!(sel, "gantry.dev/shard in (0,16,32,48)");
        assert_eq!(selector(&BTreeSet::new(), 16), None);
        let children = children_selector(&BTreeSet::from([0, 1]), 4).unwrap();
        assert_eq!(children, format!("gantry.dev/shard notin ({})", join(&buckets_of(&BTreeSet::from([2, 3]), 4))));
        assert_eq!(children_selector(&BTreeSet::from([0, 1]), 2), None, "every shard held: no narrowing");
        let unlabelled = unlabelled_selector();
        assert!(unlabelled.starts_with("gantry.dev/shard notin (0,1,2,"), "{unlabelled}");
        assert!(unlabelled.ends_with(",62,63)"), "{unlabelled}");
    }

    proptest! {
        #[test]
        fn every_bucket_has_exactly_one_shard(shards in 1u32..=BUCKETS, b in 0u32..BUCKETS) {
            let owners: Vec<u32> =
                (0..shards).filter(|k| buckets_of(&BTreeSet::from([*k]), shards).contains(&b)).collect();
            prop_assert_eq!(owners, vec![shard_of(b, shards)]);
        }

        #[test]
        fn labels_written_are_labels_read(ns in "[a-z0-9-]{1,20}", name in "[a-z0-9.-]{1,60}") {
            let b = bucket(&ns, None, &name);
            prop_assert!(b < BUCKETS);
            prop_assert_eq!(parse_label(&b.to_string()), Some(b));
        }
    }
}

//! One Lease per shard (`gantry run --shards N`): `<lease-name>-shard-<k>`.
//! Each replica holds some of them and reconciles only the runs of the
//! shards it holds (`engine::shard`). Every Lease is taken, renewed and lost
//! exactly as the single leader Lease is (`Elector`, `timing`); what this
//! module adds is which shards a replica tries to take.
//!
//! The rule ([`to_claim`]), looked at every retry period:
//! - A replica holds at most its fair share, `ceil(N / live)`, where `live`
//!   counts itself and every other replica seen holding a shard Lease that
//!   is being renewed. It never gives up a shard it holds to make room
//!   (only on shutdown, or when it loses it).
//! - Its preferred shard, `fnv1a(identity) % N`, is claimed as soon as it is
//!   free (no Lease, or released).
//! - Another free shard is claimed only after it has been seen free for
//!   `(1 + held) ×` the lease duration: the replica that prefers it, and then
//!   the replica holding fewest shards, gets it first. So replicas started
//!   together spread over the shards instead of the first taking them all.
//! - A shard whose holder stopped renewing (its record unchanged for a lease
//!   duration, on this replica's clock) is claimed at once: takeover.
//! - A shard held under this replica's own name (by its previous process)
//!   is claimed at once.
//!
//! A replica that starts while the others already hold every shard waits,
//! as a standby does for the single Lease, until one is released or expires.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Decision, Elector, LeaseConfig, Look, Lost, Tenure};
use crate::engine::naming::fnv1a;

/// The Lease of shard `k`.
pub fn lease_name(base: &str, k: u32) -> String {
    format!("{base}-shard-{k}")
}

/// The shard `identity` tries first.
pub fn preferred(identity: &str, shards: u32) -> u32 {
    (fnv1a(identity.as_bytes()) % u64::from(shards.max(1))) as u32
}

/// What one look at a shard's Lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// No Lease, or released; free for this long (on this replica's clock).
    Free(Duration),
    /// Held under this replica's own name by an earlier process.
    Mine,
    /// Held by a replica that stopped renewing it.
    Expired,
    /// Held by the named replica, which renews it.
    Renewed(String),
}

impl Seen {
    /// What `look` says, `free_for` being how long it has been seen free.
    pub fn of(look: &Look, me: &str, free_for: Duration) -> Self {
        match (&look.decision, look.holder.as_deref()) {
            (Decision::WaitFor(_), Some(holder)) => Seen::Renewed(holder.to_string()),
            (Decision::WaitFor(_), None) => Seen::Free(free_for),
            (_, Some(holder)) if holder == me => Seen::Mine,
            (_, Some(_)) => Seen::Expired,
            (_, None) => Seen::Free(free_for),
        }
    }
}

/// The shards this replica should claim now (best first), given the ones it
/// `held` and what it saw of the others. See the module's rule.
pub fn to_claim(shards: u32, me: &str, held: &BTreeSet<u32>, seen: &BTreeMap<u32, Seen>, lease: Duration) -> Vec<u32> {
    let others: BTreeSet<&str> = seen
        .iter()
        .filter(|(k, _)| !held.contains(k))
        .filter_map(|(_, s)| match s {
            Seen::Renewed(holder) if holder != me => Some(holder.as_str()),
            _ => None,
        })
        .collect();
    let live = others.len() as u32 + 1;
    let fair_share = shards.div_ceil(live) as usize;
    let room = fair_share.saturating_sub(held.len());
    let first = preferred(me, shards);
    let patience = lease * (1 + held.len() as u32);
    let mut order: Vec<u32> = (0..shards).filter(|k| !held.contains(k)).collect();
    order.sort_by_key(|k| (*k != first, *k));
    order
        .into_iter()
        .filter(|k| match seen.get(k) {
            Some(Seen::Mine | Seen::Expired) => true,
            Some(Seen::Free(free_for)) => *k == first || *free_for >= patience,
            Some(Seen::Renewed(_)) | None => false,
        })
        .take(room)
        .collect()
}

/// This replica's shard Leases: the ones it holds (renewed in the
/// background) and electors looking at the others.
pub struct ShardLeases {
    client: Client,
    base: LeaseConfig,
    shards: u32,
    /// Electors of the shards not held.
    waiting: BTreeMap<u32, Elector>,
    /// Since when each free shard was seen free.
    free_since: BTreeMap<u32, Instant>,
    /// The shards held: their elector and renewal task.
    held: BTreeMap<u32, (Arc<Elector>, tokio::task::JoinHandle<()>)>,
    lost_tx: mpsc::UnboundedSender<(u32, Lost)>,
}

impl ShardLeases {
    /// Leases named after `base.name`, timed as `base`; the receiver reports
    /// each held shard that is lost (its renewals failed for the renew
    /// deadline, or someone else holds it): reconciling it must stop at once.
    pub fn new(client: Client, base: LeaseConfig, shards: u32) -> (Self, mpsc::UnboundedReceiver<(u32, Lost)>) {
        let (lost_tx, lost_rx) = mpsc::unbounded_channel();
        let mut leases = Self {
            client,
            base,
            shards,
            waiting: BTreeMap::new(),
            free_since: BTreeMap::new(),
            held: BTreeMap::new(),
            lost_tx,
        };
        for k in 0..shards {
            let elector = leases.elector(k);
            leases.waiting.insert(k, elector);
        }
        (leases, lost_rx)
    }

    fn elector(&self, k: u32) -> Elector {
        let cfg = LeaseConfig { name: lease_name(&self.base.name, k), ..self.base.clone() };
        Elector::new(self.client.clone(), cfg)
    }

    /// How often to look again.
    pub fn retry_period(&self) -> Duration {
        self.base.retry_period
    }

    /// The shards held now.
    pub fn held(&self) -> BTreeSet<u32> {
        self.held.keys().copied().collect()
    }

    /// Looks at every shard not held and claims what the rule says.
    pub async fn look_round(&mut self) {
        let now = Instant::now();
        let mut looks = BTreeMap::new();
        let mut seen = BTreeMap::new();
        for (k, elector) in &mut self.waiting {
            match elector.look().await {
                Ok(look) => {
                    let free = look.holder.is_none();
                    let since = *self.free_since.entry(*k).or_insert(now);
                    if !free {
                        self.free_since.remove(k);
                    }
                    let free_for = if free { now.saturating_duration_since(since) } else { Duration::ZERO };
                    seen.insert(*k, Seen::of(&look, &self.base.identity, free_for));
                    looks.insert(*k, look);
                }
                Err(e) => warn!(lease = %lease_name(&self.base.name, *k), error = %e, "cannot read the shard lease"),
            }
        }
        let held = self.held();
        for k in to_claim(self.shards, &self.base.identity, &held, &seen, self.base.duration) {
            let (Some(look), Some(mut elector)) = (looks.remove(&k), self.waiting.remove(&k)) else { continue };
            match elector.claim(look).await {
                Ok(Some(sent)) => {
                    info!(shard = k, identity = %self.base.identity, "took the shard lease");
                    self.free_since.remove(&k);
                    self.hold(k, elector, Tenure::starting(sent, self.base.renew_deadline));
                }
                Ok(None) => {
                    self.waiting.insert(k, elector);
                }
                Err(e) => {
                    warn!(shard = k, error = %e, "cannot claim the shard lease");
                    self.waiting.insert(k, elector);
                }
            }
        }
    }

    /// Renews shard `k`'s Lease in the background until it is lost.
    fn hold(&mut self, k: u32, elector: Elector, tenure: Tenure) {
        let elector = Arc::new(elector);
        let (renewing, lost_tx) = (elector.clone(), self.lost_tx.clone());
        let task = tokio::spawn(async move {
            let lost = renewing.hold(tenure).await;
            let _ = lost_tx.send((k, lost));
        });
        self.held.insert(k, (elector, task));
    }

    /// Stops renewing every shard Lease held and releases them, so other
    /// replicas take over at once. Only once nothing reconciles them.
    pub async fn release_all(&mut self) {
        for (k, (elector, task)) in std::mem::take(&mut self.held) {
            task.abort();
            let _ = task.await;
            elector.release().await;
            let fresh = self.elector(k);
            self.waiting.insert(k, fresh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(6);

    fn free(secs: u64) -> Seen {
        Seen::Free(Duration::from_secs(secs))
    }

    fn held(shards: &[u32]) -> BTreeSet<u32> {
        shards.iter().copied().collect()
    }

    /// An identity that prefers shard `k` of `n`.
    fn preferring(k: u32, n: u32) -> String {
        preferring_other(k, n, "")
    }

    /// Another identity than `not` that prefers shard `k` of `n`.
    fn preferring_other(k: u32, n: u32, not: &str) -> String {
        (0..).map(|i| format!("replica-{i}")).find(|id| preferred(id, n) == k && id != not).unwrap()
    }

    #[test]
    fn a_look_is_free_mine_expired_or_renewed() {
        let look = |decision, holder: Option<&str>| Look { current: None, decision, holder: holder.map(Into::into) };
        let wait = Decision::WaitFor(Duration::from_secs(3));
        let d = Duration::from_secs(2);
        assert_eq!(Seen::of(&look(Decision::Create, None), "a", d), Seen::Free(d));
        assert_eq!(Seen::of(&look(Decision::Claim, None), "a", d), Seen::Free(d));
        assert_eq!(Seen::of(&look(Decision::Claim, Some("a")), "a", d), Seen::Mine);
        assert_eq!(Seen::of(&look(Decision::Claim, Some("b")), "a", d), Seen::Expired);
        assert_eq!(Seen::of(&look(wait, Some("b")), "a", d), Seen::Renewed("b".into()));
    }

    #[test]
    fn lease_names_and_preferences_are_stable() {
        assert_eq!(lease_name("gantry", 3), "gantry-shard-3");
        assert_eq!(preferred("gantry-7d9f-abcde", 4), preferred("gantry-7d9f-abcde", 4));
        assert!((0..100).all(|i| preferred(&format!("pod-{i}"), 4) < 4));
        assert_eq!(preferred("anyone", 1), 0);
    }

    #[test]
    fn the_preferred_shard_is_taken_at_once_the_others_after_waiting() {
        let me = preferring(1, 4);
        let seen: BTreeMap<u32, Seen> = (0..4).map(|k| (k, free(0))).collect();
        assert_eq!(to_claim(4, &me, &held(&[]), &seen, LEASE), vec![1]);
        // Free for a lease duration: a replica holding nothing takes them all (alone, its share is 4).
        let seen: BTreeMap<u32, Seen> = (0..4).map(|k| (k, free(6))).collect();
        assert_eq!(to_claim(4, &me, &held(&[]), &seen, LEASE), vec![1, 0, 2, 3]);
        // Holding one, it waits twice as long: a replica holding none goes first.
        let seen: BTreeMap<u32, Seen> = [(0, free(6)), (2, free(11)), (3, free(12))].into();
        assert_eq!(to_claim(4, &me, &held(&[1]), &seen, LEASE), vec![3]);
    }

    #[test]
    fn no_replica_takes_more_than_its_fair_share_of_the_live_ones() {
        let me = preferring(0, 4);
        // Another replica renews shard 1: two live, two shards each.
        let seen: BTreeMap<u32, Seen> = [(1, Seen::Renewed("b".into())), (2, free(60)), (3, free(60))].into();
        assert_eq!(to_claim(4, &me, &held(&[0]), &seen, LEASE), vec![2]);
        assert!(to_claim(4, &me, &held(&[0, 2]), &seen, LEASE).is_empty(), "at its share");
        // Three live replicas and two shards: at most one each.
        let seen: BTreeMap<u32, Seen> = [(1, Seen::Renewed("b".into()))].into();
        assert!(to_claim(2, &me, &held(&[0]), &seen, LEASE).is_empty());
    }

    #[test]
    fn a_dead_replicas_shards_are_taken_over_by_a_survivor() {
        let me = preferring(0, 2);
        // The other replica stopped renewing shard 1: it no longer counts as live.
        let seen: BTreeMap<u32, Seen> = [(1, Seen::Expired)].into();
        assert_eq!(to_claim(2, &me, &held(&[0]), &seen, LEASE), vec![1]);
        // A survivor of three takes all when every other lease expired.
        let me = preferring(2, 3);
        let seen: BTreeMap<u32, Seen> = [(0, Seen::Expired), (1, Seen::Expired)].into();
        assert_eq!(to_claim(3, &me, &held(&[2]), &seen, LEASE), vec![0, 1]);
    }

    #[test]
    fn a_lease_under_its_own_name_is_taken_back_at_once() {
        let me = preferring(0, 2);
        let seen: BTreeMap<u32, Seen> = [(0, Seen::Mine), (1, Seen::Mine)].into();
        assert_eq!(to_claim(2, &me, &held(&[]), &seen, LEASE), vec![0, 1]);
    }

    #[test]
    fn two_replicas_started_together_split_the_shards() {
        // Simulate: both look every second; a claim by one is seen by the other.
        let a = preferring(0, 2);
        for b in [preferring(1, 2), preferring_other(0, 2, &a)] {
            let mut holder: BTreeMap<u32, String> = BTreeMap::new();
            let mut free_since: BTreeMap<u32, u64> = BTreeMap::new();
            for t in 0..30u64 {
                for me in [&a, &b] {
                    let mine: BTreeSet<u32> = holder.iter().filter(|(_, h)| h == &me).map(|(k, _)| *k).collect();
                    let seen: BTreeMap<u32, Seen> = (0..2)
                        .filter(|k| !mine.contains(k))
                        .map(|k| match holder.get(&k) {
                            Some(h) => (k, Seen::Renewed(h.clone())),
                            None => (k, free(t - *free_since.entry(k).or_insert(t))),
                        })
                        .collect();
                    for k in to_claim(2, me, &mine, &seen, LEASE) {
                        holder.insert(k, me.clone());
                    }
                }
            }
            let by_a = holder.values().filter(|h| **h == a).count();
            assert_eq!((holder.len(), by_a), (2, 1), "{a} and {b}: {holder:?}");
        }
    }
}

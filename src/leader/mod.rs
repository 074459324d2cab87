//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas are
//! safe: one reconciles, the other waits and takes over when the leader
//! stops renewing (or at once when the leader releases it on shutdown).
//!
//! - Every write is an optimistic update (the Lease's resourceVersion), so
//!   two candidates can never both believe they won.
//! - Nothing compares clocks across replicas (see `timing`): a candidate
//!   takes over after seeing the same Lease record for a lease duration on
//!   its own clock; the leader stops when it has not renewed for the renew
//!   deadline (two thirds of the duration) on its own clock, before that.
//! - The `renewTime`/`acquireTime` written are for people and other tools.
//!
//! Why not the `kube-lease-manager` crate: it decides that a lease expired
//! by comparing the holder's `renewTime` with the candidate's wall clock (a
//! candidate whose clock runs ahead by more than its grace period takes over
//! a lease that is being renewed), its watch channel keeps reporting
//! leadership while renewals fail, and it clears an expired holder with a
//! patch that has no resourceVersion precondition.

pub mod shards;
pub mod timing;

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::{Api, Client};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::controllers::create_params;
use crate::engine::conditions::to_k8s_time;
pub use timing::{Decision, Lost, Tenure};
use timing::{LeaseRecord, Observer, Renewal};

/// Where the lease lives, who competes for it, and its timing.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease lasts without renewal, as every candidate counts it.
    pub duration: Duration,
    /// The leader stops leading when it could not renew for this long;
    /// shorter than `duration`, so it stops before anyone may take over.
    pub renew_deadline: Duration,
    /// How often the leader renews and a candidate looks again.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// The timing for `--lease-seconds` (at least 3): the renew deadline is
    /// two thirds of the lease; renewals come every eighth of it, so that
    /// several can be tried (and take their time) within the deadline.
    pub fn new(namespace: String, name: String, identity: String, lease_seconds: u64) -> Self {
        let duration = Duration::from_secs(lease_seconds.max(3));
        Self { namespace, name, identity, duration, renew_deadline: duration * 2 / 3, retry_period: duration / 8 }
    }
}

fn micro(t: DateTime<Utc>) -> MicroTime {
    MicroTime(to_k8s_time(t).0)
}

fn record_of(lease: &Lease, fallback: Duration) -> LeaseRecord {
    let spec = lease.spec.as_ref();
    let declared = spec.and_then(|s| s.lease_duration_seconds).and_then(|s| u64::try_from(s).ok()).filter(|s| *s > 0);
    LeaseRecord {
        version: lease.metadata.resource_version.clone().unwrap_or_default(),
        holder: spec.and_then(|s| s.holder_identity.clone()),
        duration: declared.map_or(fallback, Duration::from_secs),
    }
}

/// The spec that makes `cfg.identity` the holder as of `now`.
fn claimed(spec: Option<&LeaseSpec>, cfg: &LeaseConfig, now: DateTime<Utc>) -> LeaseSpec {
    let previous = spec.cloned().unwrap_or_default();
    let same_holder = previous.holder_identity.as_deref() == Some(cfg.identity.as_str());
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(cfg.duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if same_holder { previous.acquire_time.clone() } else { Some(micro(now)) },
        renew_time: Some(micro(now)),
        lease_transitions: Some(previous.lease_transitions.unwrap_or(0) + i32::from(!same_holder)),
        ..previous
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// The Lease as one look found it.
#[derive(Debug, Clone)]
pub struct Look {
    /// The Lease read (`None`: it does not exist).
    pub current: Option<Lease>,
    /// Whether it may be claimed now.
    pub decision: Decision,
    /// Who holds it, as written (empty or released: `None`).
    pub holder: Option<String>,
}

/// One replica's part in the election.
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    observer: Observer,
    /// The Lease as this replica last wrote it: a renewal is then one
    /// write (a conflict says someone else wrote since).
    last_written: std::sync::Mutex<Option<Lease>>,
}

impl Elector {
    /// An elector for the Lease `cfg` names.
    pub fn new(client: Client, cfg: LeaseConfig) -> Self {
        let api = Api::namespaced(client, &cfg.namespace);
        Self { api, cfg, observer: Observer::default(), last_written: std::sync::Mutex::new(None) }
    }

    /// Waits until this replica holds the lease; then `hold` must run.
    pub async fn acquire(&mut self) -> Tenure {
        info!(lease = %self.cfg.name, identity = %self.cfg.identity, "waiting to become leader");
        loop {
            let wait = match self.try_acquire().await {
                Ok(Ok(sent)) => {
                    info!(lease = %self.cfg.name, identity = %self.cfg.identity, "became leader");
                    return Tenure::starting(sent, self.cfg.renew_deadline);
                }
                Ok(Err(wait)) => wait,
                Err(e) => {
                    warn!(error = %e, "cannot read or write the lease; retrying");
                    self.cfg.retry_period
                }
            };
            tokio::time::sleep(wait.clamp(Duration::from_millis(200), self.cfg.retry_period)).await;
        }
    }

    /// One look at the Lease, and a claim when due. `Ok`: we hold it now,
    /// by a write sent at that instant; else how long to wait at most before
    /// looking again.
    async fn try_acquire(&mut self) -> Result<Result<Instant, Duration>, kube::Error> {
        let look = self.look().await?;
        match look.decision {
            Decision::WaitFor(wait) => Ok(Err(wait)),
            Decision::Create | Decision::Claim => Ok(self.claim(look).await?.ok_or(Duration::ZERO)),
        }
    }

    /// Reads the Lease and decides, on this replica's clock, whether it may
    /// be claimed (see `timing::Observer`).
    pub async fn look(&mut self) -> Result<Look, kube::Error> {
        let current = self.api.get_opt(&self.cfg.name).await?;
        let record = current.as_ref().map(|l| record_of(l, self.cfg.duration));
        let decision = self.observer.decide(record.as_ref(), &self.cfg.identity, Instant::now());
        let holder = record.and_then(|r| r.holder).filter(|h| !h.is_empty());
        Ok(Look { current, decision, holder })
    }

    /// Claims the Lease as `look` found it (when its decision allows). `Some`:
    /// we hold it now, by a write sent at that instant; `None`: someone else
    /// wrote first, or the decision was to wait.
    pub async fn claim(&mut self, look: Look) -> Result<Option<Instant>, kube::Error> {
        let sent = Instant::now();
        let written = match look.decision {
            Decision::WaitFor(_) => return Ok(None),
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.cfg.name.clone()), ..Default::default() },
                    spec: Some(claimed(None, &self.cfg, Utc::now())),
                };
                self.api.create(&create_params(), &lease).await
            }
            Decision::Claim => {
                let mut lease = look.current.unwrap_or_default();
                lease.spec = Some(claimed(lease.spec.as_ref(), &self.cfg, Utc::now()));
                self.api.replace(&self.cfg.name, &create_params(), &lease).await
            }
        };
        match written {
            Ok(lease) => {
                *self.last_written.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(lease);
                Ok(Some(sent))
            }
            // Someone else wrote first (409 on replace; on create, 409 too).
            Err(e) if is_conflict(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The timing this elector uses.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// Renews the lease until leadership is lost, and says why; the caller
    /// must stop reconciling at once.
    pub async fn hold(&self, tenure: Tenure) -> Lost {
        let lost = timing::keep_renewing(|| self.renew_once(), tenure, self.cfg.retry_period).await;
        warn!(lease = %self.cfg.name, reason = %lost, "no longer the leader");
        lost
    }

    /// One renewal: a write over the Lease as we last wrote it; when that
    /// conflicts, a fresh read, which says whether it is still ours.
    async fn renew_once(&self) -> Renewal {
        let cached = self.last_written.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(lease) = cached {
            match self.write_renewal(lease).await {
                Err(e) if is_conflict(&e) => {}
                other => return other.unwrap_or_else(|e| Renewal::Failed(e.to_string())),
            }
        }
        let current = match self.api.get_opt(&self.cfg.name).await {
            Ok(Some(lease)) => lease,
            // A candidate may create it anew at once.
            Ok(None) => return Renewal::Lost("the Lease was deleted".into()),
            Err(e) => return Renewal::Failed(e.to_string()),
        };
        let holder = current.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).unwrap_or("");
        if holder != self.cfg.identity {
            return Renewal::Lost(format!("held by {holder:?} now"));
        }
        self.write_renewal(current).await.unwrap_or_else(|e| Renewal::Failed(e.to_string()))
    }

    /// Writes `lease` renewed (at its resourceVersion) and keeps the result.
    async fn write_renewal(&self, mut lease: Lease) -> Result<Renewal, kube::Error> {
        lease.spec = Some(claimed(lease.spec.as_ref(), &self.cfg, Utc::now()));
        let sent = Instant::now();
        let written = self.api.replace(&self.cfg.name, &create_params(), &lease).await?;
        *self.last_written.lock().unwrap_or_else(|e| e.into_inner()) = Some(written);
        Ok(Renewal::Renewed(sent))
    }

    /// Gives the lease up so a standby replica takes over at once.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await else { return };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(micro(Utc::now()));
        match self.api.replace(&self.cfg.name, &create_params(), &lease).await {
            Ok(_) => info!(lease = %self.cfg.name, "released the lease"),
            Err(e) => warn!(error = %e, "could not release the lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn cfg() -> LeaseConfig {
        LeaseConfig::new("gantry-system".into(), "gantry".into(), "a".into(), 15)
    }

    #[test]
    fn the_renew_deadline_is_shorter_than_the_lease_and_renewals_come_well_within_it() {
        let cfg = cfg();
        assert_eq!(
            (cfg.duration, cfg.renew_deadline, cfg.retry_period),
            (Duration::from_secs(15), Duration::from_secs(10), Duration::from_millis(1875))
        );
        let short = LeaseConfig::new("ns".into(), "l".into(), "a".into(), 1);
        assert_eq!(short.duration, Duration::from_secs(3), "at least 3 s");
        assert!(short.renew_deadline < short.duration && short.retry_period * 3 <= short.renew_deadline);
    }

    #[test]
    fn the_record_is_the_version_the_holder_and_its_declared_duration() {
        let lease = Lease {
            metadata: ObjectMeta { resource_version: Some("42".into()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some("b".into()),
                lease_duration_seconds: Some(6),
                ..Default::default()
            }),
        };
        let record = record_of(&lease, Duration::from_secs(15));
        assert_eq!(
            record,
            LeaseRecord { version: "42".into(), holder: Some("b".into()), duration: Duration::from_secs(6) }
        );
        let undeclared = Lease { spec: None, ..lease };
        assert_eq!(record_of(&undeclared, Duration::from_secs(15)).duration, Duration::from_secs(15));
    }

    #[test]
    fn claiming_counts_transitions_and_keeps_the_acquire_time_on_renewal() {
        let held_by_b = LeaseSpec { holder_identity: Some("b".into()), ..Default::default() };
        let taken = claimed(Some(&held_by_b), &cfg(), t(20));
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.lease_duration_seconds, Some(15));
        let renewed = claimed(Some(&taken), &cfg(), t(25));
        assert_eq!(renewed.lease_transitions, Some(1));
        assert_eq!(renewed.acquire_time, taken.acquire_time);
        assert_eq!(renewed.renew_time, Some(micro(t(25))));
    }
}

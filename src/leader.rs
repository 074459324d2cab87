//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas are
//! safe: one reconciles, the other waits and takes over when the leader's
//! lease expires (or at once when the leader releases it on shutdown).
//!
//! Every write is an optimistic update (the Lease's resourceVersion), so two
//! candidates can never both believe they won.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{info, warn};

use crate::engine::conditions::to_k8s_time;

/// Where the lease lives and who competes for it.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
}

/// What a candidate should do with the lease as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it: create it (when absent) or claim it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it until this time.
    WaitUntil(DateTime<Utc>),
}

/// Decides from the lease's current spec (if the Lease exists). Pure.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: DateTime<Utc>) -> Decision {
    let Some(spec) = spec else { return Decision::Acquire };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() {
        return Decision::Acquire;
    }
    if holder == me {
        return Decision::Renew;
    }
    let renewed = spec.renew_time.as_ref().and_then(|t| DateTime::from_timestamp_micros(t.0.as_microsecond()));
    let duration = chrono::Duration::seconds(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    match renewed {
        Some(at) if at + duration > now => Decision::WaitUntil(at + duration),
        _ => Decision::Acquire,
    }
}

fn micro(t: DateTime<Utc>) -> MicroTime {
    MicroTime(to_k8s_time(t).0)
}

fn claimed(spec: Option<&LeaseSpec>, cfg: &LeaseConfig, now: DateTime<Utc>) -> LeaseSpec {
    let previous = spec.cloned().unwrap_or_default();
    let same_holder = previous.holder_identity.as_deref() == Some(cfg.identity.as_str());
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs() as i32),
        acquire_time: if same_holder { previous.acquire_time.clone() } else { Some(micro(now)) },
        renew_time: Some(micro(now)),
        lease_transitions: Some(previous.lease_transitions.unwrap_or(0) + i32::from(!same_holder)),
        ..previous
    }
}

/// One attempt to acquire or renew. Returns whether we hold the lease now,
/// or when to look again.
async fn try_once(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<Result<(), DateTime<Utc>>, kube::Error> {
    let now = Utc::now();
    let current = api.get_opt(&cfg.name).await?;
    match decide(current.as_ref().and_then(|l| l.spec.as_ref()), &cfg.identity, now) {
        Decision::WaitUntil(at) => Ok(Err(at)),
        Decision::Acquire | Decision::Renew => {
            let spec = claimed(current.as_ref().and_then(|l| l.spec.as_ref()), cfg, now);
            let result = match current {
                Some(mut lease) => {
                    lease.spec = Some(spec);
                    api.replace(&cfg.name, &PostParams::default(), &lease).await
                }
                None => {
                    let lease = Lease {
                        metadata: ObjectMeta { name: Some(cfg.name.clone()), ..Default::default() },
                        spec: Some(spec),
                    };
                    api.create(&PostParams::default(), &lease).await
                }
            };
            match result {
                Ok(_) => Ok(Ok(())),
                // Someone else wrote first: look again.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Err(now)),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this replica holds the lease.
pub async fn acquire(client: &Client, cfg: &LeaseConfig) {
    let api = Api::<Lease>::namespaced(client.clone(), &cfg.namespace);
    info!(lease = %cfg.name, identity = %cfg.identity, "waiting to become leader");
    loop {
        match try_once(&api, cfg).await {
            Ok(Ok(())) => {
                info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
                return;
            }
            Ok(Err(until)) => {
                let wait = (until - Utc::now())
                    .to_std()
                    .unwrap_or_default()
                    .clamp(Duration::from_millis(200), cfg.renew_every);
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                warn!(error = %e, "cannot read or write the lease; retrying");
                tokio::time::sleep(cfg.renew_every).await;
            }
        }
    }
}

/// Renews the lease until it cannot; returns when leadership is lost (the
/// caller must stop reconciling at once).
pub async fn hold(client: &Client, cfg: &LeaseConfig) {
    let api = Api::<Lease>::namespaced(client.clone(), &cfg.namespace);
    let mut last_renewal = Utc::now();
    loop {
        tokio::time::sleep(cfg.renew_every).await;
        match try_once(&api, cfg).await {
            Ok(Ok(())) => last_renewal = Utc::now(),
            Ok(Err(_)) => {
                warn!(lease = %cfg.name, "another replica holds the lease now");
                return;
            }
            Err(e) => {
                let held_until = last_renewal + chrono::Duration::from_std(cfg.duration).unwrap_or_default();
                if Utc::now() >= held_until {
                    warn!(error = %e, "could not renew the lease before it expired");
                    return;
                }
                warn!(error = %e, "lease renewal failed; retrying");
            }
        }
    }
}

/// Gives the lease up so a standby replica takes over at once.
pub async fn release(client: &Client, cfg: &LeaseConfig) {
    let api = Api::<Lease>::namespaced(client.clone(), &cfg.namespace);
    if let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await {
        let ours = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(cfg.identity.as_str());
        if ours {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
            }
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => info!(lease = %cfg.name, "released the lease"),
                Err(e) => warn!(error = %e, "could not release the lease"),
            }
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

    fn held_by(who: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(who.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(micro(t(renewed))),
            ..Default::default()
        }
    }

    #[test]
    fn a_missing_or_released_lease_is_acquired() {
        assert_eq!(decide(None, "a", t(0)), Decision::Acquire);
        let released = LeaseSpec { holder_identity: None, ..held_by("b", 0) };
        assert_eq!(decide(Some(&released), "a", t(0)), Decision::Acquire);
    }

    #[test]
    fn the_holder_renews_and_others_wait_until_it_expires() {
        let lease = held_by("b", 0);
        assert_eq!(decide(Some(&lease), "b", t(5)), Decision::Renew);
        assert_eq!(decide(Some(&lease), "a", t(5)), Decision::WaitUntil(t(15)));
        assert_eq!(decide(Some(&lease), "a", t(15)), Decision::Acquire, "expired: take over");
    }

    #[test]
    fn claiming_counts_transitions_and_keeps_the_acquire_time_on_renewal() {
        let cfg = LeaseConfig {
            namespace: "gantry-system".into(),
            name: "gantry".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        };
        let taken = claimed(Some(&held_by("b", 0)), &cfg, t(20));
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(1));
        let renewed = claimed(Some(&taken), &cfg, t(25));
        assert_eq!(renewed.lease_transitions, Some(1));
        assert_eq!(renewed.acquire_time, taken.acquire_time);
        assert_eq!(renewed.renew_time, Some(micro(t(25))));
    }
}

//! The election's decisions, timed on this replica's own monotonic clock.
//! Pure but for the renewal loop, which takes the renewal as a closure.
//!
//! No decision compares a timestamp written by another replica with this
//! replica's clock: a candidate takes over a lease whose record (its
//! resourceVersion, which every write changes) it has seen unchanged for a
//! whole lease duration, counted from when *it* first saw that record; the
//! holder stops leading when it has not renewed for the renew deadline,
//! counted from when *it* sent its last successful renewal. The deadline
//! is shorter than the lease duration, so the holder has stopped before any
//! candidate can have seen its last record for a lease duration.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

/// What the Lease says, as far as the election cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `metadata.resourceVersion`: changes on every write, renewals included.
    pub version: String,
    /// `spec.holderIdentity`; `None` or empty when released.
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds` as the holder declared it.
    pub duration: Duration,
}

/// What a candidate should do with the Lease as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, holding it.
    Create,
    /// Free, ours already, or not renewed for a lease duration: claim it.
    Claim,
    /// Someone else holds it: look again after this long at the latest.
    WaitFor(Duration),
}

/// What a candidate has seen of the Lease: the record's version and when it
/// first saw that version, on its own clock.
#[derive(Debug, Default, Clone)]
pub struct Observer {
    seen: Option<(String, Instant)>,
}

impl Observer {
    /// Decides from the Lease as read at `now` (`None`: it does not exist).
    pub fn decide(&mut self, record: Option<&LeaseRecord>, me: &str, now: Instant) -> Decision {
        let Some(record) = record else {
            self.seen = None;
            return Decision::Create;
        };
        let since = match &self.seen {
            Some((version, at)) if *version == record.version => *at,
            _ => {
                self.seen = Some((record.version.clone(), now));
                now
            }
        };
        match record.holder.as_deref() {
            None | Some("") => Decision::Claim,
            // Held under our own name by an earlier run of this replica
            // (same pod, restarted): that process is gone.
            Some(holder) if holder == me => Decision::Claim,
            Some(_) => {
                let unchanged = now.saturating_duration_since(since);
                match record.duration.checked_sub(unchanged) {
                    Some(left) if !left.is_zero() => Decision::WaitFor(left),
                    _ => Decision::Claim,
                }
            }
        }
    }
}

/// The holder's side: when it last renewed and how long it may go without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenure {
    renewed_at: Instant,
    deadline: Duration,
}

impl Tenure {
    /// Leadership won by a write that started at `at` (the Lease can have
    /// been written no earlier, so others count from no earlier).
    pub fn starting(at: Instant, deadline: Duration) -> Self {
        Self { renewed_at: at, deadline }
    }

    /// A renewal sent at `at` succeeded.
    pub fn renewed(&mut self, at: Instant) {
        self.renewed_at = self.renewed_at.max(at);
    }

    /// How long this replica may still lead without another renewal.
    pub fn left(&self, now: Instant) -> Duration {
        (self.renewed_at + self.deadline).saturating_duration_since(now)
    }
}

/// How one renewal attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// The Lease is ours for another lease duration, by a write sent at
    /// this instant (candidates cannot have seen it any earlier).
    Renewed(Instant),
    /// Someone else holds it, or it is gone: stop leading at once.
    Lost(String),
    /// The attempt failed (API error, write conflict); try again.
    Failed(String),
}

/// Why a leader stopped leading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    /// The Lease was taken over or deleted.
    #[error("the lease was lost: {0}")]
    TakenOver(String),
    /// No renewal succeeded within the renew deadline.
    #[error("the lease was not renewed within {0:?}")]
    NotRenewed(Duration),
}

/// Renews every `every` until leadership is lost; returns at once when a
/// renewal says so, and by the tenure's deadline when renewals fail or hang.
pub async fn keep_renewing<F, Fut>(mut renew: F, mut tenure: Tenure, every: Duration) -> Lost
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Renewal>,
{
    let deadline = tenure.deadline;
    loop {
        tokio::time::sleep(every.min(tenure.left(Instant::now()))).await;
        let left = tenure.left(Instant::now());
        if left.is_zero() {
            return Lost::NotRenewed(deadline);
        }
        match tokio::time::timeout(left, renew()).await {
            Ok(Renewal::Renewed(sent)) => tenure.renewed(sent),
            Ok(Renewal::Lost(why)) => return Lost::TakenOver(why),
            Ok(Renewal::Failed(why)) => warn!(error = %why, left = ?left, "lease renewal failed; retrying"),
            // An attempt still running at the deadline could not help.
            Err(_) => return Lost::NotRenewed(deadline),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn held_by(who: &str, version: &str) -> LeaseRecord {
        LeaseRecord { version: version.into(), holder: Some(who.into()), duration: Duration::from_secs(15) }
    }

    #[test]
    fn a_missing_released_or_own_lease_is_taken_at_once() {
        let now = Instant::now();
        let mut observer = Observer::default();
        assert_eq!(observer.decide(None, "a", now), Decision::Create);
        let released = LeaseRecord { holder: None, ..held_by("b", "1") };
        assert_eq!(observer.decide(Some(&released), "a", now), Decision::Claim);
        let emptied = LeaseRecord { holder: Some(String::new()), ..held_by("b", "2") };
        assert_eq!(observer.decide(Some(&emptied), "a", now), Decision::Claim);
        assert_eq!(observer.decide(Some(&held_by("a", "3")), "a", now), Decision::Claim);
    }

    #[test]
    fn another_holder_is_waited_for_a_whole_lease_duration_from_first_sight() {
        let t0 = Instant::now();
        let mut observer = Observer::default();
        let lease = held_by("b", "7");
        assert_eq!(observer.decide(Some(&lease), "a", t0), Decision::WaitFor(Duration::from_secs(15)));
        let t = |s| t0 + Duration::from_secs(s);
        assert_eq!(observer.decide(Some(&lease), "a", t(10)), Decision::WaitFor(Duration::from_secs(5)));
        assert_eq!(observer.decide(Some(&lease), "a", t(15)), Decision::Claim, "unchanged for 15 s: take over");
    }

    #[test]
    fn every_renewal_restarts_the_count_whatever_its_timestamps_say() {
        // The record carries no time at all: only its version matters, so a
        // holder whose clock is hours off is neither cut short nor kept on.
        let t0 = Instant::now();
        let t = |s| t0 + Duration::from_secs(s);
        let mut observer = Observer::default();
        observer.decide(Some(&held_by("b", "1")), "a", t0);
        assert_eq!(observer.decide(Some(&held_by("b", "2")), "a", t(14)), Decision::WaitFor(Duration::from_secs(15)));
        assert_eq!(observer.decide(Some(&held_by("b", "2")), "a", t(28)), Decision::WaitFor(Duration::from_secs(1)));
        assert_eq!(observer.decide(Some(&held_by("b", "2")), "a", t(29)), Decision::Claim);
    }

    #[test]
    fn a_candidate_that_just_started_waits_a_full_duration_even_for_an_old_record() {
        let mut fresh = Observer::default();
        let now = Instant::now();
        assert_eq!(fresh.decide(Some(&held_by("b", "1")), "a", now), Decision::WaitFor(Duration::from_secs(15)));
    }

    #[test]
    fn the_tenure_counts_from_the_start_of_the_last_successful_renewal() {
        let t0 = Instant::now();
        let mut tenure = Tenure::starting(t0, Duration::from_secs(10));
        assert_eq!(tenure.left(t0 + Duration::from_secs(4)), Duration::from_secs(6));
        tenure.renewed(t0 + Duration::from_secs(5));
        assert_eq!(tenure.left(t0 + Duration::from_secs(14)), Duration::from_secs(1));
        tenure.renewed(t0 + Duration::from_secs(2));
        assert_eq!(tenure.left(t0 + Duration::from_secs(14)), Duration::from_secs(1), "never moves back");
        assert_eq!(tenure.left(t0 + Duration::from_secs(20)), Duration::ZERO);
    }

    const LEASE: Duration = Duration::from_millis(900);
    const DEADLINE: Duration = Duration::from_millis(600);
    const EVERY: Duration = Duration::from_millis(100);

    /// Runs `keep_renewing` with `renew`; returns why it stopped and when.
    async fn stops(renew: impl FnMut(u32) -> Renewal) -> (Lost, Duration) {
        let renew = std::sync::Mutex::new(renew);
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let lost = keep_renewing(
            || {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                let result = (renew.lock().unwrap())(n);
                async move { result }
            },
            Tenure::starting(started, DEADLINE),
            EVERY,
        )
        .await;
        (lost, started.elapsed())
    }

    #[tokio::test]
    async fn a_leader_that_cannot_renew_stops_before_its_lease_can_be_taken() {
        let (lost, after) = stops(|_| Renewal::Failed("connection refused".into())).await;
        assert_eq!(lost, Lost::NotRenewed(DEADLINE));
        assert!(after >= DEADLINE, "not before the deadline: {after:?}");
        assert!(after < LEASE, "before a candidate could take over: {after:?}");
    }

    #[tokio::test]
    async fn the_deadline_counts_from_the_last_renewal_that_succeeded() {
        // Three renewals succeed (the last starts at about 300 ms), then none.
        let (lost, after) =
            stops(|n| if n < 3 { Renewal::Renewed(Instant::now()) } else { Renewal::Failed("timeout".into()) }).await;
        assert_eq!(lost, Lost::NotRenewed(DEADLINE));
        let last_success = EVERY * 3;
        assert!(after >= last_success + DEADLINE, "{after:?}");
        assert!(after < last_success + LEASE, "{after:?}");
    }

    #[tokio::test]
    async fn a_renewal_that_hangs_does_not_hold_the_leader_past_the_deadline() {
        let started = Instant::now();
        let hanging = || async {
            std::future::pending::<()>().await;
            Renewal::Renewed(Instant::now())
        };
        // Bounded, so that a loop that waits on the renewal fails rather than hangs.
        let lost = tokio::time::timeout(LEASE * 2, keep_renewing(hanging, Tenure::starting(started, DEADLINE), EVERY))
            .await
            .expect("stopped by the deadline");
        assert_eq!(lost, Lost::NotRenewed(DEADLINE));
        assert!(started.elapsed() < LEASE, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_lease_taken_over_stops_the_leader_at_the_next_renewal() {
        let (lost, after) = stops(|_| Renewal::Lost("held by intruder now".into())).await;
        assert_eq!(lost, Lost::TakenOver("held by intruder now".into()));
        assert!(after < EVERY * 3, "{after:?}");
    }

    #[tokio::test]
    async fn a_leader_that_renews_keeps_leading() {
        let outcome = tokio::time::timeout(LEASE * 3, stops(|_| Renewal::Renewed(Instant::now()))).await;
        assert!(outcome.is_err(), "still leading after three lease durations: {outcome:?}");
    }
}

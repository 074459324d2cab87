//! The background delivery of CloudEvents: one queue and one task per
//! target URL, so a target that hangs or fails delays only itself, never a
//! reconcile, a status write or another target.
//!
//! - The reconciler [`Deliveries::enqueue`]s what a run's outbox (its
//!   status) holds past what the target acknowledged; it never waits: a
//!   full queue refuses the rest, which stays in the outbox and is offered
//!   again at a later reconcile. Each event is queued once per process.
//! - A target's task POSTs its queue in order (so one run's events reach a
//!   target in order), each with a [`REQUEST_TIMEOUT`], retrying a failed
//!   event with exponential backoff from [`FIRST_BACKOFF`] to
//!   [`MAX_BACKOFF`] until it is acknowledged or [`MAX_FAILURES`] tries in
//!   a row failed (about 7 minutes), when the target is given up for that
//!   run.
//! - What happened is kept per run and target ([`Progress`]) and the run
//!   is woken; the reconciler folds it into the status it writes (see
//!   [`crate::engine::pipelinerun::outbox`]). This task never writes status itself.
//!
//! Memory is bounded: [`QUEUE_CAPACITY`] events per target, at most
//! [`MAX_TARGET_QUEUES`] targets with a queue at once (an idle queue goes
//! away after [`IDLE_EXIT`]), and progress (and, where the CRD lacks
//! `status.notifications`, outboxes) only for runs that exist.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{Notifier, SendError, REQUEST_TIMEOUT};
use crate::api::pipelinerun::{NotificationStatus, PendingNotification};
use crate::engine::pipelinerun::outbox::{Progress, MAX_FAILURES};
use crate::metrics::Metrics;

/// Events waiting per target URL (across runs).
pub const QUEUE_CAPACITY: usize = 64;
/// Most target URLs with a queue (and a task) at once.
pub const MAX_TARGET_QUEUES: usize = 256;
/// Wait after the first failed try of an event.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A target's task ends after this long without events.
pub const IDLE_EXIT: Duration = Duration::from_secs(60);
/// How long a cached status older than the one written is waited out.
pub const STALE_PATIENCE: Duration = Duration::from_secs(30);
/// Runs waiting to be woken after a delivery; beyond, wake-ups are dropped
/// (the reconciler looks again by itself while anything is unacknowledged).
const WAKE_CAPACITY: usize = 1024;

/// A run, by uid too: a run deleted and created again is another run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RunKey {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// One event in a target's queue.
struct Item {
    run: RunKey,
    sequence: u64,
    body: Bytes,
}

/// Where one run stands with one target in this process.
#[derive(Default)]
struct Lane {
    progress: Progress,
    /// The newest sequence handed to the queue.
    queued: u64,
    /// The last offer found the queue full (warn once per episode).
    full: bool,
}

#[derive(Default)]
struct State {
    lanes: HashMap<(RunKey, String), Lane>,
    queues: HashMap<String, mpsc::Sender<Item>>,
    /// The newest outbox sequence this process wrote per run, when, and
    /// whether an older status was waited out and taken as it was.
    written: HashMap<RunKey, (u64, Instant, bool)>,
    /// Outboxes the API server dropped (a CRD older than the operator),
    /// kept here so that notifications go on while this process lives.
    unpersisted: HashMap<RunKey, NotificationStatus>,
}

/// What [`Deliveries::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offer {
    /// Events newly queued.
    pub queued: usize,
    /// The queue was full and was not before: worth a Warning Event.
    pub newly_full: bool,
    /// Some events could not be queued yet.
    pub held_back: bool,
}

/// The delivery side, shared by the reconciler and the target tasks.
pub struct Deliveries {
    state: Mutex<State>,
    notifier: Option<Notifier>,
    metrics: Arc<Metrics>,
    wake: mpsc::Sender<RunKey>,
}

impl Deliveries {
    /// The delivery side and the stream of runs to wake after deliveries.
    pub fn new(notifier: Option<Notifier>, metrics: Arc<Metrics>) -> (Arc<Self>, mpsc::Receiver<RunKey>) {
        let (wake, woken) = mpsc::channel(WAKE_CAPACITY);
        (Arc::new(Deliveries { state: Mutex::default(), notifier, metrics, wake }), woken)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the maps inconsistent: each update is one statement.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What this process knows about `run`'s deliveries to `url`.
    pub fn progress(&self, run: &RunKey, url: &str) -> Option<Progress> {
        self.state().lanes.get(&(run.clone(), url.to_string())).map(|l| l.progress.clone())
    }

    /// Queues, in order, the `events` (oldest first) that are not queued or
    /// acknowledged yet; `recorded` is the target's progress as the status
    /// says. Never waits. `body` makes an event's JSON.
    pub fn enqueue(
        self: &Arc<Self>,
        run: &RunKey,
        url: &str,
        recorded: &Progress,
        events: &[&PendingNotification],
        body: impl Fn(&PendingNotification) -> Bytes,
    ) -> Offer {
        let mut state = self.state();
        let key = (run.clone(), url.to_string());
        let lane = state.lanes.entry(key.clone()).or_insert_with(|| Lane {
            progress: recorded.clone(),
            queued: recorded.delivered,
            full: false,
        });
        if recorded.delivered > lane.progress.delivered {
            // Another replica got further (a leader change): trust the status.
            lane.progress = recorded.clone();
        }
        lane.queued = lane.queued.max(lane.progress.delivered);
        let after = lane.queued;
        let mut offer = Offer::default();
        let new: Vec<&&PendingNotification> = events.iter().filter(|e| e.sequence > after).collect();
        if new.is_empty() {
            return offer;
        }
        let Some(queue) = self.queue_for(&mut state, url) else {
            offer.held_back = true;
            offer.newly_full = self.mark_full(&mut state, &key, true);
            return offer;
        };
        for event in new {
            let item = Item { run: run.clone(), sequence: event.sequence, body: body(event) };
            match queue.try_send(item) {
                Ok(()) => {
                    offer.queued += 1;
                    if let Some(lane) = state.lanes.get_mut(&key) {
                        lane.queued = event.sequence;
                    }
                }
                Err(_) => {
                    offer.held_back = true;
                    break;
                }
            }
        }
        offer.newly_full = self.mark_full(&mut state, &key, offer.held_back);
        if offer.held_back {
            self.metrics.notification("queue_full");
        }
        offer
    }

    /// Records whether the lane's last offer hit a full queue; true when that is news.
    fn mark_full(&self, state: &mut State, key: &(RunKey, String), full: bool) -> bool {
        state.lanes.get_mut(key).is_some_and(|lane| !std::mem::replace(&mut lane.full, full) && full)
    }

    /// The queue of `url`, starting its task if it has none; None when too
    /// many targets have one.
    fn queue_for(self: &Arc<Self>, state: &mut State, url: &str) -> Option<mpsc::Sender<Item>> {
        if let Some(queue) = state.queues.get(url).filter(|q| !q.is_closed()) {
            return Some(queue.clone());
        }
        state.queues.retain(|_, q| !q.is_closed());
        if state.queues.len() >= MAX_TARGET_QUEUES {
            warn!(url, "too many notification targets at once; holding events back");
            return None;
        }
        let (queue, events) = mpsc::channel(QUEUE_CAPACITY);
        state.queues.insert(url.to_string(), queue.clone());
        tokio::spawn(self.clone().serve(url.to_string(), events));
        Some(queue)
    }

    /// Remembers that the status written for `run` holds outbox `sequence`.
    pub fn written(&self, run: &RunKey, sequence: u64) {
        let mut state = self.state();
        let newest = state.written.entry(run.clone()).or_insert((0, Instant::now(), false));
        if sequence > newest.0 {
            *newest = (sequence, Instant::now(), false);
        }
    }

    /// Whether a status with outbox `sequence` is older than one this
    /// process wrote: a cached copy that has not caught up yet. Planning
    /// from it would number other transitions with sequences that targets
    /// already acknowledged, so they would never be sent. After
    /// [`STALE_PATIENCE`] the older status is taken as it is (someone
    /// edited it), so a run is never stuck.
    pub fn is_stale(&self, run: &RunKey, sequence: u64) -> bool {
        let mut state = self.state();
        let Some((newest, at, waited_out)) = state.written.get(run).copied() else { return false };
        if sequence >= newest || waited_out {
            return false;
        }
        if at.elapsed() < STALE_PATIENCE {
            return true;
        }
        state.written.insert(run.clone(), (newest, at, true));
        false
    }

    /// The newest outbox sequence this process wrote for `run`: new
    /// transitions are numbered above it even when the status went back (a
    /// second writer put an older one), so none reuses a number a target
    /// already acknowledged.
    pub fn sequence_floor(&self, run: &RunKey) -> u64 {
        self.state().written.get(run).map_or(0, |w| w.0)
    }

    /// Keeps (`Some`) or forgets (`None`) the outbox the API server did not store for `run`.
    pub fn set_unpersisted(&self, run: &RunKey, outbox: Option<NotificationStatus>) {
        let mut state = self.state();
        match outbox {
            Some(outbox) => state.unpersisted.insert(run.clone(), outbox),
            None => state.unpersisted.remove(run),
        };
    }

    /// The outbox the API server did not store for `run`, if any.
    pub fn unpersisted(&self, run: &RunKey) -> Option<NotificationStatus> {
        self.state().unpersisted.get(run).cloned()
    }

    /// Forgets the runs `exists` says are gone.
    pub fn retain_runs(&self, exists: impl Fn(&RunKey) -> bool) {
        let mut state = self.state();
        state.lanes.retain(|(run, _), _| exists(run));
        state.written.retain(|run, _| exists(run));
        state.unpersisted.retain(|run, _| exists(run));
    }

    /// A target's task: deliver its queue in order; end when idle.
    async fn serve(self: Arc<Self>, url: String, mut events: mpsc::Receiver<Item>) {
        loop {
            let item = match tokio::time::timeout(IDLE_EXIT, events.recv()).await {
                Ok(Some(item)) => item,
                Ok(None) => return,
                Err(_) => {
                    // Decide under the lock, where events are queued, so none is stranded.
                    let mut state = self.state();
                    match events.try_recv() {
                        Ok(item) => item,
                        Err(_) => {
                            state.queues.remove(&url);
                            return;
                        }
                    }
                }
            };
            self.deliver(&url, item).await;
        }
    }

    /// Tries one event until the target acknowledges it or is given up.
    async fn deliver(&self, url: &str, item: Item) {
        let key = (item.run.clone(), url.to_string());
        let mut backoff = FIRST_BACKOFF;
        loop {
            let wanted =
                self.state().lanes.get(&key).is_some_and(|lane| {
                    item.sequence > lane.progress.delivered && lane.progress.failures < MAX_FAILURES
                });
            if !wanted {
                return;
            }
            let result = match &self.notifier {
                Some(notifier) => notifier.post(url, item.body.clone()).await,
                None => {
                    Err(SendError { refused: false, message: "the operator found no TLS root certificates".into() })
                }
            };
            let given_up = self.record(&key, item.sequence, &result);
            let _ = self.wake.try_send(item.run.clone());
            match result {
                Ok(()) => return,
                Err(e) => {
                    debug!(run = %item.run.name, url, error = %e.message, "notification failed");
                    if given_up {
                        warn!(run = %item.run.name, url, error = %e.message, "notification given up");
                        self.metrics.notification("gave_up");
                        return;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Notes one try's result; true when the target is now given up.
    fn record(&self, key: &(RunKey, String), sequence: u64, result: &Result<(), SendError>) -> bool {
        self.metrics.notification(match result {
            Ok(()) => "delivered",
            Err(e) if e.refused => "refused",
            Err(_) => "failed",
        });
        let mut state = self.state();
        let Some(lane) = state.lanes.get_mut(key) else { return false };
        match result {
            Ok(()) => {
                lane.progress = Progress { delivered: sequence.max(lane.progress.delivered), ..Default::default() };
                false
            }
            Err(e) => {
                lane.progress.failures += 1;
                lane.progress.last_error = Some(e.message.clone());
                lane.progress.failures >= MAX_FAILURES
            }
        }
    }
}

/// How long a target is tried for one event before it is given up: the
/// backoff waits plus every try's timeout.
pub fn give_up_after() -> Duration {
    let mut total = Duration::ZERO;
    let mut backoff = FIRST_BACKOFF;
    for _ in 1..MAX_FAILURES {
        total += backoff + REQUEST_TIMEOUT;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    total + REQUEST_TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn run() -> RunKey {
        RunKey { namespace: "ci".into(), name: "nightly".into(), uid: "u1".into() }
    }

    fn event(sequence: u64) -> PendingNotification {
        PendingNotification { sequence, reason: "RunRunning".into(), time: Utc::now(), ..Default::default() }
    }

    fn body(e: &PendingNotification) -> Bytes {
        Bytes::from(e.sequence.to_string())
    }

    #[test]
    fn giving_up_takes_minutes_not_forever() {
        let total = give_up_after();
        assert!(total > Duration::from_secs(300) && total < Duration::from_secs(600), "{total:?}");
    }

    /// A target that is never reached: its queue fills, the rest is held
    /// back (once warned), nothing is queued twice, and the reconciler never waits.
    #[tokio::test]
    async fn a_full_queue_refuses_new_events_without_waiting_and_queues_each_once() {
        let notifier = Notifier::new(DestinationPolicy { allow_public: false, ..Default::default() }).ok();
        let (deliveries, _woken) = Deliveries::new(notifier, Arc::default());
        let url = "http://unreachable.example/";
        let events: Vec<PendingNotification> = (1..=(QUEUE_CAPACITY as u64 + 10)).map(event).collect();
        let all: Vec<&PendingNotification> = events.iter().collect();
        let first = deliveries.enqueue(&run(), url, &Progress::default(), &all[..3], body);
        assert_eq!(first, Offer { queued: 3, newly_full: false, held_back: false });
        let again = deliveries.enqueue(&run(), url, &Progress::default(), &all[..3], body);
        assert_eq!(again.queued, 0, "already queued");
        let rest = deliveries.enqueue(&run(), url, &Progress::default(), &all, body);
        assert!(rest.held_back && rest.newly_full, "{rest:?}");
        assert!(rest.queued <= QUEUE_CAPACITY);
        let later = deliveries.enqueue(&run(), url, &Progress::default(), &all, body);
        assert!(later.held_back && !later.newly_full, "warned once: {later:?}");
    }

    #[tokio::test]
    async fn a_refused_destination_counts_as_a_failed_try_and_wakes_the_run() {
        let notifier = Notifier::new(DestinationPolicy::default()).ok();
        let (deliveries, mut woken) = Deliveries::new(notifier, Arc::default());
        let url = "http://127.0.0.1:9/";
        let events = [event(1)];
        deliveries.enqueue(&run(), url, &Progress::default(), &[&events[0]], body);
        let key = tokio::time::timeout(Duration::from_secs(10), woken.recv()).await.unwrap().unwrap();
        assert_eq!(key, run());
        let progress = deliveries.progress(&run(), url).unwrap();
        assert_eq!(progress.delivered, 0);
        assert_eq!(progress.failures, 1);
        assert!(progress.last_error.unwrap().contains("127.0.0.1 is not an allowed"));
        deliveries.retain_runs(|_| false);
        assert_eq!(deliveries.progress(&run(), url), None, "gone runs are forgotten");
    }

    #[test]
    fn a_status_older_than_the_one_written_is_stale() {
        let (deliveries, _woken) = Deliveries::new(None, Arc::default());
        assert!(!deliveries.is_stale(&run(), 0), "nothing written yet: a restarted operator trusts its cache");
        deliveries.written(&run(), 4);
        deliveries.written(&run(), 2);
        assert!(deliveries.is_stale(&run(), 3));
        assert!(!deliveries.is_stale(&run(), 4) && !deliveries.is_stale(&run(), 5));
        let other = RunKey { uid: "u2".into(), ..run() };
        assert!(!deliveries.is_stale(&other, 0), "a run created again is another run");
        deliveries.retain_runs(|_| false);
        assert!(!deliveries.is_stale(&run(), 3));
    }

    use crate::engine::pipelinerun::destinations::DestinationPolicy;
}

//! The reconciler's side of `spec.notify`: before the status is written,
//! record the plan's transitions in the run's outbox and fold in what the
//! delivery task reported; after it is written, hand the delivery task
//! what each target still lacks. Nothing here waits for a target.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hyper::body::Bytes;
use kube::ResourceExt;
use tracing::warn;

use crate::api::pipelinerun::PipelineRunStatus;
use crate::api::PipelineRun;
use crate::engine::note::Note;
use crate::engine::pipelinerun::destinations::DestinationPolicy;
use crate::engine::pipelinerun::events;
use crate::engine::pipelinerun::outbox::{accepted_targets, next_outbox, unacknowledged, warnings, Progress};
use crate::notify::delivery::{Deliveries, RunKey, QUEUE_CAPACITY};
use crate::resources::cloudevent::pipeline_event;

/// How soon a run with unacknowledged events is looked at again without
/// news from the delivery task (a lost wake-up, a queue that was full).
pub const RECHECK: Duration = Duration::from_secs(30);

/// The run as the delivery task knows it.
pub fn run_key(run: &PipelineRun) -> Option<RunKey> {
    Some(RunKey { namespace: run.namespace()?, name: run.name_any(), uid: run.uid()? })
}

/// How soon a run whose cached status is older than the one written is
/// looked at again (the watch normally delivers the newer one first).
pub const STALE_RECHECK: Duration = Duration::from_millis(500);

/// Whether `run` comes from a cache that has not seen the outbox this
/// process last wrote for it: the reconcile must wait, or it would number
/// transitions again.
pub fn is_stale(run: &PipelineRun, deliveries: &Deliveries) -> bool {
    let sequence = run.status.as_ref().and_then(|s| s.notifications.as_ref()).map_or(0, |n| n.sequence);
    run_key(run).is_some_and(|key| deliveries.is_stale(&key, sequence))
}

/// Remembers the outbox of the status just written, as the API server
/// stored it (see [`is_stale`]). A CRD older than the operator prunes
/// `status.notifications`: then there is nothing to wait for (and
/// notifications are unreliable until the CRDs are updated).
pub fn written(sent: &PipelineRunStatus, stored: &PipelineRun, deliveries: &Deliveries) {
    let Some(key) = run_key(stored) else { return };
    match stored.status.as_ref().and_then(|s| s.notifications.as_ref()) {
        Some(outbox) => {
            deliveries.written(&key, outbox.sequence);
            deliveries.set_unpersisted(&key, None);
        }
        None if sent.notifications.is_some() => {
            if !PRUNED_WARNED.swap(true, Ordering::Relaxed) {
                warn!("the API server dropped status.notifications: the PipelineRun CRD is older than the operator; apply crds/ (until then, undelivered notifications do not survive a restart)");
            }
            deliveries.set_unpersisted(&key, sent.notifications.clone());
        }
        None => deliveries.set_unpersisted(&key, None),
    }
}

static PRUNED_WARNED: AtomicBool = AtomicBool::new(false);

/// Sets `status.notifications` for this reconcile: `notes` recorded as new
/// transitions, acknowledgements and failures folded in. Returns the
/// Warning Events that calls for (a target failing, given up, dropped events).
pub fn record(
    run: &PipelineRun,
    status: &mut PipelineRunStatus,
    notes: &[Note],
    policy: &DestinationPolicy,
    deliveries: &Deliveries,
    now: DateTime<Utc>,
) -> Vec<Note> {
    let targets = accepted_targets(&run.spec.notify, policy);
    let key = run_key(run);
    let mut before = status.notifications.take().or_else(|| key.as_ref().and_then(|k| deliveries.unpersisted(k)));
    let floor = key.as_ref().map_or(0, |k| deliveries.sequence_floor(k));
    if let Some(outbox) = before.as_mut().filter(|o| o.sequence < floor) {
        outbox.sequence = floor;
    }
    status.notifications = next_outbox(before.as_ref(), &targets, notes, status.progress.as_deref(), now, |url| {
        key.as_ref().and_then(|k| deliveries.progress(k, url))
    });
    warnings(before.as_ref(), status.notifications.as_ref())
}

/// What handing the outbox over did.
pub struct Handover {
    /// Warning Events to publish (a target's queue is full).
    pub notes: Vec<Note>,
    /// When to look again although nothing changed: while any target has
    /// not acknowledged everything.
    pub recheck: Option<Duration>,
}

/// Queues, for every target, the events of the written `status` it has not
/// acknowledged (each once; the delivery task skips what is queued already).
pub fn hand_over(run: &PipelineRun, status: &PipelineRunStatus, deliveries: &Arc<Deliveries>) -> Handover {
    let mut handover = Handover { notes: Vec::new(), recheck: None };
    let (Some(outbox), Some(key)) = (&status.notifications, run_key(run)) else { return handover };
    let todo = unacknowledged(outbox);
    if todo.is_empty() {
        return handover;
    }
    // The event carries the run's identity, spec values and the recorded transition.
    let mut run = run.clone();
    run.status = None;
    for (url, events) in todo {
        let recorded = outbox.targets.iter().find(|t| t.url == url).map(Progress::from).unwrap_or_default();
        let body = |e: &_| Bytes::from(serde_json::to_vec(&pipeline_event(&run, e)).unwrap_or_default());
        let offer = deliveries.enqueue(&key, url, &recorded, &events, body);
        if offer.newly_full {
            handover.notes.push(Note::warning(
                events::NOTIFY_QUEUE_FULL,
                format!(
                    "{url}: its queue is full ({QUEUE_CAPACITY} events); the rest stay in status.notifications and are sent later"
                ),
            ));
        }
        handover.recheck = Some(RECHECK);
    }
    handover
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> PipelineRun {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": "nightly", "namespace": "ci", "uid": "u1"},
            "spec": {"stages": [{"name": "a"}], "notify": [{"url": "https://results.example/"}]}
        }))
        .unwrap()
    }

    fn note(reason: &str) -> Note {
        Note::normal(reason, "")
    }

    #[test]
    fn an_outbox_the_api_server_dropped_is_carried_on_in_memory() {
        let (deliveries, _woken) = Deliveries::new(None, Arc::default());
        let policy = DestinationPolicy::default();
        let mut first = PipelineRunStatus::default();
        record(&run(), &mut first, &[note("RunRunning")], &policy, &deliveries, Utc::now());
        assert_eq!(first.notifications.as_ref().unwrap().sequence, 1);
        // An old CRD prunes the field: the stored run (and the next cached one) has none.
        written(&first, &run(), &deliveries);
        assert!(!is_stale(&run(), &deliveries));
        let mut second = PipelineRunStatus::default();
        record(&run(), &mut second, &[note("RunSucceeded")], &policy, &deliveries, Utc::now());
        let outbox = second.notifications.unwrap();
        assert_eq!(outbox.sequence, 2, "numbering goes on");
        assert_eq!(outbox.pending.iter().map(|p| p.sequence).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn a_status_put_back_by_another_writer_does_not_reuse_sequence_numbers() {
        let (deliveries, _woken) = Deliveries::new(None, Arc::default());
        let policy = DestinationPolicy::default();
        let mut status = PipelineRunStatus::default();
        record(&run(), &mut status, &[note("RunRunning"), note("StageStarted")], &policy, &deliveries, Utc::now());
        let stale = status.clone();
        record(&run(), &mut status, &[note("StageSucceeded")], &policy, &deliveries, Utc::now());
        let stored = PipelineRun { status: Some(status.clone()), ..run() };
        written(&status, &stored, &deliveries);
        assert_eq!(status.notifications.as_ref().unwrap().sequence, 3);
        // Another writer puts back the older status (sequence 2); once it is
        // taken as it is, the next transition is number 4, not 3 again.
        let mut back = stale;
        record(&run(), &mut back, &[note("RunSucceeded")], &policy, &deliveries, Utc::now());
        let outbox = back.notifications.unwrap();
        assert_eq!(outbox.sequence, 4);
        assert!(outbox.pending.iter().any(|p| p.sequence == 4 && p.reason == "RunSucceeded"));
    }

    #[test]
    fn a_cached_run_behind_the_stored_outbox_is_stale() {
        let (deliveries, _woken) = Deliveries::new(None, Arc::default());
        let mut status = PipelineRunStatus::default();
        record(&run(), &mut status, &[note("RunRunning")], &DestinationPolicy::default(), &deliveries, Utc::now());
        let stored = PipelineRun { status: Some(status.clone()), ..run() };
        written(&status, &stored, &deliveries);
        assert!(is_stale(&run(), &deliveries), "the cache still shows no outbox");
        assert!(!is_stale(&stored, &deliveries));
    }
}

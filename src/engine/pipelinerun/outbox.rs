//! The outbox of a run's CloudEvents, kept in `status.notifications`. Pure.
//!
//! Every transition the planner notes gets the next sequence number and
//! waits in `pending` until every target acknowledged it; each target
//! records the newest sequence it acknowledged (`delivered`). The
//! reconciler owns the whole field: it records transitions, folds in what
//! the delivery task reports (acknowledgements, failures) and trims, all
//! in the one status it applies. The delivery task never writes status, so
//! nothing fights the reconciler's server-side apply, and an operator that
//! restarts resends, in order, whatever is still pending past a target's
//! `delivered` (the CloudEvent ids repeat, so receivers can drop repeats).

use chrono::{DateTime, Utc};

use super::destinations::DestinationPolicy;
use super::events;
use crate::api::pipelinerun::{NotificationStatus, NotifyTarget, NotifyTargetStatus, PendingNotification};
use crate::engine::note::Note;
use crate::engine::text::truncate;

/// Most transitions waiting in one run's outbox; older ones are dropped
/// (counted in `dropped`), so status stays small (well under 200 KiB).
pub const MAX_PENDING: usize = 100;
/// Failed tries after which a target is given up for the run (about 7
/// minutes of backoff; see `crate::notify::delivery`).
pub const MAX_FAILURES: u32 = 12;
/// Longest `lastError` kept.
const MAX_ERROR_BYTES: usize = 300;
/// Longest message kept per pending transition.
const MAX_PENDING_MESSAGE_BYTES: usize = 1000;

/// What the delivery task reports for one target of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The newest sequence number the target acknowledged.
    pub delivered: u64,
    /// Failed tries since then.
    pub failures: u32,
    /// Why the last try failed.
    pub last_error: Option<String>,
}

impl From<&NotifyTargetStatus> for Progress {
    fn from(t: &NotifyTargetStatus) -> Self {
        Progress { delivered: t.delivered, failures: t.failures, last_error: t.last_error.clone() }
    }
}

/// The targets events go to: the policy's first `maxTargets` targets that
/// it allows, each URL once. (A run with refused targets is InvalidSpec,
/// but its InvalidSpec event still reaches the allowed ones.)
pub fn accepted_targets<'a>(notify: &'a [NotifyTarget], policy: &DestinationPolicy) -> Vec<&'a str> {
    let mut urls: Vec<&str> = Vec::new();
    for target in notify.iter().take(policy.max_targets) {
        if policy.check_url(&target.url).is_ok() && !urls.contains(&target.url.as_str()) {
            urls.push(&target.url);
        }
    }
    urls
}

/// Whether a target still gets events (it has not been given up).
pub fn is_active(target: &NotifyTargetStatus) -> bool {
    target.failures < MAX_FAILURES
}

/// The outbox after this reconcile: `previous` with entries for `targets`
/// (a new target starts after the newest transition), `notes` recorded as
/// new transitions, the delivery task's `progress` folded in, and what every
/// active target acknowledged trimmed. `None` when there is no target.
pub fn next_outbox(
    previous: Option<&NotificationStatus>,
    targets: &[&str],
    notes: &[Note],
    run_progress: Option<&str>,
    now: DateTime<Utc>,
    progress: impl Fn(&str) -> Option<Progress>,
) -> Option<NotificationStatus> {
    if targets.is_empty() {
        return None;
    }
    let mut outbox = previous.cloned().unwrap_or_default();
    let known = std::mem::take(&mut outbox.targets);
    outbox.targets = targets
        .iter()
        .map(|url| {
            known.iter().find(|t| t.url == *url).cloned().unwrap_or_else(|| NotifyTargetStatus {
                url: url.to_string(),
                delivered: outbox.sequence,
                ..Default::default()
            })
        })
        .collect();
    for note in notes {
        outbox.sequence += 1;
        outbox.pending.push(PendingNotification {
            sequence: outbox.sequence,
            reason: note.reason.clone(),
            stage: note.stage.clone(),
            job: note.job.clone(),
            message: truncate(&note.message, MAX_PENDING_MESSAGE_BYTES),
            warning: note.warning,
            time: now,
            progress: run_progress.map(str::to_string),
        });
    }
    for target in &mut outbox.targets {
        if let Some(p) = progress(&target.url).filter(|p| p.delivered >= target.delivered) {
            target.delivered = p.delivered.min(outbox.sequence);
            target.failures = p.failures;
            target.last_error = p.last_error.map(|e| truncate(&e, MAX_ERROR_BYTES));
        }
    }
    trim(&mut outbox);
    Some(outbox)
}

/// Drops what every active target acknowledged, then the oldest beyond
/// [`MAX_PENDING`] (targets that had not got them move past them).
fn trim(outbox: &mut NotificationStatus) {
    let floor = outbox.targets.iter().filter(|t| is_active(t)).map(|t| t.delivered).min().unwrap_or(outbox.sequence);
    outbox.pending.retain(|p| p.sequence > floor);
    let excess = outbox.pending.len().saturating_sub(MAX_PENDING);
    if excess > 0 {
        let last_dropped = outbox.pending[excess - 1].sequence;
        outbox.pending.drain(..excess);
        outbox.dropped += excess as u64;
        for target in &mut outbox.targets {
            target.delivered = target.delivered.max(last_dropped);
        }
    }
}

/// What each active target has not acknowledged yet, oldest first.
pub fn unacknowledged(outbox: &NotificationStatus) -> Vec<(&str, Vec<&PendingNotification>)> {
    outbox
        .targets
        .iter()
        .filter(|t| is_active(t))
        .map(|t| (t.url.as_str(), outbox.pending.iter().filter(|p| p.sequence > t.delivered).collect::<Vec<_>>()))
        .filter(|(_, events)| !events.is_empty())
        .collect()
}

/// Warning Events for what went wrong between two outboxes: a target that
/// started failing, one given up, transitions dropped from a full outbox.
pub fn warnings(before: Option<&NotificationStatus>, after: Option<&NotificationStatus>) -> Vec<Note> {
    let Some(after) = after else { return Vec::new() };
    let mut notes = Vec::new();
    for target in &after.targets {
        let old = before.and_then(|b| b.targets.iter().find(|t| t.url == target.url)).map_or(0, |t| t.failures);
        let why = target.last_error.as_deref().unwrap_or("unknown error");
        if old == 0 && target.failures > 0 {
            notes.push(Note::warning(events::NOTIFY_FAILED, format!("{}: {why}; retrying", target.url)));
        }
        if old < MAX_FAILURES && target.failures >= MAX_FAILURES {
            notes.push(Note::warning(
                events::NOTIFY_GAVE_UP,
                format!("{}: {MAX_FAILURES} tries failed, the last: {why}", target.url),
            ));
        }
    }
    let dropped = after.dropped - before.map_or(0, |b| b.dropped).min(after.dropped);
    if dropped > 0 {
        notes.push(Note::warning(
            events::NOTIFY_DROPPED,
            format!("{dropped} transition(s) dropped unsent: more than {MAX_PENDING} were waiting for a target"),
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(reason: &str) -> Note {
        Note::normal(reason, format!("{reason}!"))
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    const A: &str = "http://a.example/";
    const B: &str = "http://b.example/";

    fn no_progress(_: &str) -> Option<Progress> {
        None
    }

    fn sequences(events: &[&PendingNotification]) -> Vec<u64> {
        events.iter().map(|e| e.sequence).collect()
    }

    #[test]
    fn transitions_get_sequence_numbers_and_wait_for_every_target() {
        let notes = [note("StageStarted"), note("RunRunning")];
        let outbox = next_outbox(None, &[A, B], &notes, Some("0/1"), at(0), no_progress).unwrap();
        assert_eq!(outbox.sequence, 2);
        assert_eq!(
            outbox.pending.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>(),
            ["StageStarted", "RunRunning"]
        );
        assert_eq!(outbox.pending[1].progress.as_deref(), Some("0/1"));
        assert_eq!(outbox.pending[1].time, at(0));
        let todo = unacknowledged(&outbox);
        assert_eq!(todo.len(), 2);
        assert_eq!(sequences(&todo[0].1), [1, 2]);

        // A acknowledged both, B only the first: only what B lacks stays.
        let acks = |url: &str| Some(Progress { delivered: if url == A { 2 } else { 1 }, ..Default::default() });
        let outbox = next_outbox(Some(&outbox), &[A, B], &[], None, at(1), acks).unwrap();
        assert_eq!(sequences(&outbox.pending.iter().collect::<Vec<_>>()), [2]);
        assert_eq!(unacknowledged(&outbox), vec![(B, vec![&outbox.pending[0]])]);

        let done = |_: &str| Some(Progress { delivered: 2, ..Default::default() });
        let outbox = next_outbox(Some(&outbox), &[A, B], &[note("RunSucceeded")], None, at(2), done).unwrap();
        assert_eq!(outbox.sequence, 3);
        assert_eq!(sequences(&outbox.pending.iter().collect::<Vec<_>>()), [3], "the new transition waits");
    }

    #[test]
    fn a_restarted_operator_resends_exactly_what_was_not_acknowledged() {
        // The status an operator wrote before it was killed: A got 1 of 3.
        let notes = [note("StageStarted"), note("RunRunning"), note("RunSucceeded")];
        let first = next_outbox(None, &[A], &notes, None, at(0), |_| {
            Some(Progress { delivered: 1, failures: 2, last_error: Some("timeout".into()) })
        })
        .unwrap();
        // The next operator knows nothing but the status.
        let restarted = next_outbox(Some(&first), &[A], &[], None, at(60), no_progress).unwrap();
        assert_eq!(restarted, first, "nothing is lost or invented without news");
        assert_eq!(sequences(&unacknowledged(&restarted)[0].1), [2, 3]);
        assert_eq!(restarted.targets[0].failures, 2);
    }

    #[test]
    fn stale_or_impossible_reports_do_not_move_a_target_back_or_past_the_end() {
        let outbox = next_outbox(None, &[A], &[note("RunRunning"), note("RunFailed")], None, at(0), |_| {
            Some(Progress { delivered: 2, ..Default::default() })
        })
        .unwrap();
        let stale = next_outbox(Some(&outbox), &[A], &[], None, at(1), |_| {
            Some(Progress { delivered: 1, failures: 3, last_error: Some("old".into()) })
        })
        .unwrap();
        assert_eq!(stale.targets[0], NotifyTargetStatus { url: A.into(), delivered: 2, ..Default::default() });
        let beyond = next_outbox(Some(&outbox), &[A], &[], None, at(1), |_| {
            Some(Progress { delivered: 99, ..Default::default() })
        })
        .unwrap();
        assert_eq!(beyond.targets[0].delivered, 2);
    }

    #[test]
    fn a_new_target_starts_after_the_newest_transition_and_a_removed_one_is_forgotten() {
        let outbox = next_outbox(None, &[A], &[note("RunRunning")], None, at(0), no_progress).unwrap();
        let both = next_outbox(Some(&outbox), &[A, B], &[], None, at(1), no_progress).unwrap();
        assert_eq!(both.targets[1], NotifyTargetStatus { url: B.into(), delivered: 1, ..Default::default() });
        let only_b = next_outbox(Some(&both), &[B], &[], None, at(2), no_progress).unwrap();
        assert_eq!(only_b.targets.len(), 1);
        assert!(only_b.pending.is_empty(), "B never needed the first transition");
        assert_eq!(next_outbox(Some(&both), &[], &[note("RunFailed")], None, at(3), no_progress), None);
    }

    #[test]
    fn a_given_up_target_holds_nothing_back() {
        let outbox = next_outbox(None, &[A, B], &[note("RunRunning"), note("RunFailed")], None, at(0), |url| {
            (url == A).then(|| Progress { delivered: 2, ..Default::default() })
        })
        .unwrap();
        assert_eq!(outbox.pending.len(), 2, "B has not acknowledged");
        let gave_up = next_outbox(Some(&outbox), &[A, B], &[], None, at(1), |url| {
            Some(if url == A {
                Progress { delivered: 2, ..Default::default() }
            } else {
                Progress { delivered: 0, failures: MAX_FAILURES, last_error: Some("refused".into()) }
            })
        })
        .unwrap();
        assert!(gave_up.pending.is_empty());
        assert!(unacknowledged(&gave_up).is_empty());
        let notes = warnings(Some(&outbox), Some(&gave_up));
        let reasons: Vec<&str> = notes.iter().map(|n| n.reason.as_str()).collect();
        assert_eq!(reasons, ["NotifyFailed", "NotifyGaveUp"]);
        assert!(notes[1].message.contains(B) && notes[1].message.contains("refused"), "{}", notes[1].message);
        assert!(warnings(Some(&gave_up), Some(&gave_up)).is_empty(), "each warning once");
    }

    #[test]
    fn the_outbox_is_bounded_and_counts_what_it_dropped() {
        let many: Vec<Note> = (0..MAX_PENDING + 30).map(|i| note(&format!("Stage{i}"))).collect();
        let outbox = next_outbox(None, &[A], &many, None, at(0), no_progress).unwrap();
        assert_eq!(outbox.pending.len(), MAX_PENDING);
        assert_eq!(outbox.dropped, 30);
        assert_eq!(outbox.pending[0].sequence, 31);
        assert_eq!(outbox.targets[0].delivered, 30, "the target moves past what was dropped");
        assert_eq!(sequences(&unacknowledged(&outbox)[0].1).len(), MAX_PENDING);
        let notes = warnings(None, Some(&outbox));
        assert_eq!(notes.len(), 1);
        assert!(notes[0].message.starts_with("30 transition(s) dropped"), "{}", notes[0].message);
        let huge = Note { message: "x".repeat(10_000), ..note("StageFailed") };
        let one = next_outbox(None, &[A], &[huge], None, at(0), |_| {
            Some(Progress { delivered: 0, failures: 1, last_error: Some("e".repeat(10_000)) })
        })
        .unwrap();
        assert!(one.pending[0].message.len() <= MAX_PENDING_MESSAGE_BYTES);
        assert!(one.targets[0].last_error.as_ref().unwrap().len() <= MAX_ERROR_BYTES);
    }

    #[test]
    fn targets_beyond_the_limit_or_refused_by_policy_get_nothing() {
        let policy = DestinationPolicy { max_targets: 2, ..Default::default() };
        let notify: Vec<NotifyTarget> = ["http://169.254.169.254/", A, A, B, "http://c.example/"]
            .iter()
            .map(|u| NotifyTarget { url: u.to_string() })
            .collect();
        assert_eq!(accepted_targets(&notify, &policy), [A]);
        assert_eq!(accepted_targets(&notify[1..], &policy), [A]);
        assert_eq!(accepted_targets(&notify[2..], &policy), [A, B]);
    }
}

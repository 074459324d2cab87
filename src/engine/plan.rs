//! What every planner returns: the status to write, the actions to apply,
//! the Events to publish and when to look again.

use std::time::Duration;

use super::note::Note;

/// One planner's answer for one reconcile of one object. `S` is the kind's
/// status, `A` its action type.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<S, A> {
    /// The status to write.
    pub status: S,
    /// What to do in the cluster, in order.
    pub actions: Vec<A>,
    /// Events to publish (after the status is written).
    pub notes: Vec<Note>,
    /// When to look again even if nothing changes.
    pub requeue_after: Option<Duration>,
}

//! When a planner wants to look again: the earliest of the times its steps
//! asked for, as a requeue delay with one floor for every kind.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::duration::later;

/// Shortest requeue delay: a time already past wakes the object this soon,
/// never in a tight loop.
pub const MIN_REQUEUE: Duration = Duration::from_millis(200);

/// Collects the times a planner's steps want to look again.
#[derive(Debug, Clone)]
pub struct Wake {
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
}

impl Wake {
    /// Nothing asked for yet.
    pub fn new(now: DateTime<Utc>) -> Self {
        Wake { now, earliest: None }
    }

    /// Look again at `at`.
    pub fn at(&mut self, at: DateTime<Utc>) {
        self.earliest = Some(self.earliest.map_or(at, |e| e.min(at)));
    }

    /// Look again at `at`, when there is one.
    pub fn at_opt(&mut self, at: Option<DateTime<Utc>>) {
        if let Some(at) = at {
            self.at(at);
        }
    }

    /// Look again `after` from now.
    pub fn after(&mut self, after: Duration) {
        self.at(later(self.now, after));
    }

    /// The delay until the earliest time asked for, at least [`MIN_REQUEUE`].
    pub fn requeue_after(&self) -> Option<Duration> {
        self.earliest.map(|at| (at - self.now).to_std().unwrap_or(Duration::ZERO).max(MIN_REQUEUE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testing::t0;

    #[test]
    fn the_earliest_time_wins_and_the_past_is_floored() {
        let mut wake = Wake::new(t0());
        assert_eq!(wake.requeue_after(), None);
        wake.after(Duration::from_secs(30));
        wake.after(Duration::from_secs(10));
        wake.at_opt(None);
        assert_eq!(wake.requeue_after(), Some(Duration::from_secs(10)));
        wake.at(t0() - chrono::Duration::seconds(5));
        assert_eq!(wake.requeue_after(), Some(MIN_REQUEUE));
    }
}

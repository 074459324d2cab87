//! How long a reconcile that failed with a transient error (5xx, 429,
//! timeouts, connection errors, a 409 on a status write) waits before it
//! runs again: exponential per object, reset by a reconcile that succeeds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The wait after the first failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// Consecutive failures per object (keyed by its `ObjectRef` text).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts one more failure of `object`; returns how long to wait.
    pub fn failed(&self, object: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = failures.entry(object.to_string()).or_default();
        *n = n.saturating_add(1);
        delay(*n)
    }

    /// Forgets the failures of `object`: its reconcile succeeded.
    pub fn succeeded(&self, object: &str) {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(object);
    }
}

/// [`FIRST_RETRY`] doubled for every failure after the first, capped at [`MAX_RETRY`].
pub fn delay(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    FIRST_RETRY.saturating_mul(factor).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_per_object_up_to_the_cap_and_reset_on_success() {
        let backoff = Backoff::default();
        assert_eq!(backoff.failed("a"), Duration::from_secs(2));
        assert_eq!(backoff.failed("a"), Duration::from_secs(4));
        assert_eq!(backoff.failed("b"), Duration::from_secs(2), "per object");
        assert_eq!(backoff.failed("a"), Duration::from_secs(8));
        backoff.succeeded("a");
        assert_eq!(backoff.failed("a"), Duration::from_secs(2));
        assert_eq!(delay(40), MAX_RETRY);
    }
}

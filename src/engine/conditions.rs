//! Kubernetes-style conditions on Gantry's status objects.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::text::truncate;

/// Longest condition or stage message kept in status.
pub const MAX_MESSAGE_BYTES: usize = 512;

/// Converts a chrono time to the API's `Time`.
pub fn to_k8s_time(t: DateTime<Utc>) -> Time {
    use k8s_openapi::jiff::Timestamp;
    // chrono reaches further than jiff (years -9999..=9999): clamp, never panic.
    let micros = t.timestamp_micros().clamp(Timestamp::MIN.as_microsecond(), Timestamp::MAX.as_microsecond());
    Time(Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Converts the API's `Time` to chrono.
pub fn from_k8s_time(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.0.as_microsecond()).unwrap_or_default()
}

/// A condition's `status`: whether the condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    /// It holds.
    True,
    /// It does not hold.
    False,
    /// Not known yet (the object is still being worked on).
    Unknown,
}

impl ConditionStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(holds: bool) -> Self {
        if holds {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// Sets condition `type_` in `conditions`, keeping its transition time when
/// status and reason are unchanged.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    let mut condition = Condition {
        type_: type_.to_string(),
        status: status.as_str().to_string(),
        reason: reason.to_string(),
        message: truncate(message, MAX_MESSAGE_BYTES),
        observed_generation: generation,
        last_transition_time: to_k8s_time(now),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status == status.as_str() && existing.reason == reason {
                condition.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = condition;
        }
        None => conditions.push(condition),
    }
}

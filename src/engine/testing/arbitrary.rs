//! Proptest strategies for what users and stages write, shared by every
//! kind's fuzz tests: text (names, templates, durations, garbage), times
//! from the whole calendar, containers and Job outcomes.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::EnvVar;
use proptest::prelude::*;

use crate::api::common::ContainerRun;
use crate::engine::job::{JobOutcome, JobState};

/// A status this large would already be a problem (etcd refuses objects over 1.5 MiB).
pub const MAX_STATUS_BYTES: usize = 512 * 1024;

/// Text a user might write: names, templates, durations, garbage.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}",
        "[a-z0-9-]{60,80}",
        "\\PC{0,24}",
        Just("$(params.p)".to_string()),
        Just("$(stages.s0.outputs.o)".to_string()),
        Just("$(stages.s1.outputs.o) $(".to_string()),
        Just("100000000d".to_string()),
        Just("18446744073709551615ms".to_string()),
        Just("30d".to_string()),
        Just("1s".to_string()),
        Just("s0".to_string()),
        Just("s1".to_string()),
        Just("é$(params.é)".to_string()),
    ]
}

/// Any time chrono can hold, the extremes included.
pub fn time() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        (-62_135_596_800i64..253_402_300_799).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or_default()),
        Just(DateTime::<Utc>::MAX_UTC),
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()),
    ]
}

/// A container with arbitrary image, command, args and env.
pub fn container() -> impl Strategy<Value = ContainerRun> {
    (
        proptest::option::of(text()),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec((text(), proptest::option::of(text())), 0..3),
    )
        .prop_map(|(image, command, args, env)| ContainerRun {
            image,
            command,
            args,
            env: env.into_iter().map(|(name, value)| EnvVar { name, value, value_from: None }).collect(),
            ..Default::default()
        })
}

/// A Job of stage `(name, attempt, outcome)` with arbitrary outcome.
pub fn job(with_outputs: bool) -> impl Strategy<Value = (String, u32, JobOutcome)> {
    (
        prop_oneof![text(), "s[0-3]"],
        prop_oneof![any::<u32>(), 0u32..4],
        0u8..3,
        proptest::option::of(time()),
        "\\PC{0,300}",
        proptest::option::of(text()),
    )
        .prop_map(move |(stage, attempt, state, created, outputs, message)| {
            let state = [JobState::Active, JobState::Succeeded, JobState::Failed][usize::from(state)];
            let outcome = JobOutcome {
                name: format!("run-{stage}-{attempt}"),
                state,
                created,
                finished: created,
                outputs: with_outputs.then_some(outputs),
                message,
                pod: Some("pod".into()),
                ready_addresses: vec!["10.0.0.1".into()],
                outputs_lost: state == JobState::Succeeded && attempt % 2 == 0,
            };
            (stage, attempt, outcome)
        })
}

//! The ImageBuild planner under arbitrary input.

use proptest::prelude::*;

use crate::api::common::ContainerRun;
use crate::api::imagebuild::{BuildRecord, BuildRecordPhase, ImageBuildSpec, ImageBuildStatus, Retention};
use crate::engine::imagebuild::{plan, BuildJob, View};
use crate::engine::settings::Settings;
use crate::engine::testing::arbitrary::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_build_planner_never_panics_and_keeps_status_bounded(
        output in text(),
        builder in container(),
        suffix_prefix in "[a-z0-9]{0,10}|\\PC{0,4}",
        timeout in proptest::option::of(text()),
        retention in (proptest::option::of(any::<u32>()), proptest::option::of(text()), proptest::option::of(text()), any::<bool>()),
        records in proptest::collection::vec((text(), proptest::option::of(time()), any::<i64>(), 0u8..3), 0..6),
        jobs in proptest::collection::vec((job(true), any::<bool>(), any::<i64>()), 0..6),
        last_used in proptest::option::of(time()),
        now in time(),
        generation in any::<i64>(),
        rebuild in proptest::option::of(text()),
    ) {
        let (keep_last, obsolete_after, prune_after, permanent) = retention;
        let spec = ImageBuildSpec {
            output,
            builder,
            suffix_prefix,
            timeout,
            retention: Retention {
                keep_last,
                obsolete_after,
                prune_after,
                permanent,
                pruner: Some(ContainerRun { image: Some("pruner:1".into()), ..Default::default() }),
            },
            ..Default::default()
        };
        let status = ImageBuildStatus {
            builds: records
                .into_iter()
                .map(|(suffix, start_time, generation, phase)| BuildRecord {
                    suffix: suffix.clone(),
                    phase: [BuildRecordPhase::Building, BuildRecordPhase::Ready, BuildRecordPhase::Failed][usize::from(phase)],
                    job_name: format!("img-{suffix}"),
                    start_time,
                    completion_time: start_time,
                    generation: Some(generation),
                    ..Default::default()
                })
                .collect(),
            last_used,
            ..Default::default()
        };
        let observed: Vec<BuildJob> = jobs
            .into_iter()
            .map(|((suffix, _, outcome), prune, generation)| BuildJob {
                suffix,
                generation,
                outcome,
                prune,
                rebuild_request: None,
                image: None,
            })
            .collect();
        let settings = Settings::default();
        let view = View {
            name: "img",
            generation,
            spec: &spec,
            status: &status,
            rebuild: rebuild.as_deref(),
            settings: &settings,
        };
        let planned = plan(&view, &observed, now);
        let bytes = serde_json::to_vec(&planned.status).map(|v| v.len()).unwrap_or(0);
        prop_assert!(bytes < MAX_STATUS_BYTES, "status of {bytes} bytes");
    }
}

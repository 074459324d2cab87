//! The PipelineRun planner under arbitrary input.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::api::pipelinerun::{
    Concurrency, ConcurrencyPolicy, NotifyTarget, ObjectRef, Param, PipelineRunSpec, PipelineRunStatus, RunPhase,
    ServiceStage, Stage, StageDefaults, StagePhase, StageStatus, Workspace,
};
use crate::engine::pipelinerun::references::Referenced;
use crate::engine::pipelinerun::view::{JobObservation, Observed, View};
use crate::engine::pipelinerun::{needs_observation, plan, validate, Action};
use crate::engine::settings::Settings;
use crate::engine::testing::arbitrary::*;

fn stage() -> impl Strategy<Value = Stage> {
    (
        (text(), proptest::collection::vec(text(), 0..3), proptest::option::of(container())),
        (0u8..4, any::<u32>(), proptest::collection::vec(text(), 0..3)),
        (proptest::option::of(any::<u32>()), proptest::option::of(any::<u32>()), proptest::option::of(text())),
        (any::<bool>(), proptest::option::of(any::<bool>()), any::<bool>(), any::<bool>()),
    )
        .prop_map(|((name, needs, run), (kind, replicas, outputs), (retries, delay, timeout), flags)| {
            let (finally, gating, nested_virt, unsafe_outputs) = flags;
            Stage {
                name,
                needs,
                run,
                service: (kind == 1).then_some(ServiceStage { replicas, readiness_probe: None }),
                image_build: (kind == 2).then(|| ObjectRef { name: "build".into() }),
                kata_install: (kind == 3).then(|| ObjectRef { name: "kata".into() }),
                outputs,
                retries,
                retry_delay_seconds: delay,
                timeout,
                finally,
                gating,
                nested_virt,
                allow_unsafe_outputs: unsafe_outputs,
                ..Default::default()
            }
        })
}

fn run_spec() -> impl Strategy<Value = PipelineRunSpec> {
    (
        proptest::collection::vec(stage(), 0..8),
        proptest::collection::vec((text(), text()), 0..3),
        (proptest::option::of(text()), proptest::option::of(text()), proptest::option::of(any::<u32>())),
        (proptest::option::of(text()), proptest::option::of(any::<i64>()), any::<bool>(), any::<bool>()),
        (
            proptest::collection::vec(text(), 0..2),
            proptest::option::of(text()),
            proptest::collection::vec(text(), 0..2),
        ),
        proptest::option::of(text()),
    )
        .prop_map(|(stages, params, defaults, run, lists, workspace)| {
            let (image, timeout, retries) = defaults;
            let (run_timeout, ttl, fail_fast, cancel) = run;
            let (skip, group, notify) = lists;
            PipelineRunSpec {
                stages,
                params: params.into_iter().map(|(name, value)| Param { name, value }).collect(),
                defaults: StageDefaults { image, timeout, retries, ..Default::default() },
                timeout: run_timeout,
                ttl_seconds_after_finished: ttl,
                fail_fast,
                cancel,
                skip,
                concurrency: group.map(|group| Concurrency { group, policy: ConcurrencyPolicy::Queue, window: None }),
                notify: notify.into_iter().map(|url| NotifyTarget { url }).collect(),
                workspace: workspace.map(|size| Workspace { size, storage_class_name: None }),
                ..Default::default()
            }
        })
}

fn stage_status() -> impl Strategy<Value = StageStatus> {
    (text(), any::<u32>(), any::<u32>(), 0u8..7, proptest::option::of(time()), proptest::option::of(text())).prop_map(
        |(name, attempt, first_attempt, phase, start_time, message)| StageStatus {
            name,
            attempt,
            first_attempt,
            phase: [
                StagePhase::Pending,
                StagePhase::Waiting,
                StagePhase::Running,
                StagePhase::Succeeded,
                StagePhase::Failed,
                StagePhase::Skipped,
                StagePhase::Cancelled,
            ][usize::from(phase)],
            start_time,
            retry_after: start_time,
            message,
            ..Default::default()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_run_planner_never_panics_and_keeps_status_bounded(
        spec in run_spec(),
        repair in any::<bool>(),
        stages in proptest::collection::vec(stage_status(), 0..6),
        jobs in proptest::collection::vec(job(true), 0..8),
        logs in proptest::collection::vec("\\PC{0,200}", 0..3),
        now in time(),
        created in time(),
        rerun in proptest::option::of(text()),
        nested_virt in any::<bool>(),
    ) {
        // Half the cases get valid names and an image, so that most of them
        // get past validation into the planner's deeper passes.
        let mut spec = spec;
        let mut stages = stages;
        if repair {
            spec.defaults = StageDefaults { image: Some("local/busybox:1".into()), ..Default::default() };
            spec.params.clear();
            spec.notify.clear();
            spec.skip.clear();
            (spec.workspace, spec.concurrency, spec.timeout, spec.ttl_seconds_after_finished) = (None, None, None, None);
            let count = spec.stages.len();
            for (i, stage) in spec.stages.iter_mut().enumerate() {
                stage.name = format!("s{i}");
                stage.needs = if stage.finally {
                    Vec::new()
                } else {
                    (0..i).filter(|n| (n + i) % 3 == 0).map(|n| format!("s{n}")).collect()
                };
                stage.timeout = stage.timeout.take().filter(|_| i % 2 == 0).map(|_| "1h".into());
                stage.retries = stage.retries.map(|r| r % 4);
                stage.retry_delay_seconds = stage.retry_delay_seconds.map(|d| d % 600);
                stage.outputs.clear();
                stage.finally &= stage.service.is_none();
                if let Some(service) = &mut stage.service {
                    service.replicas = service.replicas % 16 + 1;
                }
                if let Some(run) = &mut stage.run {
                    run.image = None;
                    run.command.clear();
                    run.args.retain(|a| !a.contains("$("));
                    run.env.clear();
                }
            }
            // Only finally stages may need finally stages.
            let finally: Vec<String> = spec.stages.iter().filter(|s| s.finally).map(|s| s.name.clone()).collect();
            for stage in spec.stages.iter_mut().filter(|s| !s.finally) {
                stage.needs.retain(|n| !finally.contains(n));
            }
            for (i, entry) in stages.iter_mut().enumerate() {
                entry.name = format!("s{}", i % count.max(1));
            }
        }
        let status = PipelineRunStatus { stages, ..Default::default() };
        let jobs: Vec<JobObservation> =
            jobs.into_iter().map(|(stage, attempt, outcome)| JobObservation { stage, attempt, outcome }).collect();
        let mut observed = Observed { jobs, ..Default::default() };
        for (job, log) in observed.jobs.iter().map(|j| j.outcome.name.clone()).zip(logs) {
            observed.logs.insert(job, log);
        }
        observed.image_builds.insert("build".into(), Referenced::Ready(BTreeMap::from([("image".into(), "x;y".into())])));
        observed.kata_installs.insert("kata".into(), Referenced::Failed("no".into()));
        let settings = Settings {
            nested_virt: nested_virt.then(|| crate::engine::nested_virt::NestedVirtPlacement {
                node_selector: BTreeMap::new(),
                device_resource: None,
            }),
            ..Default::default()
        };
        let view = View {
            name: "run",
            uid: "0c5b1bd4-run",
            generation: Some(1),
            created,
            spec: &spec,
            status: &status,
            rerun: rerun.as_deref(),
            superseded_by: None,
            settings: &settings,
        };
        let planned = plan(&view, &observed, now);
        if validate(&spec, nested_virt, &settings.notify).is_err() {
            prop_assert!(!planned.actions.iter().any(|a| matches!(a, Action::CreateJob(_))), "a Job for an invalid spec");
        }
        let bytes = serde_json::to_vec(&planned.status).map(|v| v.len()).unwrap_or(0);
        prop_assert!(bytes < MAX_STATUS_BYTES, "status of {bytes} bytes");
    }

    /// The controller reads nothing for a finished run that is not asked to
    /// rerun ([`needs_observation`]): that must never change its plan.
    #[test]
    fn a_finished_run_plans_the_same_whatever_the_cluster_holds(
        spec in run_spec(),
        stages in proptest::collection::vec(stage_status(), 0..6),
        jobs in proptest::collection::vec(job(true), 0..8),
        phase in prop_oneof![Just(RunPhase::Succeeded), Just(RunPhase::Failed), Just(RunPhase::Cancelled)],
        completed in time(),
        now in time(),
    ) {
        let status = PipelineRunStatus { phase: Some(phase), stages, completion_time: Some(completed), ..Default::default() };
        let settings = Settings::default();
        let view = View {
            name: "run",
            uid: "0c5b1bd4-run",
            generation: Some(1),
            created: completed,
            spec: &spec,
            status: &status,
            rerun: None,
            superseded_by: None,
            settings: &settings,
        };
        prop_assert!(!needs_observation(&view));
        let jobs = jobs.into_iter().map(|(stage, attempt, outcome)| JobObservation { stage, attempt, outcome }).collect();
        let observed = Observed { jobs, ..Default::default() };
        prop_assert_eq!(plan(&view, &observed, now), plan(&view, &Observed::default(), now));
        let asked_to_rerun = View { rerun: Some("s0"), ..view.clone() };
        prop_assert!(needs_observation(&asked_to_rerun));
        let running = PipelineRunStatus { phase: Some(RunPhase::Running), ..status.clone() };
        let unfinished = View { status: &running, ..view };
        prop_assert!(needs_observation(&unfinished));
    }
}

//! Arbitrary specs, statuses and observations through validation and the
//! three planners (PipelineRun, ImageBuild, KataInstall): no panic, no Job for an invalid spec, and a status that stays
//! far below etcd's object limit whatever a user (or a stage) wrote.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::EnvVar;
use proptest::prelude::*;

use crate::api::common::ContainerRun;
use crate::api::imagebuild::{BuildRecord, ImageBuildSpec, ImageBuildStatus, Retention};
use crate::api::katainstall::{KataInstallSpec, KataInstallStatus, NodeInstallStatus, SmokeTest};
use crate::api::pipelinerun::{
    Concurrency, ConcurrencyPolicy, NotifyTarget, ObjectRef, Param, PipelineRunSpec, PipelineRunStatus, ServiceStage,
    Stage, StageDefaults, StagePhase, StageStatus, Workspace,
};
use crate::engine::build_planner::{plan_build, BuildJob, BuildView};
use crate::engine::kata::{
    plan_kata, InstallerPod, KataObserved, KataView, NodeInfo, PodState, Role, SmokeClient, SmokeServer,
};
use crate::engine::observed::{JobObservation, JobOutcome, JobState, Observed, RunView, Settings};
use crate::engine::planner::{plan, Action};
use crate::engine::references::Referenced;
use crate::engine::validate::validate;

/// A status this large would already be a problem (etcd refuses objects over 1.5 MiB).
const MAX_STATUS_BYTES: usize = 512 * 1024;

/// Text a user might write: names, templates, durations, garbage.
fn text() -> impl Strategy<Value = String> {
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

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        (-62_135_596_800i64..253_402_300_799).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or_default()),
        Just(DateTime::<Utc>::MAX_UTC),
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()),
    ]
}

fn container() -> impl Strategy<Value = ContainerRun> {
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
                concurrency: group.map(|group| Concurrency { group, policy: ConcurrencyPolicy::Queue }),
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

fn job(with_outputs: bool) -> impl Strategy<Value = (String, u32, JobOutcome)> {
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
            nested_virt: nested_virt.then(|| crate::engine::launch::NestedVirtPlacement {
                node_selector: BTreeMap::new(),
                device_resource: None,
            }),
            ..Default::default()
        };
        let view = RunView {
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

    #[test]
    fn the_build_planner_never_panics_and_keeps_status_bounded(
        output in text(),
        builder in container(),
        suffix_prefix in "[a-z0-9]{0,10}|\\PC{0,4}",
        timeout in proptest::option::of(text()),
        retention in (proptest::option::of(any::<u32>()), proptest::option::of(text()), proptest::option::of(text()), any::<bool>()),
        records in proptest::collection::vec((text(), proptest::option::of(time()), any::<i64>()), 0..6),
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
                .map(|(suffix, start_time, generation)| BuildRecord {
                    suffix: suffix.clone(),
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
        let view = BuildView {
            name: "img",
            generation,
            spec: &spec,
            status: &status,
            rebuild: rebuild.as_deref(),
            settings: &settings,
        };
        let planned = plan_build(&view, &observed, now);
        let bytes = serde_json::to_vec(&planned.status).map(|v| v.len()).unwrap_or(0);
        prop_assert!(bytes < MAX_STATUS_BYTES, "status of {bytes} bytes");
    }

    #[test]
    fn the_kata_planner_never_panics_and_keeps_status_bounded(
        shims in proptest::collection::vec(prop_oneof![text(), Just("qemu".to_string()), Just("clh".to_string())], 0..4),
        default_shim in proptest::option::of(text()),
        selector in proptest::collection::btree_map(text(), text(), 0..3),
        timeouts in (proptest::option::of(text()), proptest::option::of(text()), proptest::option::of(any::<bool>())),
        nodes in proptest::collection::vec((text(), proptest::collection::btree_map(text(), text(), 0..3), proptest::option::of(text())), 0..6),
        pods in proptest::collection::vec((text(), any::<bool>(), 0u8..3, text()), 0..6),
        smoke in (proptest::collection::vec((text(), proptest::option::of(text()), 0u8..3), 0..3), proptest::collection::vec((text(), 0u8..3), 0..3)),
        node_statuses in proptest::collection::vec((text(), text()), 0..6),
        deleting in proptest::option::of(time()),
        now in time(),
        generation in any::<i64>(),
    ) {
        let (cleanup_timeout, smoke_timeout, smoke_enabled) = timeouts;
        let spec = KataInstallSpec {
            installer_image: "local/kata-installer:1".into(),
            shims,
            default_shim,
            node_selector: selector,
            cleanup_timeout,
            smoke_test: SmokeTest { enabled: smoke_enabled, image: None, timeout: smoke_timeout },
            ..Default::default()
        };
        let status = KataInstallStatus {
            nodes: node_statuses.into_iter().map(|(name, state)| NodeInstallStatus { name, state, message: None }).collect(),
            ..Default::default()
        };
        let pod_state = |n: u8, text: String| match n {
            0 => PodState::Ready,
            1 => PodState::Pending(text),
            _ => PodState::Failed(text),
        };
        let (servers, clients) = smoke;
        let observed = KataObserved {
            nodes: nodes.into_iter().map(|(name, labels, owner)| NodeInfo { name, labels, owner }).collect(),
            pods: pods
                .into_iter()
                .map(|(node, cleanup, state, text)| InstallerPod {
                    node,
                    role: if cleanup { Role::Cleanup } else { Role::Install },
                    config: Some(text.clone()),
                    state: pod_state(state, text),
                })
                .collect(),
            smoke_servers: servers
                .into_iter()
                .map(|(key, ip, state)| SmokeServer { key, ip, node: None, state: pod_state(state, "x".into()) })
                .collect(),
            smoke_clients: clients
                .into_iter()
                .map(|(key, state)| SmokeClient {
                    key,
                    state: [JobState::Active, JobState::Succeeded, JobState::Failed][usize::from(state)],
                    message: Some("m".into()),
                })
                .collect(),
            ..Default::default()
        };
        let view = KataView {
            name: "kata",
            generation,
            created: Some(now),
            spec: &spec,
            status: &status,
            deleting_since: deleting,
            has_finalizer: deleting.is_some(),
        };
        let planned = plan_kata(&view, &observed, now);
        let bytes = serde_json::to_vec(&planned.status).map(|v| v.len()).unwrap_or(0);
        prop_assert!(bytes < MAX_STATUS_BYTES, "status of {bytes} bytes");
    }
}

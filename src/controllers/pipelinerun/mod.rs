//! The PipelineRun reconciler: observe the run's Jobs and pods, ask the
//! planner, apply its actions, write status, publish Events.

mod apply;
mod notifications;
pub mod observe;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::jobs::last_pod_warning;
use super::logs::read_log_tail;
use super::{catch_panic, describe, panic_note, publish, Context, Error, KubeResultExt, Shutdown};
use crate::api::pipelinerun::PipelineRunStatus;
use crate::api::pipelinerun::Stage;
use crate::api::{ImageBuild, KataInstall, PipelineRun};
use crate::engine::conditions::from_k8s_time;
use crate::engine::naming::{run_label, ANNOTATION_RERUN, ANNOTATION_SUPERSEDED_BY, LABEL_RUN};
use crate::engine::pipelinerun::internal_error::failed_by_internal_error;
use crate::engine::pipelinerun::references::{image_build_state, kata_install_state, Referenced};
use crate::engine::pipelinerun::replan::{record_applied, replan};
use crate::engine::pipelinerun::stage_kind::{stage_kind, StageKind};
use crate::engine::pipelinerun::view::{failures_to_explain, logs_wanted, GroupMember, Observed, View};
use crate::engine::pipelinerun::{plan, Action as PlanAction};
use crate::notify::delivery::Deliveries;
use crate::resources::job::STAGE_CONTAINER;

/// The reconciler's state: the shared context, the cache of runs (for
/// concurrency groups) and the CloudEvent delivery task.
struct RunContext {
    base: Arc<Context>,
    runs: Store<PipelineRun>,
    deliveries: Arc<Deliveries>,
}

/// How often the delivery task forgets runs that were deleted.
const FORGET_DELETED_RUNS_EVERY: Duration = Duration::from_secs(60);

/// Runs the PipelineRun controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let runs = ctx.scoped_api::<PipelineRun>();
    let jobs = ctx.scoped_api::<Job>();
    let controller = super::lean_controller(runs, watcher::Config::default())
        .owns(jobs, watcher::Config::default().labels(LABEL_RUN))
        .with_config(ctx.controller_config())
        .graceful_shutdown_on(shutdown);
    // A stage waiting for an ImageBuild or KataInstall wakes when it changes.
    let cache = controller.store();
    let controller = controller.watches(ctx.scoped_api::<ImageBuild>(), watcher::Config::default(), move |b| {
        runs_waiting_for(&cache, b.namespace(), b.name_any(), |s, n| {
            s.image_build.as_ref().is_some_and(|r| r.name == n)
        })
    });
    let cache = controller.store();
    let controller =
        controller.watches(Api::<KataInstall>::all(ctx.client.clone()), watcher::Config::default(), move |k| {
            runs_waiting_for(&cache, None, k.name_any(), |s, n| s.kata_install.as_ref().is_some_and(|r| r.name == n))
        });
    ctx.metrics.watch_runs(controller.store());
    // Deliveries run beside the reconciles and wake the run they delivered
    // for, so the next status records the acknowledgement.
    let (deliveries, woken) = Deliveries::new(ctx.notifier.clone(), ctx.metrics.clone());
    let woken = futures::stream::unfold(woken, |mut woken| async move {
        let run = woken.recv().await?;
        Some((ObjectRef::<PipelineRun>::new(&run.name).within(&run.namespace), woken))
    });
    let controller = controller.reconcile_on(woken);
    let forget = tokio::spawn(forget_deleted_runs(deliveries.clone(), controller.store()));
    let backoff = ctx.backoff.clone();
    let run_ctx = Arc::new(RunContext { base: ctx, runs: controller.store(), deliveries });
    info!("watching PipelineRuns");
    super::drain(controller.run(reconcile_catching_panics, error_policy, run_ctx), backoff).await;
    forget.abort();
}

/// Keeps the delivery task's memory to runs that exist.
async fn forget_deleted_runs(deliveries: Arc<Deliveries>, cache: Store<PipelineRun>) {
    let mut every = tokio::time::interval(FORGET_DELETED_RUNS_EVERY);
    loop {
        every.tick().await;
        if cache.is_empty() {
            continue; // not listed yet, or truly empty: nothing is lost by waiting
        }
        deliveries.retain_runs(|key| {
            let cached = cache.get(&ObjectRef::new(&key.name).within(&key.namespace));
            cached.is_some_and(|run| run.uid().as_deref() == Some(key.uid.as_str()))
        });
    }
}

/// Adds the last Warning Event of their pods to failed Jobs whose pods are
/// gone (an image that never pulled, say): best effort, a stage fails
/// either way.
async fn explain_failures(client: &kube::Client, ns: &str, view: &View<'_>, observed: &mut Observed) {
    let jobs = failures_to_explain(view, observed);
    if jobs.is_empty() {
        return;
    }
    let events = match Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await {
        Ok(events) => events.items,
        Err(e) => return warn!(run = %view.name, error = %e, "cannot list Events to explain a failed stage"),
    };
    for job in observed.jobs.iter_mut().filter(|j| jobs.contains(&j.outcome.name)) {
        if let Some(warning) = last_pod_warning(&events, &job.outcome.name) {
            let message = job.outcome.message.get_or_insert_with(String::new);
            message.push_str(&format!("; last pod event: {warning}"));
        }
    }
}

/// [`reconcile`], with a panic becoming this run's failure (an Event, and
/// Failed with reason `InternalError` unless it had finished) instead of
/// stopping the controller for every run.
async fn reconcile_catching_panics(run: Arc<PipelineRun>, ctx: Arc<RunContext>) -> Result<Action, Error> {
    let result = catch_panic(reconcile(run.clone(), ctx.clone())).await;
    if let Err(Error::Panicked(why)) = &result {
        publish(&ctx.base, &*run, &[panic_note(&run.name_any(), why)]).await;
        let status = run.status.clone().unwrap_or_default();
        if let Some(failed) = failed_by_internal_error(&status, why, run.metadata.generation, Utc::now()) {
            if let Err(e) = write_status(&ctx.base.client, &run, &failed).await {
                warn!(run = %run.name_any(), error = %e, "cannot record the internal error in status");
            }
        }
    }
    result
}

async fn reconcile(run: Arc<PipelineRun>, ctx: Arc<RunContext>) -> Result<Action, Error> {
    let _timer = ctx.base.metrics.reconcile_started("pipelinerun");
    let client = &ctx.base.client;
    let ns = run.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = run.name_any();
    if run.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let uid = run.uid().ok_or(Error::MissingField("metadata.uid"))?;
    if notifications::is_stale(&run, &ctx.deliveries) {
        debug!(run = %name, "cached status is older than the one written; looking again shortly");
        return Ok(Action::requeue(notifications::STALE_RECHECK));
    }
    let status = run.status.clone().unwrap_or_default();
    let annotations = run.annotations();
    let settings = ctx.base.config.settings_for(&ns);
    let view = View {
        name: &name,
        uid: &uid,
        generation: run.metadata.generation,
        created: run.metadata.creation_timestamp.as_ref().map(from_k8s_time).unwrap_or_else(Utc::now),
        spec: &run.spec,
        status: &status,
        rerun: annotations.get(ANNOTATION_RERUN).map(String::as_str),
        superseded_by: annotations.get(ANNOTATION_SUPERSEDED_BY).map(String::as_str),
        settings: &settings,
    };

    // Observe: list straight from the API server (not a cache), so a Job
    // created by the previous reconcile is always seen. The label narrows
    // the list; the owner UID decides what is the run's.
    let selector = format!("{LABEL_RUN}={}", run_label(&name));
    let of_run = || format!("of {}", describe::<PipelineRun>(Some(&ns), &name));
    let jobs = Api::<Job>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels(&selector))
        .await
        .observing(|| format!("Jobs {}", of_run()))?;
    let pods_api = Api::<Pod>::namespaced(client.clone(), &ns);
    let pods =
        pods_api.list(&ListParams::default().labels(&selector)).await.observing(|| format!("pods {}", of_run()))?;
    let (image_builds, kata_installs) = observe_references(client, &ns, &run).await?;
    let (stage_jobs, foreign_jobs) = observe::observe_stage_jobs(jobs.items, &pods.items, view.uid);
    let mut observed = Observed {
        jobs: stage_jobs,
        group: group_members(&ctx.runs, &run),
        logs: Default::default(),
        logs_cut: Default::default(),
        image_builds,
        kata_installs,
        foreign_jobs,
        refused: Default::default(),
    };
    explain_failures(client, &ns, &view, &mut observed).await;
    for job in logs_wanted(&view, &observed) {
        let pod = observed.jobs.iter().find(|j| j.outcome.name == job).and_then(|j| j.outcome.pod.clone());
        if let Some(pod) = pod {
            match read_log_tail(&pods_api, &pod, STAGE_CONTAINER).await {
                Ok(tail) => {
                    if tail.cut {
                        observed.logs_cut.insert(job.clone());
                    }
                    observed.logs.insert(job, tail.text);
                }
                Err(e) => warn!(run = %name, job = %job, error = %e, "cannot read stage log"),
            }
        }
    }

    let now = Utc::now();
    let mut plan = plan(&view, &observed, now);
    let clear_rerun = plan.actions.contains(&PlanAction::ClearRerunAnnotation);
    // A refused create fails its stage: plan again with the refusal, so
    // fail-fast, gating and finally follow in this reconcile. Each round
    // finishes a stage, so the rounds are bounded by the stages.
    for round in 0.. {
        let refused = match apply::apply(client, &run, &plan.actions).await? {
            apply::Outcome::Deleted => return Ok(Action::await_change()),
            apply::Outcome::Continue(refused) => refused,
        };
        if refused.is_empty() || round > run.spec.stages.len() {
            break;
        }
        record_applied(&mut observed, &plan.actions, refused, now);
        plan = replan(&view, &observed, plan, now);
    }
    let notify_warnings =
        notifications::record(&run, &mut plan.status, &plan.notes, &settings.notify, &ctx.deliveries, now);
    if plan.status != status {
        let stored = write_status(client, &run, &plan.status).await?;
        notifications::written(&plan.status, &stored, &ctx.deliveries);
    }
    if clear_rerun {
        apply::clear_rerun_annotation(client, &run).await?;
    }
    publish(&ctx.base, &*run, &plan.notes).await;
    publish(&ctx.base, &*run, &notify_warnings).await;
    // Only now that the status records them are the transitions sent.
    let handover = notifications::hand_over(&run, &plan.status, &ctx.deliveries);
    publish(&ctx.base, &*run, &handover.notes).await;
    Ok(match [plan.requeue_after, handover.recheck].into_iter().flatten().min() {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

type ReferenceStates = BTreeMap<String, Referenced>;

/// The ImageBuilds and KataInstalls that unfinished stages wait for.
async fn observe_references(
    client: &kube::Client,
    ns: &str,
    run: &PipelineRun,
) -> Result<(ReferenceStates, ReferenceStates), Error> {
    let (mut builds, mut installs) = (BTreeMap::new(), BTreeMap::new());
    let stages = run.status.as_ref().map_or(&[][..], |s| &s.stages);
    for stage in &run.spec.stages {
        let finished = stages.iter().any(|s| s.name == stage.name && s.phase.is_finished());
        match stage_kind(stage) {
            // Several stages may wait for the same object: read it once.
            StageKind::ImageBuild { name } if !finished && !builds.contains_key(name) => {
                let build = Api::<ImageBuild>::namespaced(client.clone(), ns).get_opt(name).await;
                if let Some(b) = build.observing(|| describe::<ImageBuild>(Some(ns), name))? {
                    builds.insert(name.to_string(), image_build_state(&b));
                }
            }
            StageKind::KataInstall { name } if !finished && !installs.contains_key(name) => {
                let install = Api::<KataInstall>::all(client.clone()).get_opt(name).await;
                if let Some(k) = install.observing(|| describe::<KataInstall>(None, name))? {
                    installs.insert(name.to_string(), kata_install_state(&k));
                }
            }
            _ => {}
        }
    }
    Ok((builds, installs))
}

/// The unfinished runs (from the cache) with a stage that waits for the
/// object `name` of `kind` (`namespace` None: a cluster-scoped kind).
fn runs_waiting_for(
    cache: &Store<PipelineRun>,
    namespace: Option<String>,
    name: String,
    waits: fn(&Stage, &str) -> bool,
) -> Vec<ObjectRef<PipelineRun>> {
    cache
        .state()
        .iter()
        .filter(|r| namespace.is_none() || r.namespace() == namespace)
        .filter(|r| !r.status.as_ref().and_then(|s| s.phase).is_some_and(|p| p.is_finished()))
        .filter(|r| r.spec.stages.iter().any(|s| waits(s, &name)))
        .map(|r| ObjectRef::from_obj(&**r))
        .collect()
}

/// Other runs of the same namespace and concurrency group, from the cache.
fn group_members(cache: &Store<PipelineRun>, run: &PipelineRun) -> Vec<GroupMember> {
    let Some(group) = run.spec.concurrency.as_ref().map(|c| &c.group) else {
        return Vec::new();
    };
    cache
        .state()
        .iter()
        .filter(|other| other.namespace() == run.namespace() && other.name_any() != run.name_any())
        .filter_map(|other| {
            let c = other.spec.concurrency.as_ref().filter(|c| &c.group == group)?;
            Some(GroupMember {
                name: other.name_any(),
                created: other.metadata.creation_timestamp.as_ref().map(from_k8s_time)?,
                started: other.status.as_ref().and_then(|s| s.start_time),
                finished: other.status.as_ref().and_then(|s| s.phase).is_some_and(|p| p.is_finished()),
                superseded: other.annotations().contains_key(ANNOTATION_SUPERSEDED_BY),
                policy: c.policy,
            })
        })
        .collect()
}

/// Applies `status`; returns the run as the API server stored it. The
/// reconciler is the only writer of status, the notification outbox
/// included: the delivery task reports acknowledgements through memory and
/// a wake-up, so this full apply never sets them back (see `engine::outbox`).
async fn write_status(
    client: &kube::Client,
    run: &PipelineRun,
    status: &PipelineRunStatus,
) -> Result<PipelineRun, Error> {
    let api = Api::<PipelineRun>::namespaced(client.clone(), &run.namespace().unwrap_or_default());
    super::write_status(&api, &run.name_any(), status).await
}

/// Transient errors (5xx, throttling, timeouts, connection errors, write
/// conflicts) never fail a stage: the run is reconciled again, backing off
/// per run while the errors last.
fn error_policy(run: Arc<PipelineRun>, err: &Error, ctx: Arc<RunContext>) -> Action {
    super::error_policy(run, err, &ctx.base)
}

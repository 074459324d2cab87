//! The PipelineRun reconciler: observe the run's Jobs and pods from watch
//! caches (`observe.rs`), ask the planner, apply its actions (`apply.rs`),
//! write status, publish Events, and hand new transitions to the
//! notification delivery task (`notifications.rs`).

mod apply;
mod notifications;
pub mod observe;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::cache::ChildCache;
use super::freshness::WrittenVersions;
use super::jobs::outcome_signature;
use super::lean::{lean_job, lean_pod};
use super::{catch_panic, panic_note, publish, Context, Error, Shutdown};
use crate::api::pipelinerun::{PipelineRunStatus, Stage};
use crate::api::{ImageBuild, KataInstall, PipelineRun};
use crate::engine::naming::run_label;
use crate::engine::naming::LABEL_RUN;
use crate::engine::note::Note;
use crate::engine::pipelinerun::done_jobs::done_with;
use crate::engine::pipelinerun::events;
use crate::engine::pipelinerun::internal_error::failed_by_internal_error;
use crate::engine::pipelinerun::{needs_observation, plan, Action as PlanAction, Observed, Plan};
use crate::notify::delivery::Deliveries;
use observe::Children;

/// The reconciler's state: the shared context, the caches of runs (for
/// concurrency groups) and of their Jobs and pods, and the CloudEvent
/// delivery task.
struct RunContext {
    base: Arc<Context>,
    runs: Store<PipelineRun>,
    children: Children,
    written: WrittenVersions,
    deliveries: Arc<Deliveries>,
}

impl AsRef<Context> for RunContext {
    fn as_ref(&self) -> &Context {
        &self.base
    }
}

/// How often the memory kept per run (deliveries, expectations, written
/// versions) forgets runs that were deleted.
const FORGET_DELETED_RUNS_EVERY: Duration = Duration::from_secs(60);

/// How soon a run is looked at again when the caches have not caught up
/// with what the operator wrote (the watch event usually wakes it sooner).
const CACHE_CATCH_UP: Duration = Duration::from_millis(250);

/// Runs the PipelineRun controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let runs = ctx.scoped_api::<PipelineRun>();
    // One watch of the stage Jobs feeds both the cache the reconciles read
    // and the controller's trigger; pods are only cached (a Job's own
    // change is what wakes its run).
    // The first list comes from the API server's watch cache, not etcd.
    let config = ctx.child_watch_config(watcher::Config::default().labels(LABEL_RUN).any_semantic());
    let jobs = ChildCache::with_news(LABEL_RUN, outcome_signature);
    let job_events = cached_children(ctx.scoped_api::<Job>(), lean_job, config.clone(), jobs.clone());
    let pods = ChildCache::new(LABEL_RUN);
    let pod_events = cached_children(ctx.scoped_api::<Pod>(), lean_pod, config, pods.clone());
    let _pods_task = AbortOnDrop(tokio::spawn(pod_events.for_each(|_| std::future::ready(()))));
    let controller = super::lean_controller(runs, ctx.watch_config(watcher::Config::default()))
        .owns_stream(job_events)
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
    let backoff = ctx.backoff.clone();
    let children = Children { jobs, pods, expectations: Default::default() };
    let run_ctx = Arc::new(RunContext {
        base: ctx,
        runs: controller.store(),
        children,
        written: WrittenVersions::default(),
        deliveries,
    });
    let _forget = AbortOnDrop(tokio::spawn(forget_deleted_runs(run_ctx.clone())));
    info!("watching PipelineRuns");
    super::drain(controller.run(reconcile_catching_panics, super::error_policy, run_ctx), backoff).await;
}

/// A task that ends with the controller, however it ends: also when its
/// future is dropped (a shard lost stops the controllers at once).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A watch of the children of kind `K` carrying the run label (`config`),
/// `lean`ed into `cache`: the stream of the children whose change is news
/// for their run (for a controller's trigger; it must be polled for the
/// cache to fill).
fn cached_children<K>(
    api: Api<K>,
    lean: fn(&mut K),
    config: watcher::Config,
    cache: Arc<ChildCache<K>>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    watcher(api, config)
        .default_backoff()
        .modify(lean)
        .try_filter(move |event| std::future::ready(cache.apply(event)))
        .touched_objects()
}

/// Keeps what is remembered per run to runs that exist.
async fn forget_deleted_runs(ctx: Arc<RunContext>) {
    let mut every = tokio::time::interval(FORGET_DELETED_RUNS_EVERY);
    loop {
        every.tick().await;
        let cache = &ctx.runs;
        if cache.is_empty() {
            continue; // not listed yet, or truly empty: nothing is lost by waiting
        }
        ctx.deliveries.retain_runs(|key| {
            let cached = cache.get(&ObjectRef::new(&key.name).within(&key.namespace));
            cached.is_some_and(|run| run.uid().as_deref() == Some(key.uid.as_str()))
        });
        let uids: std::collections::HashSet<String> = cache.state().iter().filter_map(|run| run.uid()).collect();
        ctx.children.expectations.retain_owners(|uid| uids.contains(uid));
        // Retired groups are keyed by the run label (a long name's is hashed).
        let labels: std::collections::HashSet<(String, String)> =
            cache.state().iter().map(|run| (run.namespace().unwrap_or_default(), run_label(&run.name_any()))).collect();
        let exists = |ns: &str, label: &str| labels.contains(&(ns.to_string(), label.to_string()));
        ctx.children.jobs.retain_groups(exists);
        ctx.children.pods.retain_groups(exists);
        ctx.written.retain(|uid| uids.contains(uid));
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

/// One reconcile of `run`: observe → view → plan → apply → write status →
/// publish (and hand new transitions to the delivery task).
async fn reconcile(run: Arc<PipelineRun>, ctx: Arc<RunContext>) -> Result<Action, Error> {
    let _timer = ctx.base.metrics.reconcile_started("pipelinerun");
    let (ns, name, uid) = match next(&run, &ctx.deliveries, &ctx.written)? {
        Next::Plan { ns, name, uid } => (ns, name, uid),
        Next::Wait(action) => return Ok(action),
    };
    let (client, settings) = (&ctx.base.client, ctx.base.config.settings_for(&ns));
    let status = run.status.clone().unwrap_or_default();
    let view = observe::view(&run, &name, &uid, &status, &settings);
    ctx.children.keep_children(&ns, &name, needs_observation(&view));
    let mut observed = match needs_observation(&view) {
        true => match observe::observe(client, &ns, &run, &view, &ctx.runs, &ctx.children).await? {
            Some(observed) => observed,
            None => return Ok(Action::requeue(CACHE_CATCH_UP)),
        },
        false => Observed::default(),
    };
    let now = Utc::now();
    let plan = plan(&view, &observed, now);
    let clear_rerun = plan.actions.contains(&PlanAction::ClearRerunAnnotation);
    let expectations = &ctx.children.expectations;
    let Some(mut plan) = apply::apply(client, &run, &view, &mut observed, plan, expectations, now).await? else {
        return Ok(Action::await_change()); // the run itself was deleted (its TTL passed)
    };
    let notify_warnings =
        notifications::record(&run, &mut plan.status, &plan.notes, &settings.notify, &ctx.deliveries, now);
    write(&ctx, &run, &status, &plan.status, clear_rerun).await?;
    ctx.children.forget(&ns, &name, &done_with(&plan.status, &observed));
    let recheck = publish_and_hand_over(&ctx, &run, &plan, &notify_warnings).await;
    Ok(match [plan.requeue_after, recheck].into_iter().flatten().min() {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// Publishes the plan's Events and the notification warnings, then hands
/// the written transitions to the delivery task (only now that the status
/// records them are they sent). Returns when to look again for deliveries.
async fn publish_and_hand_over(
    ctx: &RunContext,
    run: &PipelineRun,
    plan: &Plan,
    notify_warnings: &[Note],
) -> Option<Duration> {
    publish(&ctx.base, run, &events::to_publish(&plan.notes)).await;
    publish(&ctx.base, run, notify_warnings).await;
    let handover = notifications::hand_over(run, &plan.status, &ctx.deliveries);
    publish(&ctx.base, run, &handover.notes).await;
    handover.recheck
}

/// What a reconcile does with the run it was handed.
enum Next {
    /// Plan it: its namespace, name and UID.
    Plan { ns: String, name: String, uid: String },
    /// Not now: a run being deleted waits for its deletion; a run whose
    /// cached status is older than the one written looks again shortly.
    Wait(Action),
}

fn next(run: &PipelineRun, deliveries: &Deliveries, written: &WrittenVersions) -> Result<Next, Error> {
    let ns = run.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = run.name_any();
    if run.meta().deletion_timestamp.is_some() {
        return Ok(Next::Wait(Action::await_change()));
    }
    let uid = run.uid().ok_or(Error::MissingField("metadata.uid"))?;
    if notifications::is_stale(run, deliveries) {
        debug!(run = %name, "cached status is older than the one written; looking again shortly");
        return Ok(Next::Wait(Action::requeue(notifications::STALE_RECHECK)));
    }
    if written.is_stale(&uid, run.metadata.resource_version.as_deref()) {
        debug!(run = %name, "cached run predates the status just written; waiting for the watch");
        return Ok(Next::Wait(Action::requeue(CACHE_CATCH_UP)));
    }
    Ok(Next::Plan { ns, name, uid })
}

/// Writes the planned `status` when it differs from the one read
/// (remembering the outbox the API server stored), then clears a handled
/// rerun annotation: only once the status recording the rerun is written,
/// so a failed write never loses the request.
async fn write(
    ctx: &RunContext,
    run: &PipelineRun,
    read: &PipelineRunStatus,
    status: &PipelineRunStatus,
    clear_rerun: bool,
) -> Result<(), Error> {
    if status != read {
        let stored = write_status(&ctx.base.client, run, status).await?;
        notifications::written(status, &stored, &ctx.deliveries);
        if let Some(uid) = stored.uid() {
            ctx.written.written(&uid, stored.metadata.resource_version.as_deref());
        }
    }
    if clear_rerun {
        apply::clear_rerun_annotation(&ctx.base.client, run).await?;
    }
    Ok(())
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

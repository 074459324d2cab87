//! The KataInstall reconciler: observe nodes, the installer DaemonSets and
//! their pods, RuntimeClasses and smoke objects ([`observe`]); ask the
//! engine ([`crate::engine::katainstall`]); apply its actions and write
//! status ([`apply`]); publish Events.
//!
//! KataInstall is cluster-scoped and its DaemonSets, pods and Jobs live in
//! the operator's namespace, so `owns()` cannot map them back (it looks the
//! owner up in the child's namespace): they carry `gantry.dev/kata-install`
//! and are mapped by that label. Node changes wake every KataInstall, and so
//! do changes to any KataInstall or RuntimeClass (a conflict may clear).

mod apply;
mod observe;

use std::sync::Arc;

use chrono::Utc;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::KataInstall;
use crate::controllers::{catch_panic, panic_note, to_event, Context, Error, Shutdown};
use crate::engine::katainstall::{self as kata, LABEL_KATA_INSTALL};
use crate::engine::note::Note;

/// Runs the KataInstall controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) {
    let client = ctx.client.clone();
    let ns = ctx.operator_namespace.clone();
    let installs = Api::<KataInstall>::all(client.clone());
    let mut install_watch = watcher::Config::default();
    if let Some(selector) = &ctx.katainstall_selector {
        install_watch = install_watch.labels(selector);
    }
    let children = || watcher::Config::default().labels(LABEL_KATA_INSTALL);
    info!(namespace = %ns, selector = ?ctx.katainstall_selector, "watching KataInstalls");
    let controller = super::lean_controller(installs, install_watch);
    let store = controller.store();
    let every_install = move || store.state().iter().map(|install| ObjectRef::from_obj(&**install)).collect::<Vec<_>>();
    let (wake_on_node, wake_on_install, wake_on_class) = (every_install.clone(), every_install.clone(), every_install);
    let backoff = ctx.backoff.clone();
    let results = controller
        .watches(Api::<DaemonSet>::namespaced(client.clone(), &ns), children(), by_label)
        .watches(Api::<Pod>::namespaced(client.clone(), &ns), children(), by_label)
        .watches(Api::<Job>::namespaced(client.clone(), &ns), children(), by_label)
        .watches(Api::<Node>::all(client.clone()), watcher::Config::default(), move |_: Node| wake_on_node())
        // Every KataInstall, whatever the selector: one going away may end another's conflict.
        .watches(Api::<KataInstall>::all(client.clone()), watcher::Config::default(), move |_: KataInstall| {
            wake_on_install()
        })
        .watches(Api::<RuntimeClass>::all(client), watcher::Config::default(), move |_: RuntimeClass| wake_on_class())
        .with_config(ctx.controller_config())
        .graceful_shutdown_on(shutdown)
        .run(reconcile_catching_panics, super::error_policy, ctx);
    super::drain(results, backoff).await;
}

fn by_label<K: Resource>(obj: K) -> Option<ObjectRef<KataInstall>> {
    obj.labels().get(LABEL_KATA_INSTALL).map(|name| ObjectRef::new(name))
}

/// [`reconcile`], with a panic reported on this install (a Warning Event)
/// instead of stopping the controller for every install.
async fn reconcile_catching_panics(install: Arc<KataInstall>, ctx: Arc<Context>) -> Result<Action, Error> {
    let result = catch_panic(reconcile(install.clone(), ctx.clone())).await;
    if let Err(Error::Panicked(why)) = &result {
        publish(&ctx, &install, &[panic_note(&install.name_any(), why)]).await;
    }
    result
}

/// One reconcile: observe → view → plan → apply → write status → publish.
///
/// The finalizer is the planner's business (`Action::AddFinalizer` and
/// `RemoveFinalizer`), not kube-runtime's `finalizer()`: that helper puts
/// it on at the first reconcile whatever the spec, and takes it off as soon
/// as one `Cleanup` call succeeds (a cleanup that takes several reconciles
/// would have to fail on purpose to keep it). Here it goes on only once the spec is valid
/// and in no conflict, just before the installer DaemonSet is made (a
/// KataInstall that made nothing is deleted at once), and cleanup spans
/// many reconciles (the installer pods stop, then the cleanup DaemonSet's
/// pod turns Ready node by node, up to `cleanupTimeout`) with status and
/// Events written at each: only the planner, which sees every node, knows
/// when the last one is clean and the finalizer may go.
async fn reconcile(install: Arc<KataInstall>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started("katainstall");
    let observed = observe::observe(&ctx, &install).await?;
    let status = install.status.clone().unwrap_or_default();
    let plan = kata::plan(&observe::view(&install, &status), &observed, Utc::now());
    let released = apply::apply_all(&ctx, &install, &observed, &plan.actions).await?;
    if !released && plan.status != status {
        apply::write_status(&ctx, &install.name_any(), &plan.status).await?;
    }
    publish(&ctx, &install, &plan.notes).await;
    Ok(Action::requeue(plan.requeue_after.unwrap_or(kata::RESYNC)))
}

/// Publishes Events about the KataInstall. API servers before 1.22 refuse
/// events.k8s.io Events about cluster-scoped objects anywhere but in
/// kube-system; there they go to the operator's namespace instead.
async fn publish(ctx: &Context, install: &KataInstall, notes: &[Note]) {
    let reference = install.object_ref(&());
    for note in notes {
        let event = to_event(note, None);
        if ctx.recorder.publish(&event, &reference).await.is_ok() {
            continue;
        }
        let mut fallback = reference.clone();
        fallback.namespace = Some(ctx.operator_namespace.clone());
        if let Err(e) = ctx.recorder.publish(&event, &fallback).await {
            warn!(install = %install.name_any(), error = %e, "cannot publish Event");
        }
    }
}

//! The reconcilers: thin loops that observe the cluster, ask the engine what
//! to do, apply it and write status.

pub mod cache;
pub mod create;
mod error;
pub mod expectations;
pub mod freshness;
pub mod imagebuild;
pub mod jobs;
pub mod katainstall;
pub mod lean;
pub mod logs;
pub mod ownership;
pub mod pipelinerun;
pub mod recorder;
pub mod retry;
mod shards;
mod shared;

pub use error::{describe, Error, KubeResultExt, Step};
pub use shared::{create_params, drain, error_policy, patch_params, write_status};

use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use kube::runtime::events::Reporter;
use kube::Client;
use tracing::{info, warn};

use recorder::Recorder;

/// The operator's namespace when neither `--operator-namespace` nor `POD_NAMESPACE` says.
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "gantry-system";

/// How long in-flight reconciles may run on after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// When an object whose reconcile panicked is tried again: the same input
/// would most likely panic again at once.
pub const PANIC_BACKOFF: Duration = Duration::from_secs(300);

/// The kinds Gantry reconciles, for `gantry run --controllers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// PipelineRuns.
    Pipelinerun,
    /// ImageBuilds.
    Imagebuild,
    /// KataInstalls (cluster-scoped).
    Katainstall,
}

/// Which controllers run, and where they look.
#[derive(Clone, Debug)]
pub struct Scope {
    /// Only this namespace (for namespaced kinds); all when `None`.
    pub namespace: Option<String>,
    /// The controllers to run.
    pub kinds: Vec<Kind>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub http_addr: std::net::SocketAddr,
    /// Reconcile only while holding this lease (for more than one replica).
    pub leader: Option<crate::leader::LeaseConfig>,
    /// The admin-owned configuration (`--config`).
    pub config: crate::config::OperatorConfig,
    /// Where the operator creates its own workloads (KataInstall's DaemonSets and smoke test).
    pub operator_namespace: String,
    /// Reconcile only the KataInstalls matching this label selector.
    pub katainstall_selector: Option<String>,
    /// Shards PipelineRuns over this many Leases (`--shards`; 1: no sharding,
    /// the single `leader` Lease). More than 1 needs `leader`.
    pub shards: u32,
}

/// What every reconciler shares.
#[derive(Clone)]
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Only this namespace (for namespaced kinds); all when `None`.
    pub namespace: Option<String>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The admin-owned configuration.
    pub config: Arc<crate::config::OperatorConfig>,
    /// Sends CloudEvents to `spec.notify` endpoints where the admin's policy
    /// allows (None: no TLS roots found).
    pub notifier: Option<crate::notify::Notifier>,
    /// Publishes Kubernetes Events about the objects being reconciled.
    pub recorder: Arc<Recorder>,
    /// Where the operator creates its own workloads.
    pub operator_namespace: String,
    /// Reconcile only the KataInstalls matching this label selector.
    pub katainstall_selector: Option<String>,
    /// Per-object backoff after failed reconciles.
    pub backoff: Arc<retry::Backoff>,
    /// With `--shards` > 1: the label selector of the runs of the shards
    /// this replica holds (see [`Context::watch_config`]).
    pub shard_selector: Option<String>,
    /// With `--shards` > 1: the label selector of those runs' children (see
    /// [`Context::child_watch_config`]).
    pub child_shard_selector: Option<String>,
}

impl Context {
    /// A context whose Events name `gantry` (and the pod, when set) as reporter.
    pub fn new(client: Client, namespace: Option<String>, config: crate::config::OperatorConfig) -> Arc<Self> {
        let reporter = Reporter { controller: "gantry".into(), instance: std::env::var("POD_NAME").ok() };
        Arc::new(Self {
            recorder: Arc::new(Recorder::new(client.clone(), reporter)),
            client,
            namespace,
            metrics: Arc::default(),
            notifier: crate::notify::Notifier::new(config.notify.clone())
                .inspect_err(|e| warn!(error = %e, "no TLS root certificates: notifications are disabled"))
                .ok(),
            config: Arc::new(config),
            operator_namespace: DEFAULT_OPERATOR_NAMESPACE.to_string(),
            katainstall_selector: None,
            backoff: Arc::default(),
            shard_selector: None,
            child_shard_selector: None,
        })
    }

    /// The kube-runtime controller settings from the configuration.
    pub fn controller_config(&self) -> kube::runtime::controller::Config {
        let config = kube::runtime::controller::Config::default();
        match self.config.reconcile_concurrency() {
            Some(n) => config.concurrency(n),
            None => config,
        }
    }

    /// `config` narrowed to the PipelineRuns of this replica's shards (by
    /// their shard label). Unchanged without sharding.
    pub fn watch_config(&self, config: kube::runtime::watcher::Config) -> kube::runtime::watcher::Config {
        narrowed(config, self.shard_selector.as_deref())
    }

    /// `config` narrowed to the children (stage Jobs, their pods) of the
    /// PipelineRuns of this replica's shards: those not labelled with
    /// another shard's bucket. Unchanged without sharding.
    pub fn child_watch_config(&self, config: kube::runtime::watcher::Config) -> kube::runtime::watcher::Config {
        narrowed(config, self.child_shard_selector.as_deref())
    }

    /// An Api for a namespaced kind over the watched namespace(s).
    pub fn scoped_api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.namespace {
            Some(ns) => kube::Api::namespaced(self.client.clone(), ns),
            None => kube::Api::all(self.client.clone()),
        }
    }
}

impl AsRef<Context> for Context {
    fn as_ref(&self) -> &Context {
        self
    }
}

/// `config` whose label selector also requires `extra` (selectors are
/// comma-separated requirements, all of which must hold).
fn narrowed(config: kube::runtime::watcher::Config, extra: Option<&str>) -> kube::runtime::watcher::Config {
    match (extra, &config.label_selector) {
        (None, _) => config,
        (Some(extra), None) => config.labels(extra),
        (Some(extra), Some(labels)) => {
            let both = format!("{labels},{extra}");
            config.labels(&both)
        }
    }
}

/// A controller for `api` whose cache holds each object without its
/// `managedFields` and kubectl's last-applied copy: bookkeeping, often the
/// larger part of an object, never read by a reconcile.
pub fn lean_controller<K>(api: kube::Api<K>, config: kube::runtime::watcher::Config) -> kube::runtime::Controller<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    use kube::runtime::WatchStreamExt;
    let (reader, writer) = kube::runtime::reflector::store();
    let objects = kube::runtime::watcher(api, config)
        .default_backoff()
        .modify(lean::without_bookkeeping::<K>)
        .reflect(writer)
        .applied_objects();
    kube::runtime::Controller::for_stream(objects, reader)
}

/// Publishes `notes` as Kubernetes Events about `obj`.
pub async fn publish<K: kube::Resource<DynamicType = ()>>(ctx: &Context, obj: &K, notes: &[crate::engine::note::Note]) {
    let reference = obj.object_ref(&());
    for note in notes {
        let event = to_event(note, obj.meta().namespace.clone());
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(object = ?obj.meta().name, error = %e, "cannot publish Event");
        }
    }
}

/// A request's result, where one HTTP status means "already done" (409 on
/// create: it exists; 404 on delete: it is gone) and is no error.
pub fn ok_if<T>(result: Result<T, kube::Error>, tolerated: u16) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == tolerated => Ok(()),
        Err(e) => Err(e),
    }
}

/// The Event for `note`; a Job it names is looked up in `namespace`.
pub(crate) fn to_event(note: &crate::engine::note::Note, namespace: Option<String>) -> kube::runtime::events::Event {
    // The recorder folds Events with the same reason, action and related
    // object into one series (keeping the first message): name the stage
    // and its Job so each stage's transitions stay visible.
    kube::runtime::events::Event {
        type_: if note.warning {
            kube::runtime::events::EventType::Warning
        } else {
            kube::runtime::events::EventType::Normal
        },
        reason: note.reason.clone(),
        note: Some(note.message.clone()),
        action: note.stage.clone().unwrap_or_else(|| "Reconcile".into()),
        secondary: note.job.as_ref().map(|job| k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(job.clone()),
            namespace,
            ..Default::default()
        }),
    }
}

/// Runs one reconcile and turns a panic inside it into [`Error::Panicked`],
/// so that one object's bad data (or a bug it triggers) fails that object
/// alone: kube-runtime runs every reconcile in one task, and an unwinding
/// panic there would stop the controller for every object.
pub async fn catch_panic<T>(reconcile: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(reconcile).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(Error::Panicked(panic_message(payload.as_ref()))),
    }
}

/// The message a panic was raised with.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    crate::engine::text::truncate(&message, crate::engine::conditions::MAX_MESSAGE_BYTES)
}

/// Logs that reconciling `object` panicked with `why`; returns the Warning
/// Event that tells the object's owner.
pub fn panic_note(object: &str, why: &str) -> crate::engine::note::Note {
    tracing::error!(%object, error = %why, "reconcile panicked; this object waits {PANIC_BACKOFF:?}, the others go on");
    crate::engine::note::Note {
        warning: true,
        reason: "ReconcilePanicked".into(),
        message: format!("the operator failed on this object (a bug, please report it): {why}"),
        stage: None,
        job: None,
    }
}

/// Waits for Ctrl-C or SIGTERM, then tells every `Shutdown` handle.
async fn wait_for_signal(tx: tokio::sync::watch::Sender<bool>) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    info!("shutdown requested; finishing in-flight reconciles");
    let _ = tx.send(true);
}

/// A future that resolves once shutdown was requested; cheap to clone, one
/// per controller.
pub fn shutdown_handle(rx: &tokio::sync::watch::Receiver<bool>) -> Shutdown {
    let mut rx = rx.clone();
    Box::pin(async move {
        let _ = rx.wait_for(|stop| *stop).await;
    })
}

/// What `Controller::graceful_shutdown_on` waits for.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// The `kinds` controllers with `ctx`, until `stop` says so.
fn controllers(
    ctx: Arc<Context>,
    kinds: &[Kind],
    stop: &tokio::sync::watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let enabled = |kind| kinds.contains(&kind).then(|| (ctx.clone(), shutdown_handle(stop)));
    let (runs, builds, installs) = (enabled(Kind::Pipelinerun), enabled(Kind::Imagebuild), enabled(Kind::Katainstall));
    async move {
        tokio::join!(
            async {
                if let Some((ctx, stop)) = runs {
                    pipelinerun::run(ctx, stop).await
                }
            },
            async {
                if let Some((ctx, stop)) = builds {
                    imagebuild::run(ctx, stop).await
                }
            },
            async {
                if let Some((ctx, stop)) = installs {
                    katainstall::run(ctx, stop).await
                }
            },
        );
    }
}

/// Runs every controller until a shutdown signal arrives.
pub async fn run(client: Client, scope: Scope) -> anyhow::Result<()> {
    let mut ctx = Context::new(client, scope.namespace.clone(), scope.config.clone());
    if let Some(ctx) = Arc::get_mut(&mut ctx) {
        ctx.operator_namespace = scope.operator_namespace.clone();
        ctx.katainstall_selector = scope.katainstall_selector.clone();
    }
    let health = Arc::new(crate::http::Health::default());
    let (_, serve) = crate::http::bind(scope.http_addr, ctx.metrics.clone(), health.clone()).await?;
    tokio::spawn(serve);
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(wait_for_signal(tx));
    // Ready means able to work: the API server answers. A standby replica
    // waiting for the lease is ready too (it can take over at any time).
    ctx.client.apiserver_version().await?;
    health.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    if scope.shards > 1 {
        return shards::run(ctx, &scope, rx).await;
    }
    let mut elector = scope.leader.clone().map(|cfg| crate::leader::Elector::new(ctx.client.clone(), cfg));
    let mut tenure = None;
    if let Some(elector) = &mut elector {
        tokio::select! {
            won = elector.acquire() => tenure = Some(won),
            _ = shutdown_handle(&rx) => return Ok(()),
        }
    }
    ctx.metrics.shards_held(1);
    let where_ = scope.namespace.as_deref().map_or("all namespaces".to_string(), |ns| format!("namespace {ns}"));
    info!(controllers = ?scope.kinds, "starting controllers for {where_}");
    let controllers = controllers(ctx.clone(), &scope.kinds, &rx);
    // kube-runtime's applier waits for its cache to be ready before it
    // stops; a signal that arrives before the first list completed would
    // then wait forever. In-flight reconciles get a bounded grace period.
    let grace_over = async {
        shutdown_handle(&rx).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    // Renewed while the controllers run and while they shut down; the
    // renew deadline ends it before another replica may take over.
    let lease_lost = async {
        match (&elector, tenure) {
            (Some(elector), Some(tenure)) => elector.hold(tenure).await,
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = controllers => info!("stopped"),
        _ = grace_over => warn!("stopped: in-flight reconciles did not finish within {SHUTDOWN_GRACE:?}"),
        // Another replica may be reconciling soon: stop at once.
        lost = lease_lost => anyhow::bail!("lost the leader lease ({lost}); exiting so a restart rejoins as a candidate"),
    }
    if let Some(elector) = &elector {
        elector.release().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_reconcile_becomes_an_error_with_its_message() {
        let result: Result<(), Error> = catch_panic(async { panic!("DateTime + TimeDelta overflowed") }).await;
        match result {
            Err(e @ Error::Panicked(_)) => {
                assert!(e.to_string().contains("DateTime + TimeDelta overflowed"), "{e}");
                assert_eq!(e.metric_reason(), "panic");
                assert_eq!(e.fixed_backoff(), Some(PANIC_BACKOFF));
            }
            other => panic!("expected Panicked, got {other:?}"),
        }
        let formatted: Result<(), Error> = catch_panic(async { panic!("stage {} broke", 3) }).await;
        assert!(matches!(formatted, Err(Error::Panicked(m)) if m == "stage 3 broke"));
    }

    #[test]
    fn cached_objects_leave_bookkeeping_out_and_keep_the_rest() {
        let mut run: crate::api::PipelineRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": "nightly", "uid": "u1",
                         "annotations": {"gantry.dev/rerun": "test",
                                         "kubectl.kubernetes.io/last-applied-configuration": "{\"spec\":{}}"},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                                            "fieldsV1": {"f:spec": {}}}]},
            "spec": {"stages": [{"name": "a"}]}
        }))
        .unwrap();
        let before = run.clone();
        lean::without_bookkeeping(&mut run);
        assert_eq!(run.metadata.managed_fields, None);
        let annotations: Vec<&String> = run.metadata.annotations.iter().flatten().map(|(k, _)| k).collect();
        assert_eq!(annotations, ["gantry.dev/rerun"], "Gantry's annotations stay, kubectl's copy goes");
        assert_eq!((run.metadata.uid, run.spec), (before.metadata.uid, before.spec));
    }

    #[test]
    fn watches_are_narrowed_to_the_shards_held_and_keep_their_own_selector() {
        use kube::runtime::watcher::Config;
        let shards = "gantry.dev/shard in (0,2)";
        assert_eq!(narrowed(Config::default(), None).label_selector, None);
        assert_eq!(narrowed(Config::default(), Some(shards)).label_selector.as_deref(), Some(shards));
        let jobs = narrowed(Config::default().labels("gantry.dev/run"), Some(shards));
        assert_eq!(jobs.label_selector.as_deref(), Some("gantry.dev/run,gantry.dev/shard in (0,2)"));
        assert_eq!(narrowed(Config::default().labels("a=b"), None).label_selector.as_deref(), Some("a=b"));
    }

    #[tokio::test]
    async fn a_reconcile_that_does_not_panic_is_passed_through() {
        assert!(matches!(catch_panic(async { Ok::<_, Error>(7) }).await, Ok(7)));
        let failed = catch_panic(async { Err::<(), _>(Error::MissingField("metadata.uid")) }).await;
        assert!(matches!(failed, Err(Error::MissingField(_))));
    }
}

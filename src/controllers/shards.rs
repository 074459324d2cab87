//! Running with `--shards N` (N > 1): hold shard Leases (`leader::shards`)
//! and run the controllers for the runs of the shards held (`engine::shard`),
//! restarting them whenever that set changes.
//!
//! - The PipelineRun controller watches runs with the selector
//!   `gantry.dev/shard in (buckets of the held shards)`, and their Jobs and
//!   pods with `gantry.dev/shard notin (buckets of the other shards)`
//!   (children made before sharding carry no label).
//! - The holder of shard 0 also labels runs that carry no valid shard label
//!   (a watch on `gantry.dev/shard notin (0..63)`, one merge patch of the
//!   label each; the value is deterministic, so two writers agree), and runs
//!   the ImageBuild and KataInstall controllers, which are not sharded.
//! - A shard gained: the controllers stop gracefully (in-flight reconciles
//!   get `SHUTDOWN_GRACE`) and start again with the new selector.
//! - A shard lost (its renewals failed for the renew deadline, so another
//!   replica may take it a third of a lease later): the controllers are
//!   dropped at once, the other Leases released, and the operator exits to
//!   rejoin as a candidate, as with the single leader Lease.
//! - On shutdown: stop gracefully, then release every shard Lease.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::Patch;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, ResourceExt};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{controllers, ok_if, patch_params, shutdown_handle, Context, Kind, Scope, Shutdown, SHUTDOWN_GRACE};
use crate::api::PipelineRun;
use crate::engine::shard::{children_selector, hashed_bucket, needs_label, selector, unlabelled_selector, LABEL_SHARD};
use crate::leader::shards::ShardLeases;

/// Controllers running for one set of shards, and how to stop them.
struct Generation {
    stop: watch::Sender<bool>,
    running: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Generation {
    /// Starts what a replica holding `held` (of `shards`) runs.
    fn start(ctx: &Arc<Context>, kinds: &[Kind], held: &BTreeSet<u32>, shards: u32) -> Self {
        let mut sharded = (**ctx).clone();
        sharded.shard_selector = selector(held, shards);
        sharded.child_shard_selector = children_selector(held, shards);
        let sharded = Arc::new(sharded);
        // Unsharded work goes to the holder of shard 0 alone.
        let kinds: Vec<Kind> = kinds.iter().copied().filter(|k| *k == Kind::Pipelinerun || held.contains(&0)).collect();
        let label = kinds.contains(&Kind::Pipelinerun) && held.contains(&0);
        let (stop, rx) = watch::channel(false);
        let labeller = label.then(|| label_runs(sharded.clone(), shutdown_handle(&rx)));
        let controllers = controllers(sharded, &kinds, &rx);
        let running = async move {
            tokio::join!(controllers, async {
                if let Some(labeller) = labeller {
                    labeller.await
                }
            });
        };
        let list: Vec<u32> = held.iter().copied().collect();
        info!(controllers = ?kinds, labels_runs = label, "starting controllers for shards {list:?}");
        Self { stop, running: Box::pin(running) }
    }

    /// Stops gracefully: in-flight reconciles get `SHUTDOWN_GRACE`.
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut self.running).await.is_err() {
            warn!("in-flight reconciles did not finish within {SHUTDOWN_GRACE:?}; dropped");
        }
    }
}

/// Holds shard Leases and runs the controllers for the shards held, until
/// `shutdown` says stop (or a shard is lost: an error).
pub async fn run(ctx: Arc<Context>, scope: &Scope, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let Some(base) = scope.leader.clone() else {
        anyhow::bail!("--shards {} needs --leader-elect: each shard is a Lease", scope.shards);
    };
    let (mut leases, mut lost) = ShardLeases::new(ctx.client.clone(), base, scope.shards);
    ctx.metrics.shards_held(0);
    info!(shards = scope.shards, "waiting for shard leases");
    let mut held = BTreeSet::new();
    let mut generation: Option<Generation> = None;
    let mut stopping = shutdown_handle(&shutdown);
    let mut next_look = tokio::time::Instant::now();
    let outcome = loop {
        let now_held = leases.held();
        if now_held != held {
            held = now_held;
            ctx.metrics.shards_held(held.len());
            let list: Vec<u32> = held.iter().copied().collect();
            info!(identity = %scope_identity(scope), "holding shards {list:?}");
            if let Some(old) = generation.take() {
                // Renewals go on meanwhile; a shard lost while stopping stops everything.
                tokio::select! {
                    _ = old.stop() => {}
                    Some((k, why)) = lost.recv() => break Err((k, why)),
                }
            }
            generation = (!held.is_empty()).then(|| Generation::start(&ctx, &scope.kinds, &held, scope.shards));
        }
        let running = async {
            match generation.as_mut() {
                Some(g) => (&mut g.running).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stopping => break Ok(()),
            Some((k, why)) = lost.recv() => break Err((k, why)),
            _ = running => {
                warn!("the controllers stopped by themselves; starting them again");
                generation = None;
                held.clear();
            }
            _ = async {
                tokio::time::sleep_until(next_look).await;
                leases.look_round().await;
            } => next_look = tokio::time::Instant::now() + leases.retry_period(),
        }
    };
    match outcome {
        Ok(()) => {
            if let Some(g) = generation.take() {
                g.stop().await;
            }
            leases.release_all().await;
            info!("stopped");
            Ok(())
        }
        Err((k, why)) => {
            // Another replica may be reconciling that shard soon: stop at once.
            drop(generation);
            leases.release_all().await;
            anyhow::bail!("lost the lease of shard {k} ({why}); exiting so a restart rejoins as a candidate")
        }
    }
}

fn scope_identity(scope: &Scope) -> &str {
    scope.leader.as_ref().map_or("", |l| l.identity.as_str())
}

/// Gives each run without a valid shard label its bucket (a merge patch of
/// that one label), until `stop`.
async fn label_runs(ctx: Arc<Context>, stop: Shutdown) {
    let api = ctx.scoped_api::<PipelineRun>();
    let config = watcher::Config::default().labels(&unlabelled_selector());
    info!("labelling PipelineRuns with their shard");
    watcher(api, config)
        .default_backoff()
        .applied_objects()
        .take_until(stop)
        .for_each_concurrent(8, |run| {
            let ctx = ctx.clone();
            async move {
                match run {
                    Ok(run) if needs_label(&run) => label_run(&ctx, &run).await,
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "watching unlabelled PipelineRuns"),
                }
            }
        })
        .await;
}

/// Writes `run`'s shard label; retried a few times, then left to the next
/// restart of the watch (a relist emits it again).
async fn label_run(ctx: &Context, run: &PipelineRun) {
    let (ns, name) = (run.namespace().unwrap_or_default(), run.name_any());
    let bucket = hashed_bucket(run);
    let patch = serde_json::json!({"metadata": {"labels": {LABEL_SHARD: bucket.to_string()}}});
    let api = Api::<PipelineRun>::namespaced(ctx.client.clone(), &ns);
    for attempt in 1..=5u32 {
        match ok_if(api.patch(&name, &patch_params(), &Patch::Merge(&patch)).await, 404) {
            Ok(()) => return info!(run = %name, namespace = %ns, bucket, "labelled the run with its shard"),
            Err(e) => {
                warn!(run = %name, namespace = %ns, error = %e, attempt, "cannot label the run with its shard");
                tokio::time::sleep(std::time::Duration::from_millis(200) * 2u32.pow(attempt)).await;
            }
        }
    }
}

//! Prometheus metrics: reconciles, errors by reason, reconcile durations,
//! reconciles in flight, notification tries by result, and PipelineRuns and
//! stages by phase (counted from the controller's cache when scraped, so
//! deleted runs drop out).

use std::sync::{Arc, RwLock};
use std::time::Instant;

use kube::runtime::reflector::Store;
use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::api::PipelineRun;

/// Labels naming the reconciled kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `pipelinerun`, `imagebuild` or `katainstall`.
    pub kind: String,
}

/// Labels of a failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The reconciled kind.
    pub kind: String,
    /// A short, bounded reason: the reconcile step and HTTP code, e.g. `apply_409`.
    pub reason: String,
}

/// Labels of a phase gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// The phase.
    pub phase: String,
}

/// Labels of a notification counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `delivered`, `failed`, `refused` (by the destination policy), `gave_up` or `queue_full`.
    pub result: String,
}

/// Labels of an API request the operator made.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `apply` or `delete`.
    pub verb: String,
    /// The resource, with its subresource: `jobs`, `pipelineruns/status`.
    pub resource: String,
}

/// API requests the operator made, by verb and resource. Process-wide: the
/// client counts them before any [`Metrics`] exists, and every registry
/// exports the same family.
pub fn api_requests() -> &'static Family<RequestLabels, Counter> {
    static REQUESTS: std::sync::OnceLock<Family<RequestLabels, Counter>> = std::sync::OnceLock::new();
    REQUESTS.get_or_init(Family::default)
}

/// Every metric Gantry exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<KindLabels, Histogram>,
    in_flight: Family<KindLabels, Gauge>,
    runs: Family<PhaseLabels, Gauge>,
    stages: Family<PhaseLabels, Gauge>,
    notifications: Family<ResultLabels, Counter>,
    shards_held: Gauge,
    /// The running PipelineRun controller's cache (replaced when the
    /// controllers restart for another set of shards).
    run_cache: RwLock<Option<Store<PipelineRun>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gantry");
        let reconciles = Family::<KindLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let in_flight = Family::<KindLabels, Gauge>::default();
        let runs = Family::<PhaseLabels, Gauge>::default();
        let stages = Family::<PhaseLabels, Gauge>::default();
        registry.register("reconciles", "Reconciles started, by kind", reconciles.clone());
        registry.register("reconcile_errors", "Reconciles that failed, by kind and reason", errors.clone());
        registry.register("reconcile_duration_seconds", "How long reconciles take, by kind", durations.clone());
        registry.register("reconciles_in_flight", "Reconciles running now, by kind", in_flight.clone());
        registry.register("pipelineruns", "PipelineRuns by phase", runs.clone());
        registry.register("pipelinerun_stages", "Stages of all PipelineRuns by phase", stages.clone());
        let notifications = Family::<ResultLabels, Counter>::default();
        registry.register(
            "notifications",
            "CloudEvent deliveries to spec.notify targets: tries by result, give-ups and full queues",
            notifications.clone(),
        );
        registry.register(
            "api_requests",
            "Requests the operator sent to the API server, by verb and resource",
            api_requests().clone(),
        );
        let shards_held = Gauge::default();
        registry.register(
            "shards_held",
            "Shards whose PipelineRuns this replica reconciles (1 without --shards once leading)",
            shards_held.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            durations,
            in_flight,
            runs,
            stages,
            notifications,
            shards_held,
            run_cache: RwLock::default(),
        }
    }
}

/// Times one reconcile; records duration and in-flight count when dropped.
pub struct ReconcileTimer {
    metrics: Arc<Metrics>,
    labels: KindLabels,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics.durations.get_or_create(&self.labels).observe(self.started.elapsed().as_secs_f64());
        self.metrics.in_flight.get_or_create(&self.labels).dec();
    }
}

impl Metrics {
    /// Counts a reconcile of `kind` and times it until the timer is dropped.
    pub fn reconcile_started(self: &Arc<Self>, kind: &str) -> ReconcileTimer {
        let labels = KindLabels { kind: kind.to_string() };
        self.reconciles.get_or_create(&labels).inc();
        self.in_flight.get_or_create(&labels).inc();
        ReconcileTimer { metrics: self.clone(), labels, started: Instant::now() }
    }

    /// Counts a failed reconcile.
    pub fn reconcile_failed(&self, kind: &str, reason: &str) {
        self.errors.get_or_create(&ErrorLabels { kind: kind.to_string(), reason: reason.to_string() }).inc();
    }

    /// Counts a notification try (or give-up, or refused enqueue) by `result`.
    pub fn notification(&self, result: &str) {
        self.notifications.get_or_create(&ResultLabels { result: result.to_string() }).inc();
    }

    /// Lets scrapes count PipelineRuns and stages from the controller's cache.
    pub fn watch_runs(&self, cache: Store<PipelineRun>) {
        *self.run_cache.write().unwrap_or_else(|e| e.into_inner()) = Some(cache);
    }

    /// Records how many shards this replica holds.
    pub fn shards_held(&self, n: usize) {
        self.shards_held.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.refresh_phase_gauges();
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    fn refresh_phase_gauges(&self) {
        let Some(cache) = self.run_cache.read().unwrap_or_else(|e| e.into_inner()).clone() else { return };
        self.runs.clear();
        self.stages.clear();
        for run in cache.state() {
            let Some(status) = &run.status else { continue };
            if let Some(phase) = status.phase {
                self.runs.get_or_create(&PhaseLabels { phase: format!("{phase:?}") }).inc();
            }
            for stage in &status.stages {
                self.stages.get_or_create(&PhaseLabels { phase: format!("{:?}", stage.phase) }).inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_errors_and_durations_are_exported() {
        let metrics = Arc::new(Metrics::default());
        drop(metrics.reconcile_started("pipelinerun"));
        drop(metrics.reconcile_started("pipelinerun"));
        metrics.reconcile_failed("pipelinerun", "apply_409");
        let text = metrics.render();
        assert!(text.contains("gantry_reconciles_total{kind=\"pipelinerun\"} 2"), "{text}");
        assert!(text.contains("gantry_reconcile_errors_total{kind=\"pipelinerun\",reason=\"apply_409\"} 1"), "{text}");
        assert!(text.contains("gantry_reconcile_duration_seconds_count{kind=\"pipelinerun\"} 2"), "{text}");
        assert!(text.contains("gantry_reconciles_in_flight{kind=\"pipelinerun\"} 0"), "{text}");
        metrics.notification("delivered");
        metrics.notification("delivered");
        let text = metrics.render();
        assert!(text.contains("gantry_notifications_total{result=\"delivered\"} 2"), "{text}");
        metrics.shards_held(3);
        assert!(metrics.render().contains("gantry_shards_held 3"), "{text}");
    }
}

//! The report: per phase, wall time, stage transitions per second, hand-off
//! latency percentiles, API requests per transition by verb and resource,
//! peak RSS, runs that succeeded and duplicate Jobs; Gantry's ratio to the
//! baseline; as JSON and as a short text summary.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::metrics::{per, subtract, sum_verbs, Counts, WRITE_VERBS};
use crate::request_cost::RequestCost;
use crate::tracker::{completed, duplicate_jobs, handoff_latencies_ms};
use crate::workload::{Outcome, Workload};

/// The `p`th percentile (0..=100) of `values` by nearest rank; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize, PartialEq)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Latency {
    fn of(values: &[f64]) -> Self {
        Latency {
            samples: values.len(),
            p50_ms: percentile(values, 50.0),
            p90_ms: percentile(values, 90.0),
            p99_ms: percentile(values, 99.0),
            max_ms: percentile(values, 100.0),
        }
    }
}

/// One phase, measured.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub name: String,
    pub runs: usize,
    pub stages: usize,
    pub wall_secs: f64,
    /// Stage Jobs that completed.
    pub transitions: usize,
    pub transitions_per_sec: f64,
    pub runs_finished: usize,
    pub runs_succeeded: usize,
    pub all_succeeded: bool,
    pub duplicate_jobs: usize,
    /// From a Job's completion to the next stage's Job, as this process's watch saw them.
    pub handoff_latency: Latency,
    /// Everything the apiserver served during the phase, per transition.
    pub requests_per_transition: Counts,
    /// The bench's own requests (starting chains, the baseline's creates, the completer), per transition.
    pub bench_requests_per_transition: Counts,
    pub writes_per_transition: f64,
    pub lists_per_transition: f64,
    pub peak_rss_mib: Option<f64>,
    pub reconciles_per_transition: Option<f64>,
    /// The operator's own requests per transition, as it counted them
    /// (`gantry_api_requests_total`; Gantry phase only).
    pub operator_requests_per_transition: Option<Counts>,
    pub operator_writes_per_transition: Option<f64>,
    /// CPU milliseconds per transition by component (API server, etcd, Job
    /// controller, operator, bench), from `/proc`: where the work went.
    pub cpu_ms_per_transition: BTreeMap<String, f64>,
    /// Cores those components kept busy on average: near the machine's
    /// count, the phase was limited by CPU.
    pub cores_busy: f64,
    /// When each chain finished (seconds since the phase started), for the plot.
    pub finished_at: Vec<f64>,
    /// Every hand-off latency (ms), for the plot.
    pub latencies_ms: Vec<f64>,
}

impl Phase {
    /// Measures `outcome`, given the apiserver's request diff and the bench's own requests.
    pub fn new(name: &str, workload: &Workload, outcome: Outcome, requests: &Counts, bench: &Counts) -> Self {
        let transitions = completed(&outcome.jobs);
        let t = transitions as f64;
        let latencies_ms = handoff_latencies_ms(&outcome.jobs, &workload.stage_names());
        let all = per(requests, t);
        Phase {
            name: name.to_string(),
            runs: workload.runs,
            stages: workload.stages,
            wall_secs: outcome.wall_secs,
            transitions,
            transitions_per_sec: if outcome.wall_secs > 0.0 { t / outcome.wall_secs } else { 0.0 },
            runs_finished: outcome.finished.len(),
            runs_succeeded: outcome.succeeded,
            all_succeeded: outcome.succeeded == workload.runs,
            duplicate_jobs: duplicate_jobs(&outcome.jobs),
            handoff_latency: Latency::of(&latencies_ms),
            writes_per_transition: sum_verbs(&all, &WRITE_VERBS),
            lists_per_transition: sum_verbs(&all, &["LIST"]),
            requests_per_transition: all,
            bench_requests_per_transition: per(bench, t),
            peak_rss_mib: outcome.peak_rss_kib.map(|k| k as f64 / 1024.0),
            reconciles_per_transition: outcome.reconciles.map(|r| if t > 0.0 { r / t } else { 0.0 }),
            operator_writes_per_transition: outcome.operator_requests.as_ref().map(|c| {
                if t > 0.0 {
                    sum_verbs(c, &WRITE_VERBS) / t
                } else {
                    0.0
                }
            }),
            operator_requests_per_transition: outcome.operator_requests.as_ref().map(|c| per(c, t)),
            // Seconds per transition / 1000: milliseconds per transition.
            cpu_ms_per_transition: per(&outcome.cpu_seconds, t / 1000.0),
            cores_busy: if outcome.wall_secs > 0.0 {
                outcome.cpu_seconds.values().sum::<f64>() / outcome.wall_secs
            } else {
                0.0
            },
            finished_at: outcome.finished,
            latencies_ms,
        }
    }

    /// What the rest of the cluster (not the bench) asked for, per transition.
    fn others_per_transition(&self) -> Counts {
        subtract(&self.requests_per_transition, &self.bench_requests_per_transition)
    }
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub baseline: Option<Phase>,
    pub gantry: Option<Phase>,
    /// The baseline's chains plus Gantry's writes, with no operator.
    pub writes: Option<Phase>,
    /// Gantry's transitions per second over the baseline's.
    pub throughput_ratio: Option<f64>,
    /// The `writes` phase's over the baseline's: the most any operator that
    /// makes Gantry's writes could reach on this cluster.
    pub writes_ratio: Option<f64>,
    /// Gantry's own requests per transition, estimated: what the cluster
    /// other than the bench asked for in the Gantry phase, minus the same in
    /// the baseline phase (the Job controller's share, the same per Job).
    pub gantry_requests_per_transition: Option<Counts>,
    pub gantry_writes_per_transition: Option<f64>,
    /// What one request of each kind costs the cluster in CPU (the
    /// `requests` phase), by the apiserver's name for it.
    pub request_costs: Option<BTreeMap<String, RequestCost>>,
}

/// `phase`'s transitions per second over `baseline`'s.
fn ratio(baseline: &Option<Phase>, phase: &Option<Phase>) -> Option<f64> {
    let (b, p) = (baseline.as_ref()?, phase.as_ref()?);
    (b.transitions_per_sec > 0.0).then(|| p.transitions_per_sec / b.transitions_per_sec)
}

impl Report {
    pub fn new(
        baseline: Option<Phase>,
        gantry: Option<Phase>,
        writes: Option<Phase>,
        request_costs: Option<BTreeMap<String, RequestCost>>,
    ) -> Self {
        let own = match (&baseline, &gantry) {
            (Some(b), Some(g)) => Some(
                subtract(&g.others_per_transition(), &b.others_per_transition())
                    .into_iter()
                    .filter(|(_, v)| v.abs() >= 0.005)
                    .collect::<Counts>(),
            ),
            _ => None,
        };
        Report {
            throughput_ratio: ratio(&baseline, &gantry),
            writes_ratio: ratio(&baseline, &writes),
            gantry_writes_per_transition: own.as_ref().map(|o| sum_verbs(o, &WRITE_VERBS)),
            gantry_requests_per_transition: own,
            baseline,
            gantry,
            writes,
            request_costs,
        }
    }

    /// The short text summary.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for phase in [&self.baseline, &self.gantry, &self.writes].into_iter().flatten() {
            out += &phase_summary(phase);
        }
        if let Some(ratio) = self.throughput_ratio {
            out += &format!("gantry / baseline throughput: {ratio:.2}\n");
        }
        if let Some(ratio) = self.writes_ratio {
            out += &format!(
                "writes / baseline throughput: {ratio:.2} (Gantry's writes with no operator: the most an operator making them reaches here)\n"
            );
        }
        if let Some(own) = &self.gantry_requests_per_transition {
            out += &format!(
                "gantry's own API requests per transition (gantry phase minus baseline, bench excluded); writes {:.2}:\n",
                self.gantry_writes_per_transition.unwrap_or_default()
            );
            out += &table(own);
        }
        if let Some(costs) = &self.request_costs {
            out += &format!("{}\n", cost_line(costs));
        }
        out
    }
}

/// One line: the CPU one request of each kind costs the cluster.
pub fn cost_line(costs: &BTreeMap<String, RequestCost>) -> String {
    let kinds: Vec<String> = costs.iter().map(|(kind, c)| format!("{kind} {:.1}", c.cpu_ms_total)).collect();
    format!("CPU ms one request costs the API server, etcd and controller-manager: {}", kinds.join(", "))
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0} ms")).unwrap_or_else(|| "-".into())
}

fn phase_summary(p: &Phase) -> String {
    let mut out = format!(
        "{}: {} runs x {} stages: {:.1} s, {} transitions, {:.1} transitions/s; {} of {} runs Succeeded ({}), {} duplicate Jobs\n",
        p.name,
        p.runs,
        p.stages,
        p.wall_secs,
        p.transitions,
        p.transitions_per_sec,
        p.runs_succeeded,
        p.runs,
        if p.all_succeeded { "all" } else { "NOT all" },
        p.duplicate_jobs
    );
    out += &format!(
        "  completion -> next Job: p50 {}, p90 {}, p99 {}, max {} ({} hand-offs)\n",
        fmt_ms(p.handoff_latency.p50_ms),
        fmt_ms(p.handoff_latency.p90_ms),
        fmt_ms(p.handoff_latency.p99_ms),
        fmt_ms(p.handoff_latency.max_ms),
        p.handoff_latency.samples
    );
    out += &format!(
        "  API requests per transition (all clients): {:.2} writes, {:.2} LISTs\n",
        p.writes_per_transition, p.lists_per_transition
    );
    if !p.cpu_ms_per_transition.is_empty() {
        let parts: Vec<String> = p.cpu_ms_per_transition.iter().map(|(name, ms)| format!("{name} {ms:.1}")).collect();
        let total: f64 = p.cpu_ms_per_transition.values().sum();
        out += &format!(
            "  CPU ms per transition: {} (in all {total:.1}); {:.2} cores busy\n",
            parts.join(", "),
            p.cores_busy
        );
    }
    if let Some(rss) = p.peak_rss_mib {
        out += &format!("  operator peak RSS: {rss:.1} MiB\n");
    }
    if let Some(r) = p.reconciles_per_transition {
        out += &format!("  reconciles per transition: {r:.2}\n");
    }
    if let Some(own) = &p.operator_requests_per_transition {
        let writes = p.operator_writes_per_transition.unwrap_or_default();
        out += &format!("  the operator's own requests per transition, as it counted them; writes {writes:.2}:\n");
        out += &table(own);
    }
    out
}

/// `  VERB resource   1.23` lines, largest first, those under 0.005 left out.
fn table(counts: &Counts) -> String {
    let mut rows: Vec<(&String, &f64)> = counts.iter().filter(|(_, v)| v.abs() >= 0.005).collect();
    rows.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(b.0)));
    rows.iter().map(|(k, v)| format!("    {k:<40} {v:>7.2}\n")).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::tracker::JobSeen;

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0), "unsorted input");
        assert_eq!(percentile(&[], 50.0), None);
    }

    fn workload() -> Workload {
        Workload { runs: 1, stages: 2, image: "i".into(), timeout: Duration::from_secs(1), create_concurrency: 1 }
    }

    fn outcome() -> Outcome {
        let job = |stage: &str, first, done| JobSeen {
            run: "r".into(),
            stage: stage.into(),
            attempt: "1".into(),
            first_seen: first,
            completed: Some(done),
        };
        Outcome {
            wall_secs: 2.0,
            finished: vec![2.0],
            succeeded: 1,
            jobs: vec![job("s1", 0.0, 1.0), job("s2", 1.1, 2.0)],
            peak_rss_kib: Some(2048),
            reconciles: Some(8.0),
            operator_requests: Some([("POST jobs".into(), 2.0), ("APPLY pipelineruns/status".into(), 2.0)].into()),
            cpu_seconds: [("kube-apiserver".into(), 0.5), ("gantry".into(), 0.1)].into(),
        }
    }

    #[test]
    fn a_phase_counts_per_transition() {
        let requests: Counts = [("POST jobs".into(), 4.0), ("LIST jobs".into(), 2.0), ("GET pods".into(), 6.0)].into();
        let bench: Counts = [("POST jobs".into(), 2.0)].into();
        let phase = Phase::new("baseline", &workload(), outcome(), &requests, &bench);
        assert_eq!(phase.transitions, 2);
        assert_eq!(phase.transitions_per_sec, 1.0);
        assert!(phase.all_succeeded);
        assert_eq!(phase.duplicate_jobs, 0);
        assert_eq!(phase.handoff_latency.samples, 1);
        assert!((phase.handoff_latency.p50_ms.unwrap() - 100.0).abs() < 1e-6);
        assert_eq!(phase.writes_per_transition, 2.0);
        assert_eq!(phase.lists_per_transition, 1.0);
        assert_eq!(phase.peak_rss_mib, Some(2.0));
        assert_eq!(phase.reconciles_per_transition, Some(4.0));
        assert_eq!(phase.operator_writes_per_transition, Some(2.0));
        assert_eq!(phase.operator_requests_per_transition.as_ref().unwrap()["POST jobs"], 1.0);
        assert_eq!(
            (phase.cpu_ms_per_transition["kube-apiserver"], phase.cpu_ms_per_transition["gantry"]),
            (250.0, 50.0)
        );
        assert!(
            phase_summary(&phase).contains("CPU ms per transition: gantry 50.0, kube-apiserver 250.0 (in all 300.0)")
        );
    }

    /// A baseline and a Gantry phase half as fast, with the requests of the
    /// one and the other.
    fn phases() -> (Phase, Phase) {
        let base_req: Counts = [("POST jobs".into(), 2.0), ("PUT jobs/status".into(), 2.0)].into();
        let base_bench: Counts = [("POST jobs".into(), 2.0)].into();
        let baseline = Phase::new("baseline", &workload(), outcome(), &base_req, &base_bench);
        let g_req: Counts = [
            ("POST jobs".into(), 2.0),
            ("PUT jobs/status".into(), 2.0),
            ("POST pipelineruns".into(), 1.0),
            ("LIST pods".into(), 6.0),
        ]
        .into();
        let g_bench: Counts = [("POST pipelineruns".into(), 1.0)].into();
        let mut slow = outcome();
        slow.wall_secs = 4.0;
        let gantry = Phase::new("gantry", &workload(), slow, &g_req, &g_bench);
        (baseline, gantry)
    }

    #[test]
    fn gantry_s_own_requests_are_the_difference_without_the_bench() {
        let (baseline, gantry) = phases();
        let mut writes = Phase::new("writes", &workload(), outcome(), &Counts::new(), &Counts::new());
        writes.transitions_per_sec = 0.8;
        let report = Report::new(Some(baseline), Some(gantry), Some(writes), None);
        assert_eq!(report.throughput_ratio, Some(0.5));
        assert_eq!(report.writes_ratio, Some(0.8));
        let own = report.gantry_requests_per_transition.as_ref().unwrap();
        assert_eq!(own, &Counts::from([("LIST pods".into(), 3.0), ("POST jobs".into(), 1.0)]));
        assert_eq!(report.gantry_writes_per_transition, Some(1.0));
        let summary = report.summary();
        assert!(summary.contains("gantry / baseline throughput: 0.50"), "{summary}");
        assert!(summary.contains("LIST pods"), "{summary}");
        assert!(summary.contains("(in all 300.0); 0.30 cores busy"), "{summary}");
        assert!(summary.contains("writes / baseline throughput: 0.80"), "{summary}");
        let cost = RequestCost { requests: 10, cpu_ms: [("etcd".into(), 2.0)].into(), cpu_ms_total: 2.0 };
        let report = Report { request_costs: Some([("POST events".into(), cost)].into()), ..report };
        assert!(report.summary().contains("controller-manager: POST events 2.0"), "{}", report.summary());
    }
}

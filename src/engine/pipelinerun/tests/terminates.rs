//! Every combination terminates: arbitrary runs over every stage kind (run,
//! service, imageBuild, kataInstall) with finally, gating, failFast, cancel,
//! rerun, timeouts and retries, whose Jobs succeed, fail or hang, and whose
//! referenced objects get ready, fail or never come. Each simulated run must
//! reach a final phase in bounded simulated time, with every stage finished,
//! no Job left running and one Job per attempt.

use super::*;
use crate::api::pipelinerun::{ObjectRef, ServiceStage};

/// Simulated reconciles a run may take before it counts as stuck.
const MAX_STEPS: usize = 20_000;
/// The operator-wide default stage timeout the simulation runs with (a
/// hanging Job without any timeout would rightly run forever).
const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Run,
    Service,
    ImageBuild,
    KataInstall,
}

/// What happens to one attempt's Job, or to the object a reference stage waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Succeed,
    Fail,
    /// Never finishes (a service: never gets ready; a reference: never ready).
    Hang,
}

#[derive(Debug, Clone)]
struct StageCase {
    kind: Kind,
    /// Indices of earlier stages it needs (filtered to keep the spec valid).
    needs: Vec<usize>,
    finally: bool,
    gating: Option<bool>,
    retries: u32,
    timeout: Option<&'static str>,
    /// One fate per attempt (the last repeats).
    fates: Vec<Fate>,
}

#[derive(Debug, Clone)]
struct RunCase {
    stages: Vec<StageCase>,
    fail_fast: bool,
    timeout: Option<&'static str>,
    /// Cancel the run at this step.
    cancel_at: Option<usize>,
    /// After it finished, ask to rerun this stage once.
    rerun: Option<usize>,
    /// Seconds between reconciles when nothing asks to wake sooner.
    tick_secs: i64,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![4 => Just(Fate::Succeed), 2 => Just(Fate::Fail), 1 => Just(Fate::Hang)]
}

fn stage_case() -> impl Strategy<Value = StageCase> {
    (
        prop_oneof![4 => Just(Kind::Run), 1 => Just(Kind::Service), 1 => Just(Kind::ImageBuild), 1 => Just(Kind::KataInstall)],
        proptest::collection::vec(0usize..8, 0..3),
        proptest::bool::weighted(0.2),
        proptest::option::of(any::<bool>()),
        0u32..3,
        proptest::option::of(prop_oneof![Just("30s"), Just("5m")]),
        proptest::collection::vec(fate(), 1..4),
    )
        .prop_map(|(kind, needs, finally, gating, retries, timeout, fates)| StageCase {
            kind,
            needs,
            finally,
            gating,
            retries,
            timeout,
            fates,
        })
}

fn run_case() -> impl Strategy<Value = RunCase> {
    (
        proptest::collection::vec(stage_case(), 1..7),
        any::<bool>(),
        proptest::option::of(prop_oneof![Just("20m"), Just("2h")]),
        proptest::option::of(0usize..40),
        proptest::option::of(0usize..7),
        prop_oneof![Just(30i64), Just(300)],
    )
        .prop_map(|(stages, fail_fast, timeout, cancel_at, rerun, tick_secs)| RunCase {
            stages,
            fail_fast,
            timeout,
            cancel_at,
            rerun,
            tick_secs,
        })
}

fn name(i: usize) -> String {
    format!("s{i}")
}

/// The spec for a case, kept valid: needs point backwards (no cycles), only
/// finally stages need finally stages, and each kind gets only its fields.
fn spec_of(case: &RunCase) -> PipelineRunSpec {
    let stages = case
        .stages
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let finally = c.finally && c.kind != Kind::Service;
            let mut needs: Vec<String> = c
                .needs
                .iter()
                .filter(|&&n| n < i && (finally || !(case.stages[n].finally && case.stages[n].kind != Kind::Service)))
                .map(|&n| name(n))
                .collect();
            needs.dedup();
            let container = Some(ContainerRun { image: Some("local/busybox:1".into()), ..Default::default() });
            let mut stage = Stage {
                name: name(i),
                needs,
                finally,
                gating: c.gating,
                timeout: c.timeout.map(str::to_string),
                ..Default::default()
            };
            match c.kind {
                Kind::Run => {
                    stage.run = container;
                    stage.retries = Some(c.retries);
                }
                Kind::Service => {
                    stage.run = container;
                    stage.service = Some(ServiceStage { replicas: 2, readiness_probe: None });
                }
                Kind::ImageBuild => stage.image_build = Some(ObjectRef { name: format!("build-{i}") }),
                Kind::KataInstall => stage.kata_install = Some(ObjectRef { name: format!("kata-{i}") }),
            }
            stage
        })
        .collect();
    PipelineRunSpec {
        stages,
        fail_fast: case.fail_fast,
        timeout: case.timeout.map(str::to_string),
        defaults: crate::api::pipelinerun::StageDefaults { retry_delay_seconds: Some(5), ..Default::default() },
        ..Default::default()
    }
}

/// A simulated cluster for one run: Jobs live until they end by their fate
/// or are deleted; referenced objects follow their stage's first fate.
struct Fated {
    case: RunCase,
    sim: Sim,
}

impl Fated {
    fn new(case: RunCase) -> Self {
        let mut sim = Sim::new(spec_of(&case));
        sim.uid = "0c5b1bd4-run";
        for (i, c) in case.stages.iter().enumerate() {
            let referenced = match c.fates[0] {
                Fate::Succeed => Some(Referenced::Ready(BTreeMap::from([
                    ("image".to_string(), "registry:5000/img:c1".to_string()),
                    ("digest".to_string(), "sha256:00".to_string()),
                    ("runtimeClass".to_string(), "kata-qemu".to_string()),
                ]))),
                Fate::Fail => Some(Referenced::Failed("it failed".into())),
                Fate::Hang => None,
            };
            match (c.kind, referenced) {
                (Kind::ImageBuild, Some(r)) => drop(sim.observed.image_builds.insert(format!("build-{i}"), r)),
                (Kind::KataInstall, Some(r)) => drop(sim.observed.kata_installs.insert(format!("kata-{i}"), r)),
                _ => {}
            }
        }
        sim.settings = Settings { default_stage_timeout: Some(DEFAULT_STAGE_TIMEOUT), ..Default::default() };
        Fated { case, sim }
    }

    /// One reconcile and its actions; returns the plan.
    fn reconcile(&mut self) -> Plan {
        self.sim.step().clone()
    }

    /// Active Jobs end (or get ready) by their fate; returns whether anything changed.
    fn let_jobs_run(&mut self) -> bool {
        let mut changed = false;
        let now = self.sim.now;
        for job in self.sim.world.observed.jobs.iter_mut().filter(|j| j.outcome.state == JobState::Active) {
            let i: usize = job.stage[1..].parse().unwrap();
            let c = &self.case.stages[i];
            let fate = c.fates[(job.attempt as usize - 1).min(c.fates.len() - 1)];
            match (c.kind, fate) {
                (_, Fate::Hang) => {}
                (Kind::Service, Fate::Succeed) if job.outcome.ready_addresses.is_empty() => {
                    job.outcome.ready_addresses = vec!["10.88.0.10".into(), "10.88.0.11".into()];
                    changed = true;
                }
                (Kind::Service, Fate::Succeed) => {}
                (_, Fate::Succeed) => {
                    job.outcome.state = JobState::Succeeded;
                    job.outcome.finished = Some(now);
                    changed = true;
                }
                (_, Fate::Fail) => {
                    job.outcome.state = JobState::Failed;
                    job.outcome.finished = Some(now);
                    job.outcome.message = Some("exited with code 1".into());
                    changed = true;
                }
            }
        }
        changed
    }

    fn finished(&self) -> bool {
        self.sim.status.phase.is_some_and(RunPhase::is_finished)
    }

    /// Reconciles until the run is finished; panics when it is stuck.
    fn run_to_the_end(&mut self, steps: &mut usize) {
        loop {
            *steps += 1;
            assert!(*steps < MAX_STEPS, "no final phase after {MAX_STEPS} reconciles: {:#?}", self.sim.status);
            if self.case.cancel_at == Some(*steps) {
                self.sim.spec.cancel = true;
            }
            let plan = self.reconcile();
            if self.finished() && plan.actions.is_empty() {
                return;
            }
            let changed = self.let_jobs_run();
            let acted = !plan.actions.is_empty();
            let wake = plan.requeue_after;
            assert!(
                changed || acted || wake.is_some() || self.case.cancel_at.is_some_and(|c| c > *steps),
                "deadlock: nothing changes and nothing wakes the run: {:#?}",
                self.sim.status
            );
            // Reconcile at the next wake-up or after a tick, whichever comes
            // first: real controllers also reconcile on unrelated events.
            let tick = Duration::from_secs(self.case.tick_secs.unsigned_abs());
            let step = if changed || acted { Duration::from_millis(100) } else { wake.unwrap_or(tick).min(tick) };
            self.sim.now = crate::engine::duration::later(self.sim.now, step.max(Duration::from_millis(100)));
        }
    }

    /// What must hold of every finished run.
    fn check_final_state(&self) {
        let status = &self.sim.status;
        for stage in &status.stages {
            assert!(stage.phase.is_finished(), "stage {} left {:?}: {:#?}", stage.name, stage.phase, status);
        }
        let active: Vec<&str> = self
            .sim
            .observed
            .jobs
            .iter()
            .filter(|j| j.outcome.state == JobState::Active)
            .map(|j| j.outcome.name.as_str())
            .collect();
        assert!(active.is_empty(), "Jobs left running after the run finished: {active:?}");
        let gating_failed = self
            .sim
            .spec
            .stages
            .iter()
            .zip(&status.stages)
            .any(|(s, st)| s.gating.unwrap_or(true) && st.phase == StagePhase::Failed);
        if gating_failed {
            assert_ne!(status.phase, Some(RunPhase::Succeeded), "a gating stage failed: {:#?}", status);
        }
        let succeeded = status.conditions.iter().find(|c| c.type_ == CONDITION_SUCCEEDED);
        let expected = if status.phase == Some(RunPhase::Succeeded) { "True" } else { "False" };
        assert_eq!(succeeded.map(|c| c.status.as_str()), Some(expected));
    }

    /// When everything works the first time, the run succeeds promptly
    /// with every stage Succeeded (services torn down, not timed out).
    fn check_happy_path(&self) {
        let all_work = self.case.stages.iter().all(|c| c.fates[0] == Fate::Succeed);
        if !all_work || self.case.cancel_at.is_some() {
            return;
        }
        let status = &self.sim.status;
        assert_eq!(status.phase, Some(RunPhase::Succeeded), "{:#?}", status);
        for stage in &status.stages {
            assert_eq!(stage.phase, StagePhase::Succeeded, "stage {}: {:#?}", stage.name, status);
        }
        let took = self.sim.now - t0();
        assert!(took < chrono::TimeDelta::minutes(5), "took {took} of simulated time: {:#?}", status);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_run_reaches_a_final_phase_with_nothing_left_running(case in run_case()) {
        let rerun = case.rerun;
        let mut world = Fated::new(case);
        let mut steps = 0;
        world.run_to_the_end(&mut steps);
        world.check_final_state();
        world.check_happy_path();
        if let Some(i) = rerun.filter(|&i| i < world.sim.spec.stages.len()) {
            if !world.sim.spec.cancel {
                world.sim.rerun = Some(name(i));
                world.run_to_the_end(&mut steps);
                world.check_final_state();
            }
        }
    }
}

//! ImageBuild scenarios on the shared simulated cluster
//! ([`Sim`](crate::engine::testing::Sim)), one file per concern, and the
//! planner under arbitrary input.

mod adoption;
mod builds;
mod fuzz;
mod history;
mod refused;
mod retirement;
mod validation;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::api::common::ContainerRun;
use crate::api::imagebuild::{BuildPhase, ImageBuildSpec, ImageBuildStatus, Lifecycle, PrunePhase};
use crate::engine::job::{JobOutcome, JobState};
use crate::engine::settings::Settings;
use crate::engine::testing::{condition, Sim, World};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The cluster as one ImageBuild (`fedora`) sees it: its spec, its
/// annotation and its Jobs, plus every Job name ever created.
struct Builds {
    spec: ImageBuildSpec,
    generation: i64,
    jobs: Vec<BuildJob>,
    rebuild: Option<String>,
    created: Vec<String>,
}

impl World for Builds {
    type Status = ImageBuildStatus;
    type Action = Action;

    fn plan(&self, status: &ImageBuildStatus, now: DateTime<Utc>) -> Plan {
        let settings = Settings::default();
        let view = View {
            name: "fedora",
            generation: self.generation,
            spec: &self.spec,
            status,
            rebuild: self.rebuild.as_deref(),
            settings: &settings,
        };
        plan(&view, &self.jobs, now)
    }

    fn apply(&mut self, action: &Action, now: DateTime<Utc>) {
        match action {
            Action::CreateJob(l) => {
                self.create(&l.job_name, &l.suffix, l.generation, false, now);
                let job = self.jobs.last_mut().unwrap();
                job.rebuild_request = l.rebuild_request.clone();
                job.image = Some(l.image.clone());
            }
            Action::CreatePruneJob(l) => self.create(&l.job_name, &l.suffix, self.generation, true, now),
            Action::DeleteJob { name } => self.jobs.retain(|j| &j.outcome.name != name),
        }
    }
}

impl Builds {
    fn create(&mut self, name: &str, suffix: &str, generation: i64, prune: bool, now: DateTime<Utc>) {
        assert!(self.jobs.iter().all(|j| j.outcome.name != name), "{name} created twice");
        self.created.push(name.to_string());
        self.jobs.push(BuildJob {
            suffix: suffix.to_string(),
            generation,
            outcome: JobOutcome { name: name.to_string(), created: Some(now), ..Default::default() },
            prune,
            rebuild_request: None,
            image: None,
        });
    }
}

impl Sim<Builds> {
    /// A simulation of `spec` at generation 1, nothing built, at [`t`]`(0)`.
    fn new(spec: ImageBuildSpec) -> Self {
        let mut sim = Sim::of(Builds { spec, generation: 1, jobs: vec![], rebuild: None, created: vec![] });
        sim.now = t(0);
        sim
    }

    /// A simulation whose first build has succeeded.
    fn built(spec: ImageBuildSpec) -> Self {
        let mut sim = Sim::new(spec);
        sim.step();
        sim.build_succeeds();
        sim.step();
        sim
    }

    /// The running build succeeds and reports a digest.
    fn build_succeeds(&mut self) {
        self.finish(JobState::Succeeded, &format!("digest={DIGEST}\n"));
    }

    /// The running build ends in `state`, having reported `outputs`.
    fn finish(&mut self, state: JobState, outputs: &str) {
        let now = self.now;
        let job = self
            .jobs
            .iter_mut()
            .rev()
            .find(|j| !j.prune && j.outcome.state == JobState::Active)
            .expect("a running build");
        job.outcome.state = state;
        job.outcome.finished = Some(now);
        job.outcome.outputs = Some(outputs.to_string());
        job.outcome.message =
            (state == JobState::Failed).then(|| "container build in pod x exited with code 2 (Error)".to_string());
    }

    /// The (status, reason) of condition `type_`.
    fn condition(&self, type_: &str) -> (String, String) {
        condition(&self.status.conditions, type_)
    }
}

/// `secs` after the instant the build scenarios start at: their own, not
/// `testing::t0()`, because the expected suffixes (`c20261121t150000z`) name it.
fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn spec() -> ImageBuildSpec {
    ImageBuildSpec {
        builder: ContainerRun { image: Some("builder:1".into()), ..Default::default() },
        output: "10.88.0.1:5000/fedora-cache".into(),
        suffix_prefix: "c".into(),
        ..Default::default()
    }
}

/// A spec keeping the last `n` builds, deleting older images when `pruner`.
fn keeping(n: u32, pruner: bool) -> ImageBuildSpec {
    let mut s = spec();
    s.retention.keep_last = Some(n);
    if pruner {
        s.retention.pruner = Some(ContainerRun { image: Some("pruner:1".into()), ..Default::default() });
    }
    s
}

fn retiring(permanent: bool) -> Sim<Builds> {
    let mut s = spec();
    s.retention = crate::api::imagebuild::Retention {
        obsolete_after: Some("60s".into()),
        prune_after: Some("30s".into()),
        permanent,
        pruner: Some(ContainerRun { image: Some("pruner:1".into()), ..Default::default() }),
        ..Default::default()
    };
    Sim::built(s)
}

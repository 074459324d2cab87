//! Pass 4: whether a new build is due, and its Job. A build is tied to the
//! generation it built and a rebuild request to the annotation value it
//! answered, so a failed build is not retried by itself and a request is
//! honoured once; nothing starts while a build runs.

use super::{Action, Planning};
use crate::api::imagebuild::{BuildRecord, BuildRecordPhase, ImageBuildStatus};
use crate::engine::duration::parse_duration;
use crate::engine::imagebuild::suffix::build_suffix;
use crate::engine::imagebuild::view::BuildLaunch;
use crate::engine::naming::build_job_name;

/// Why a build starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildTrigger {
    /// Nothing was built yet.
    First,
    /// The spec changed (a new `metadata.generation`).
    SpecChanged { from: i64, to: i64 },
    /// The `gantry.dev/rebuild` annotation asked for it (its value).
    Requested(String),
}

impl BuildTrigger {
    /// Why the build started, as its record says.
    fn message(&self) -> String {
        match self {
            BuildTrigger::First => "first build".into(),
            BuildTrigger::SpecChanged { from, to } => format!("spec changed (generation {from} -> {to})"),
            BuildTrigger::Requested(v) => format!("rebuild requested ({v})"),
        }
    }
}

/// Whether a new build is due, and why.
pub fn build_due(
    generation: i64,
    rebuild_request: Option<&str>,
    handled_request: Option<&str>,
    status: &ImageBuildStatus,
) -> Option<BuildTrigger> {
    let Some(last) = status.builds.last() else { return Some(BuildTrigger::First) };
    if last.phase == BuildRecordPhase::Building {
        return None;
    }
    if let Some(built) = last.generation {
        if built != generation {
            return Some(BuildTrigger::SpecChanged { from: built, to: generation });
        }
    }
    match rebuild_request {
        Some(request) if Some(request) != handled_request => Some(BuildTrigger::Requested(request.to_string())),
        _ => None,
    }
}

impl Planning<'_> {
    /// Starts the build that is due, if any: a new record (Building) and
    /// its Job. Whatever started it, it answers the current rebuild request.
    pub(super) fn start(&mut self) {
        let (view, status, now) = (self.view, &mut self.status, self.now);
        let Some(trigger) = build_due(view.generation, view.rebuild, status.handled_rebuild.as_deref(), status) else {
            return;
        };
        let suffix = build_suffix(&view.spec.suffix_prefix, now, &status.builds);
        let launch = BuildLaunch {
            build: view.name.to_string(),
            job_name: build_job_name(view.name, &suffix),
            suffix: suffix.clone(),
            generation: view.generation,
            image: format!("{}:{suffix}", view.spec.output),
            timeout: view.spec.timeout.as_deref().and_then(|t| parse_duration(t).ok()),
            nested_virt: if view.spec.nested_virt { view.settings.nested_virt.clone() } else { None },
            rebuild_request: view.rebuild.map(str::to_string),
        };
        if let Some(request) = view.rebuild {
            status.handled_rebuild = Some(request.to_string());
        }
        status.builds.push(BuildRecord {
            suffix,
            job_name: launch.job_name.clone(),
            phase: BuildRecordPhase::Building,
            image: Some(launch.image.clone()),
            generation: Some(view.generation),
            start_time: Some(now),
            message: Some(trigger.message()),
            ..Default::default()
        });
        self.actions.push(Action::CreateJob(Box::new(launch)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(suffix: &str, phase: BuildRecordPhase, generation: i64) -> BuildRecord {
        BuildRecord {
            suffix: suffix.into(),
            job_name: format!("img-{suffix}"),
            phase,
            generation: Some(generation),
            ..Default::default()
        }
    }

    #[test]
    fn a_build_is_due_first_on_spec_change_and_once_per_rebuild_request() {
        let mut status = ImageBuildStatus::default();
        assert_eq!(build_due(1, None, None, &status), Some(BuildTrigger::First));
        status.builds.push(record("c1", BuildRecordPhase::Building, 1));
        assert_eq!(build_due(2, Some("x"), None, &status), None, "never while one is building");
        status.builds[0].phase = BuildRecordPhase::Failed;
        assert_eq!(build_due(1, None, None, &status), None, "a failed build is not retried by itself");
        assert_eq!(build_due(2, None, None, &status), Some(BuildTrigger::SpecChanged { from: 1, to: 2 }));
        assert_eq!(build_due(1, Some("now"), None, &status), Some(BuildTrigger::Requested("now".into())));
        assert_eq!(build_due(1, Some("now"), Some("now"), &status), None, "a request is honoured once");
    }
}

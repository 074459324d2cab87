//! Pass 7: the retention lifecycle of the latest image. Used → Obsolete
//! (unused for `obsoleteAfter`) → a prune Job (after `pruneAfter` more) →
//! Pruned. One prune Job per image, adopted when its status write was lost;
//! a failed one is reported, not retried.

use super::{Action, Planning};
use crate::api::imagebuild::{PrunePhase, PruneRecord};
use crate::engine::conditions::{set_condition, ConditionStatus, MAX_MESSAGE_BYTES};
use crate::engine::imagebuild::conditions::READY;
use crate::engine::imagebuild::lifecycle::lifecycle;
use crate::engine::imagebuild::reasons;
use crate::engine::imagebuild::view::PruneLaunch;
use crate::engine::job::{disappeared, JobState};
use crate::engine::naming::{build_job_name, ANNOTATION_REBUILD};
use crate::engine::text::truncate;

impl Planning<'_> {
    /// Tracks the prune Job of the latest image, moves its lifecycle on
    /// (waking when it next changes) and starts the prune Job when due.
    pub(super) fn retire(&mut self) {
        let Some(image) = self.status.latest_image.clone() else { return };
        let suffix = image.rsplit(':').next().unwrap_or_default().to_string();
        self.adopt_prune_job(&image, &suffix);
        self.track_prune_job(&image);
        let (view, now) = (self.view, self.now);
        let status = &mut self.status;
        let this_image = status.prune.as_ref().filter(|p| p.image == image);
        let pruned = this_image.is_some_and(|p| p.phase == PrunePhase::Succeeded);
        let used = status.last_used.or_else(|| status.builds.iter().rev().find_map(|b| b.completion_time));
        let state = lifecycle(&view.spec.retention, used, pruned, now);
        status.lifecycle = Some(state.lifecycle);
        self.wake.at_opt(state.next_change);
        if pruned {
            let message =
                format!("{image} was deleted by its prune Job; annotate {ANNOTATION_REBUILD} to build it again");
            let generation = Some(view.generation);
            set_condition(
                &mut status.conditions,
                READY,
                ConditionStatus::False,
                reasons::PRUNED,
                &message,
                generation,
                now,
            );
        }
        let (Some(_), true, None) = (&view.spec.retention.pruner, state.prune_due, this_image) else { return };
        let launch = PruneLaunch {
            build: view.name.to_string(),
            job_name: build_job_name(view.name, &format!("prune-{suffix}")),
            suffix,
            image: image.clone(),
            digest: status.digest.clone(),
        };
        status.prune = Some(PruneRecord {
            image,
            job_name: launch.job_name.clone(),
            phase: PrunePhase::Running,
            start_time: Some(now),
            ..Default::default()
        });
        self.actions.push(Action::CreatePruneJob(Box::new(launch)));
    }

    /// A prune Job of `image` the status does not know (its write was
    /// lost): take it over.
    fn adopt_prune_job(&mut self, image: &str, suffix: &str) {
        let Some(job) = self.observed.iter().find(|j| j.prune && j.suffix == suffix) else { return };
        if self.status.prune.as_ref().is_none_or(|p| p.job_name != job.outcome.name) {
            self.status.prune = Some(PruneRecord {
                image: image.to_string(),
                job_name: job.outcome.name.clone(),
                phase: PrunePhase::Running,
                start_time: job.outcome.created,
                ..Default::default()
            });
        }
    }

    /// The running prune Job of `image` takes its Job's outcome.
    fn track_prune_job(&mut self, image: &str) {
        let Some(prune) = self.status.prune.as_mut().filter(|p| p.image == image && p.phase == PrunePhase::Running)
        else {
            return;
        };
        match self.observed.iter().find(|j| j.prune && j.outcome.name == prune.job_name) {
            None => {
                prune.phase = PrunePhase::Failed;
                prune.message = Some(disappeared(&prune.job_name));
                prune.completion_time = Some(self.now);
            }
            Some(job) if job.outcome.state == JobState::Active => {}
            Some(job) => {
                let ok = job.outcome.state == JobState::Succeeded;
                prune.phase = if ok { PrunePhase::Succeeded } else { PrunePhase::Failed };
                prune.message =
                    (!ok).then(|| truncate(job.outcome.message.as_deref().unwrap_or("failed"), MAX_MESSAGE_BYTES));
                prune.completion_time = Some(job.outcome.finished.unwrap_or(self.now));
            }
        }
    }
}

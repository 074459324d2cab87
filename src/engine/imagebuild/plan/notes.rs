//! Pass 8: the Events of what this reconcile changed, against the status
//! as last written: each build and the prune Job as their phase moves, an
//! invalid spec once, the latest image's lifecycle as it moves, and each
//! image pruned because its build left the history.

use super::{record_image, Action, Planning};
use crate::api::imagebuild::{BuildPhase, BuildRecordPhase, Lifecycle, PrunePhase};
use crate::engine::imagebuild::conditions::READY;
use crate::engine::imagebuild::events::{self, lifecycle_reason};
use crate::engine::imagebuild::DEFAULT_KEEP_LAST;
use crate::engine::note::Note;

impl Planning<'_> {
    /// The Events to publish, in order.
    pub(super) fn notes(&self) -> Vec<Note> {
        let mut notes = self.build_notes();
        notes.extend(self.invalid_spec_note());
        notes.extend(self.prune_note());
        notes.extend(self.lifecycle_note());
        notes.extend(self.history_prune_notes());
        notes
    }

    /// One per build whose phase moved (or that is new).
    fn build_notes(&self) -> Vec<Note> {
        let before = self.view.status;
        let mut notes = Vec::new();
        for record in &self.status.builds {
            let old = before.builds.iter().find(|b| b.job_name == record.job_name);
            if old.is_some_and(|o| o.phase == record.phase) {
                continue;
            }
            let (warning, reason) = match record.phase {
                BuildRecordPhase::Building => (false, events::BUILD_STARTED),
                BuildRecordPhase::Ready => (false, events::BUILD_SUCCEEDED),
                BuildRecordPhase::Failed => (true, events::BUILD_FAILED),
            };
            let mut message = record_image(self.view, record);
            if let Some(m) = &record.message {
                message.push_str(": ");
                message.push_str(m);
            }
            notes.push(Note::new(warning, reason, message).about_job(Some(record.job_name.clone())));
        }
        notes
    }

    /// When the spec just turned out invalid before anything was built.
    fn invalid_spec_note(&self) -> Option<Note> {
        let (before, status) = (self.view.status, &self.status);
        let newly_failed = before.phase != Some(BuildPhase::Failed) && status.phase == Some(BuildPhase::Failed);
        if !newly_failed || !status.builds.is_empty() {
            return None;
        }
        let message =
            status.conditions.iter().find(|c| c.type_ == READY).map(|c| c.message.clone()).unwrap_or_default();
        Some(Note::warning(events::INVALID_SPEC, message))
    }

    /// When the latest image's prune Job is new or its phase moved.
    fn prune_note(&self) -> Option<Note> {
        let old_prune = self.view.status.prune.as_ref().map(|p| (&p.job_name, &p.phase));
        let prune = self.status.prune.as_ref().filter(|p| old_prune != Some((&p.job_name, &p.phase)))?;
        let (warning, reason, what) = match prune.phase {
            PrunePhase::Running => (false, events::PRUNE_STARTED, "deleting"),
            PrunePhase::Succeeded => (false, events::PRUNE_SUCCEEDED, "deleted"),
            PrunePhase::Failed => (true, events::PRUNE_FAILED, "could not delete"),
        };
        let mut message = format!("{what} {}", prune.image);
        if let Some(m) = &prune.message {
            message.push_str(": ");
            message.push_str(m);
        }
        Some(Note::new(warning, reason, message).about_job(Some(prune.job_name.clone())))
    }

    /// When the latest image's lifecycle moved.
    fn lifecycle_note(&self) -> Option<Note> {
        let status = &self.status;
        if self.view.status.lifecycle == status.lifecycle {
            return None;
        }
        let (Some(l), Some(image)) = (status.lifecycle, status.latest_image.as_deref()) else { return None };
        let retention = &self.view.spec.retention;
        let message = match l {
            Lifecycle::Used => format!("{image} is in use"),
            Lifecycle::Obsolete => format!(
                "{image} was not used for {} (retention.obsoleteAfter); last used {}",
                retention.obsolete_after.as_deref().unwrap_or("?"),
                status.last_used.map_or("never (counted from its build)".to_string(), |t| t.to_rfc3339()),
            ),
            Lifecycle::Pruned => format!("{image} was deleted from its registry"),
            Lifecycle::Permanent => format!("{image} is kept forever (retention.permanent)"),
        };
        Some(Note::normal(lifecycle_reason(l), message))
    }

    /// One per image pruned because its build left the history (those
    /// prune Jobs are not the latest image's, so status does not track them).
    fn history_prune_notes(&self) -> Vec<Note> {
        let keep = self.view.spec.retention.keep_last.unwrap_or(DEFAULT_KEEP_LAST);
        self.actions
            .iter()
            .filter_map(|action| match action {
                Action::CreatePruneJob(prune)
                    if self.status.prune.as_ref().is_none_or(|p| p.job_name != prune.job_name) =>
                {
                    let message =
                        format!("deleting {}: older than the last {keep} builds (retention.keepLast)", prune.image);
                    Some(Note::normal(events::PRUNE_STARTED, message).about_job(Some(prune.job_name.clone())))
                }
                _ => None,
            })
            .collect()
    }
}

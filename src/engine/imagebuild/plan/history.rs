//! Pass 5: the history keeps the last `retention.keepLast` builds, and the
//! build of `latestImage` while it is the image in use (so status holds at
//! most one more). Builds that leave it have their Jobs deleted; with a
//! pruner, their images leave the registry too (one prune Job each, not
//! tracked in status), never the image in use.

use super::{record_image, Action, Planning};
use crate::api::imagebuild::{BuildRecord, BuildRecordPhase};
use crate::engine::imagebuild::view::PruneLaunch;
use crate::engine::imagebuild::DEFAULT_KEEP_LAST;
use crate::engine::naming::build_job_name;

impl Planning<'_> {
    /// Trims the history, then deletes what left it.
    pub(super) fn keep_history(&mut self) {
        let dropped = self.trim_history();
        self.prune_dropped(&dropped);
    }

    /// Drops the builds beyond `keepLast`, oldest first, except the one of
    /// the image in use; returns the records that left.
    fn trim_history(&mut self) -> Vec<BuildRecord> {
        let view = self.view;
        let status = &mut self.status;
        let keep = view.spec.retention.keep_last.unwrap_or(DEFAULT_KEEP_LAST) as usize;
        let older = status.builds.len().saturating_sub(keep);
        let latest = status.latest_image.clone();
        let (mut index, mut dropped) = (0, Vec::new());
        status.builds.retain(|b| {
            let in_use = latest.as_deref() == Some(record_image(view, b).as_str());
            index += 1;
            if index > older || in_use {
                return true;
            }
            dropped.push(b.clone());
            false
        });
        dropped
    }

    /// Deletes the Jobs of `dropped` builds and, with a pruner (and unless
    /// images are permanent), prunes the images they built.
    fn prune_dropped(&mut self, dropped: &[BuildRecord]) {
        self.actions.extend(dropped.iter().map(|b| Action::DeleteJob { name: b.job_name.clone() }));
        let retention = &self.view.spec.retention;
        if retention.pruner.is_none() || retention.permanent {
            return;
        }
        for record in dropped.iter().filter(|b| b.phase == BuildRecordPhase::Ready) {
            let image = record_image(self.view, record);
            if self.status.latest_image.as_deref() == Some(image.as_str()) {
                continue;
            }
            self.actions.push(Action::CreatePruneJob(Box::new(PruneLaunch {
                build: self.view.name.to_string(),
                job_name: build_job_name(self.view.name, &format!("prune-{}", record.suffix)),
                suffix: record.suffix.clone(),
                image,
                digest: record.digest.clone(),
            })));
        }
    }
}

//! Pass 3: the running build takes its Job's outcome. It succeeds with a
//! well-formed digest, fails with the reason the Job or the builder gave,
//! fails when its Job disappeared, and is stopped past its timeout (plus
//! the grace); a Job that runs on wakes the plan at its deadline.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{record_image, Action, Planning};
use crate::api::imagebuild::{BuildRecord, BuildRecordPhase};
use crate::engine::conditions::MAX_MESSAGE_BYTES;
use crate::engine::duration::{format_duration, parse_duration};
use crate::engine::imagebuild::view::BuildJob;
use crate::engine::imagebuild::BUILD_OUTPUTS;
use crate::engine::job::{disappeared, stop_deadline, JobState};
use crate::engine::outputs::parse_outputs;
use crate::engine::text::truncate;
use crate::engine::wake::Wake;

impl Planning<'_> {
    /// Brings the running build (the newest record, while Building) up to
    /// date with its Job; a build that became Ready is the latest image.
    pub(super) fn integrate(&mut self) {
        let Some(last) = self.status.builds.last_mut().filter(|b| b.phase == BuildRecordPhase::Building) else {
            return;
        };
        let job = self.observed.iter().find(|j| j.outcome.name == last.job_name);
        let timeout = self.view.spec.timeout.as_deref().and_then(|t| parse_duration(t).ok());
        let integration = Integration { record: &mut *last, timeout, now: self.now };
        integration.apply(job, &mut self.actions, &mut self.wake);
        if last.phase == BuildRecordPhase::Ready {
            self.status.latest_image = Some(record_image(self.view, last));
            self.status.digest = last.digest.clone();
        }
    }
}

/// The running build's record, being brought up to date.
struct Integration<'r> {
    record: &'r mut BuildRecord,
    timeout: Option<Duration>,
    now: DateTime<Utc>,
}

impl Integration<'_> {
    fn apply(self, job: Option<&BuildJob>, actions: &mut Vec<Action>, wake: &mut Wake) {
        let Some(job) = job else {
            let why = disappeared(&self.record.job_name);
            return self.fail(why, None);
        };
        let finished = job.outcome.finished;
        match job.outcome.state {
            JobState::Active => {
                let Some(timeout) = self.timeout else { return };
                let deadline = stop_deadline(job.outcome.created.unwrap_or(self.now), timeout);
                if self.now >= deadline {
                    actions.push(Action::DeleteJob { name: job.outcome.name.clone() });
                    let why =
                        format!("build did not finish within {} (still Pending or running)", format_duration(timeout));
                    self.fail(why, None);
                } else {
                    wake.at(deadline);
                }
            }
            JobState::Failed => {
                let why = job.outcome.message.clone().unwrap_or_else(|| format!("Job {} failed", job.outcome.name));
                self.fail(why, finished)
            }
            JobState::Succeeded => {
                let declared: Vec<String> = BUILD_OUTPUTS.iter().map(|s| s.to_string()).collect();
                match parse_outputs(job.outcome.outputs.as_deref().unwrap_or(""), &declared) {
                    Err(e) => self.fail(format!("bad outputs: {e}"), finished),
                    Ok(outputs) => match outputs.get("digest") {
                        Some(d) if is_digest(d) => self.succeed(d.clone(), finished),
                        Some(d) => {
                            self.fail(format!("the builder reported digest {d:?}, not sha256:<64 hex>"), finished)
                        }
                        None => self.fail(
                            "the builder reported no digest (append digest=sha256:... to $GANTRY_OUTPUTS)".into(),
                            finished,
                        ),
                    },
                }
            }
        }
    }

    fn succeed(self, digest: String, at: Option<DateTime<Utc>>) {
        self.record.phase = BuildRecordPhase::Ready;
        self.record.digest = Some(digest);
        self.record.message = None;
        self.record.completion_time = Some(at.unwrap_or(self.now));
    }

    fn fail(self, why: String, at: Option<DateTime<Utc>>) {
        self.record.phase = BuildRecordPhase::Failed;
        self.record.message = Some(truncate(&why, MAX_MESSAGE_BYTES));
        self.record.completion_time = Some(at.unwrap_or(self.now));
    }
}

/// Whether `d` is a `sha256:` digest.
fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

//! Plans one reconcile of a KataInstall. Each pass is one file, an
//! `impl Planner` block that reads the view, what was observed and what the
//! earlier passes found, and adds to the status, the actions, the Events and
//! the wake time. In order:
//!
//! A KataInstall being deleted takes one pass only, [`cleanup`]: stop new
//! Kata pods, stop the installer, run its cleanup on every node it ran on,
//! then release the finalizer. Otherwise:
//!
//! 1. [`invalid_spec`]: an invalid spec makes nothing (the plan ends here);
//! 2. [`tenancy`]: an earlier KataInstall on the same node or shim, or a
//!    RuntimeClass someone else owns, is a conflict: nothing is made (ends);
//! 3. [`finalizer`]: the finalizer goes on before anything is made (ends
//!    this reconcile; the update wakes the next);
//! 4. [`installer`]: the install DaemonSet, when missing or made from an
//!    older spec;
//! 5. [`nodes`]: each selected node's state and marks; nodes that left the
//!    selector are cleaned up; the cleanup DaemonSet while any needs it;
//! 6. [`runtime_classes`]: one per shim once Kata runs somewhere; stale ones go;
//! 7. [`smoke`]: the smoke test's next step;
//! 8. [`conclude`]: the `Installed` and `Verified` conditions, the node list
//!    and the phase;
//! 9. events: the Event of a phase change ([`super::events`]).
//!
//! Every plan looks again after [`RESYNC`] at the latest.

mod cleanup;
mod conclude;
mod finalizer;
mod installer;
mod invalid_spec;
mod nodes;
mod runtime_classes;
mod smoke;
pub mod tenancy;

use chrono::{DateTime, Utc};

use super::{events, install_config, validate, Action, Observed, Plan, View, RESYNC};
use super::{CONDITION_INSTALLED, CONDITION_VERIFIED};
use crate::api::katainstall::{KataInstallStatus, NodeInstallStatus};
use crate::engine::conditions::{set_condition, ConditionStatus, MAX_MESSAGE_BYTES};
use crate::engine::note::Note;
use crate::engine::text::truncate;
use crate::engine::wake::Wake;

pub use smoke::smoke_key;

/// Plans one reconcile of the KataInstall `view`, from what was `observed`, at `now`.
pub fn plan(view: &View, observed: &Observed, now: DateTime<Utc>) -> Plan {
    let mut planner = Planner::new(view, observed, now);
    if view.deleting_since.is_some() {
        planner.cleanup();
        return planner.finish();
    }
    if let Err(e) = validate(view.name, view.spec) {
        planner.invalid_spec(&e);
        return planner.finish();
    }
    let conflicts = tenancy::conflicts(view, observed);
    if !conflicts.is_empty() {
        planner.conflict(&conflicts);
        return planner.finish();
    }
    if !view.has_finalizer {
        planner.add_finalizer();
        return planner.finish();
    }
    planner.installer();
    planner.nodes();
    planner.runtime_classes();
    planner.smoke();
    planner.conclude();
    planner.events();
    planner.finish()
}

/// One reconcile's planning: what it reads, what it has decided so far,
/// and what the passes hand on to the later ones.
struct Planner<'a> {
    view: &'a View<'a>,
    observed: &'a Observed,
    now: DateTime<Utc>,
    /// The hash of the spec the installer DaemonSets are made from.
    config: String,
    status: KataInstallStatus,
    actions: Vec<Action>,
    notes: Vec<Note>,
    wake: Wake,
    /// From [`nodes`]: the selected nodes' entries.
    selected: Vec<NodeInstallStatus>,
    /// From [`nodes`]: the entries of nodes cleaned up after leaving the selector.
    leaving: Vec<NodeInstallStatus>,
    /// From [`nodes`]: the names of the selected nodes with Kata installed.
    installed: Vec<String>,
    /// From [`nodes`]: the selected nodes where the installer failed.
    failed: Vec<NodeInstallStatus>,
    /// From [`smoke`]: the `Verified` condition (status, reason, message).
    verified: (ConditionStatus, &'static str, String),
}

impl<'a> Planner<'a> {
    fn new(view: &'a View<'a>, observed: &'a Observed, now: DateTime<Utc>) -> Self {
        let mut status = view.status.clone();
        status.observed_generation = Some(view.generation);
        let mut wake = Wake::new(now);
        wake.after(RESYNC);
        Planner {
            view,
            observed,
            now,
            config: install_config(view.spec),
            status,
            actions: Vec::new(),
            notes: Vec::new(),
            wake,
            selected: Vec::new(),
            leaving: Vec::new(),
            installed: Vec::new(),
            failed: Vec::new(),
            verified: (ConditionStatus::Unknown, "", String::new()),
        }
    }

    /// Sets condition `type_` for this generation, now.
    fn set_condition(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: &str) {
        let generation = Some(self.view.generation);
        set_condition(&mut self.status.conditions, type_, status, reason, message, generation, self.now);
    }

    /// Sets both `Installed` and `Verified` False with `reason` and `message`.
    fn both_false(&mut self, reason: &str, message: &str) {
        for condition in [CONDITION_INSTALLED, CONDITION_VERIFIED] {
            self.set_condition(condition, ConditionStatus::False, reason, message);
        }
    }

    /// Whether the last written `Installed` condition already says `message`
    /// with `reason`, so its Warning was published before. The condition
    /// keeps the message cut to fit status: compare with that.
    fn already_said(&self, reason: &str, message: &str) -> bool {
        let kept = truncate(message, MAX_MESSAGE_BYTES);
        let conditions = &self.view.status.conditions;
        conditions.iter().any(|c| c.type_ == CONDITION_INSTALLED && c.reason == reason && c.message == kept)
    }

    /// Events: a phase change, once every pass had its say.
    fn events(&mut self) {
        let note = events::phase_changed(self.view.status.phase, &self.status);
        self.notes.extend(note);
    }

    fn finish(self) -> Plan {
        Plan { status: self.status, actions: self.actions, notes: self.notes, requeue_after: self.wake.requeue_after() }
    }
}

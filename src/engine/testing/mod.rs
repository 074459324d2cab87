//! One kit for every planner's tests: a fixed clock, condition lookups and
//! a generic simulated cluster ([`Sim`]) that applies a plan's actions to an
//! in-memory world, so scenarios read as "step, let a Job end, step".

use std::ops::{Deref, DerefMut};

use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

pub mod arbitrary;

use crate::engine::note::Note;
use crate::engine::plan::Plan;

/// The clock every scenario starts at.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// `t0()` plus `secs` seconds.
pub fn t(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

/// The (status, reason) of condition `type_`; panics when it is missing.
pub fn condition(conditions: &[Condition], type_: &str) -> (String, String) {
    let c = conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone())
}

/// What a kind's simulated cluster must do: plan from what it holds, and
/// apply one of the plan's actions to itself.
pub trait World {
    /// The kind's status.
    type Status: Clone + Default;
    /// The kind's action.
    type Action;
    /// One reconcile's plan from the last written `status` at `now`.
    fn plan(&self, status: &Self::Status, now: DateTime<Utc>) -> Plan<Self::Status, Self::Action>;
    /// Applies one action at `now` (create a Job, delete one, ...).
    fn apply(&mut self, action: &Self::Action, now: DateTime<Utc>);
}

/// A simulated cluster: the world (spec and observed objects), the status
/// as last written, the clock and every Event published so far. Derefs to
/// the world, so tests read `sim.observed` as well as `sim.status`.
pub struct Sim<W: World> {
    /// The spec and the objects the planner sees.
    pub world: W,
    /// The status as last written.
    pub status: W::Status,
    /// The clock.
    pub now: DateTime<Utc>,
    /// Every Event published so far.
    pub notes: Vec<Note>,
    /// The last plan.
    pub last: Option<Plan<W::Status, W::Action>>,
}

impl<W: World> Sim<W> {
    /// A simulation of `world` with an empty status at [`t0`].
    pub fn of(world: W) -> Self {
        Sim { world, status: W::Status::default(), now: t0(), notes: Vec::new(), last: None }
    }

    /// One reconcile: plan, apply every action, write the status, publish.
    pub fn step(&mut self) -> &Plan<W::Status, W::Action> {
        let plan = self.world.plan(&self.status, self.now);
        for action in &plan.actions {
            self.world.apply(action, self.now);
        }
        self.status = plan.status.clone();
        self.notes.extend(plan.notes.iter().cloned());
        self.last.insert(plan)
    }

    /// Moves the clock `secs` seconds on.
    pub fn advance(&mut self, secs: i64) {
        self.now += chrono::Duration::seconds(secs);
    }
}

impl<W: World> Deref for Sim<W> {
    type Target = W;
    fn deref(&self) -> &W {
        &self.world
    }
}

impl<W: World> DerefMut for Sim<W> {
    fn deref_mut(&mut self) -> &mut W {
        &mut self.world
    }
}

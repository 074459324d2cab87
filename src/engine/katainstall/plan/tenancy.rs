//! Who may install where. Two KataInstalls cannot both install on one node
//! (their installers and node marks would fight) or list one shim (both
//! would own the RuntimeClass `kata-<shim>`): the earlier one (by
//! creationTimestamp, then name) goes ahead, the later one is in
//! `Conflict` and creates nothing until the earlier one is gone. A
//! RuntimeClass `kata-<shim>` that this KataInstall does not own (by UID)
//! is never taken over: that is a `Conflict` too.

use std::fmt;

use super::Planner;
use crate::api::katainstall::KataPhase;
use crate::engine::katainstall::view::{NodeInfo, Observed, OtherInstall, View};
use crate::engine::katainstall::{reasons, runtime_class_name, validate};
use crate::engine::note::Note;

/// How often a KataInstall in conflict looks again (besides the watches).
pub const CONFLICT_RESYNC: std::time::Duration = std::time::Duration::from_secs(30);
/// Most node names one conflict message lists.
const MAX_NODES_NAMED: usize = 5;

/// Why a KataInstall may not install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// An earlier KataInstall selects (or still cleans up) these nodes too.
    SharedNodes { install: String, nodes: Vec<String> },
    /// An earlier KataInstall lists these shims too.
    SharedShims { install: String, shims: Vec<String> },
    /// This RuntimeClass exists and is not this KataInstall's.
    ForeignRuntimeClass { name: String },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::SharedNodes { install, nodes } => {
                let named: Vec<&str> = nodes.iter().take(MAX_NODES_NAMED).map(String::as_str).collect();
                let more = nodes.len().saturating_sub(MAX_NODES_NAMED);
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                write!(f, "node(s) {}{more} also selected by KataInstall {install}, created earlier", named.join(", "))
            }
            Conflict::SharedShims { install, shims } => write!(
                f,
                "shim(s) {} also listed by KataInstall {install}, created earlier (its RuntimeClasses have those names)",
                shims.join(", ")
            ),
            Conflict::ForeignRuntimeClass { name } => {
                write!(f, "RuntimeClass {name} exists and is not this KataInstall's; Gantry leaves it alone")
            }
        }
    }
}

/// Whether `other` goes first: created earlier, or at the same time with a
/// smaller name. (A missing timestamp counts as earliest.)
fn is_earlier(other: &OtherInstall, view: &View) -> bool {
    (other.created, other.name.as_str()) < (view.created, view.name)
}

/// The nodes `other` has a claim on: those it selects and those its
/// installer ran on (a cleanup may still run there).
fn claimed_by<'a>(other: &OtherInstall, nodes: &'a [NodeInfo]) -> impl Iterator<Item = &'a NodeInfo> {
    let name = other.name.clone();
    let selector = other.spec.node_selector.clone();
    nodes.iter().filter(move |n| n.selected_by(&selector) || n.owner.as_deref() == Some(name.as_str()))
}

/// Every reason this KataInstall may not install; empty when it may.
pub fn conflicts(view: &View, observed: &Observed) -> Vec<Conflict> {
    let mut found = Vec::new();
    let mut earlier: Vec<&OtherInstall> = observed
        .other_installs
        .iter()
        .filter(|o| o.name != view.name && is_earlier(o, view))
        // An invalid spec installs nothing, so it claims nothing.
        .filter(|o| validate(&o.name, &o.spec).is_ok())
        .collect();
    earlier.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    for other in earlier {
        let nodes: Vec<String> = claimed_by(other, &observed.nodes)
            .filter(|n| n.selected_by(&view.spec.node_selector))
            .map(|n| n.name.clone())
            .collect();
        if !nodes.is_empty() {
            found.push(Conflict::SharedNodes { install: other.name.clone(), nodes });
        }
        let shims: Vec<String> = view.spec.shims.iter().filter(|s| other.spec.shims.contains(s)).cloned().collect();
        if !shims.is_empty() {
            found.push(Conflict::SharedShims { install: other.name.clone(), shims });
        }
    }
    for shim in &view.spec.shims {
        let name = runtime_class_name(shim);
        if observed.foreign_runtime_classes.contains(&name) {
            found.push(Conflict::ForeignRuntimeClass { name });
        }
    }
    found
}

impl Planner<'_> {
    /// The plan of a KataInstall in conflict: no action at all (what it
    /// made before the conflict arose stays until it clears or the
    /// KataInstall is deleted), both conditions False with reason
    /// `Conflict`, Degraded, and a Warning when the conflict is new or
    /// changed; it looks again after [`CONFLICT_RESYNC`].
    pub(super) fn conflict(&mut self, conflicts: &[Conflict]) {
        let message = conflicts.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        self.both_false(reasons::CONFLICT, &message);
        self.status.phase = Some(KataPhase::Degraded);
        if !self.already_said(reasons::CONFLICT, &message) {
            self.notes.push(Note::warning(reasons::CONFLICT, message));
        }
        self.wake.after(CONFLICT_RESYNC);
    }
}

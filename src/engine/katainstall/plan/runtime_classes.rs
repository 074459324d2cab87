//! RuntimeClasses: one `kata-<shim>` per shim, applied once Kata runs on
//! some node (until then, status lists only those that exist); one of this
//! KataInstall's RuntimeClasses whose shim is no longer listed is deleted.
//! Someone else's RuntimeClass is never touched (see [`super::tenancy`]).

use super::Planner;
use crate::engine::katainstall::{runtime_class_config, runtime_class_name, Action};

impl Planner<'_> {
    /// Decides which RuntimeClasses are applied or deleted, and lists them.
    pub(super) fn runtime_classes(&mut self) {
        let (spec, observed) = (self.view.spec, self.observed);
        let wanted: Vec<String> = spec.shims.iter().map(|s| runtime_class_name(s)).collect();
        if !self.installed.is_empty() {
            for shim in &spec.shims {
                let config = runtime_class_config(spec, shim);
                if observed.runtime_classes.get(&runtime_class_name(shim)) != Some(&Some(config.clone())) {
                    self.actions.push(Action::ApplyRuntimeClass { shim: shim.clone(), config });
                }
            }
            self.status.runtime_classes = wanted.clone();
        } else {
            self.status.runtime_classes =
                wanted.iter().filter(|n| observed.runtime_classes.contains_key(*n)).cloned().collect();
        }
        for name in observed.runtime_classes.keys().filter(|n| !wanted.contains(n)) {
            self.actions.push(Action::DeleteRuntimeClass { name: name.clone() });
        }
    }
}

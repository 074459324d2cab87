//! Which objects belong to which parent: the UID in the child's controller
//! owner reference, never a label or a name alone. Labels only narrow what
//! is listed; a Job with a run's labels but another controller (the orphan
//! of an earlier run of the same name, or anyone's) is not the run's. Pure.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The UID of the object's controller (its owner reference with
/// `controller: true`), if it has one.
pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    let refs = meta.owner_references.as_deref().unwrap_or_default();
    refs.iter().find(|r| r.controller == Some(true)).map(|r| r.uid.as_str())
}

/// Whether the object with `uid` is the controller of `meta`'s object.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_uid(meta) == Some(uid)
}

/// Jobs controlled by `owner_uid`, and the names of the others.
pub fn split_by_owner(jobs: Vec<Job>, owner_uid: &str) -> (Vec<Job>, BTreeSet<String>) {
    let (owned, foreign): (Vec<Job>, Vec<Job>) =
        jobs.into_iter().partition(|j| is_controlled_by(&j.metadata, owner_uid));
    (owned, foreign.into_iter().filter_map(|j| j.metadata.name).collect())
}

/// Who holds a name Gantry wanted, for the conflict message.
pub fn holder(meta: &ObjectMeta) -> String {
    let refs = meta.owner_references.as_deref().unwrap_or_default();
    match refs.iter().find(|r| r.controller == Some(true)) {
        Some(r) => format!("its controller is {} {} (uid {})", r.kind, r.name, r.uid),
        None => "it has no controller (an orphan, or made by hand)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, controller: Option<&str>) -> Job {
        let refs = controller.map(|uid| {
            serde_json::json!([{"apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun", "name": "r",
                                "uid": uid, "controller": true}])
        });
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"gantry.dev/run": "r"}, "ownerReferences": refs}
        }))
        .unwrap()
    }

    #[test]
    fn only_the_controller_uid_decides_ownership() {
        let jobs = vec![job("mine", Some("u-new")), job("orphan", None), job("older", Some("u-old"))];
        let (owned, foreign) = split_by_owner(jobs, "u-new");
        assert_eq!(owned.len(), 1);
        assert_eq!(owned[0].metadata.name.as_deref(), Some("mine"));
        assert_eq!(foreign, BTreeSet::from(["orphan".to_string(), "older".to_string()]));
    }

    #[test]
    fn a_non_controller_owner_reference_does_not_make_an_owner() {
        let mut j = job("shared", Some("u-1"));
        j.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        assert!(!is_controlled_by(&j.metadata, "u-1"));
        assert!(holder(&j.metadata).contains("no controller"));
        assert!(holder(&job("x", Some("u-2")).metadata).contains("PipelineRun r (uid u-2)"));
    }
}

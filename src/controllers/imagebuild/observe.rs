//! What the ImageBuild controller reads from the cluster: the build and
//! prune Jobs the ImageBuild controls (by UID; a Job with its labels but
//! another controller is not its own), with their pods' outcomes.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::api::ImageBuild;
use crate::controllers::jobs::observe_jobs;
use crate::controllers::ownership::split_by_owner;
use crate::controllers::{describe, Context, Error, KubeResultExt};
use crate::engine::imagebuild::BuildJob;
use crate::engine::naming::{
    run_label, ANNOTATION_IMAGE, ANNOTATION_REBUILD, LABEL_GENERATION, LABEL_IMAGE_BUILD, LABEL_PRUNE, LABEL_SUFFIX,
};
use crate::resources::build_job::{BUILD_CONTAINER, PRUNE_CONTAINER};
use crate::resources::controller_ref;

/// Lists the Jobs and pods labelled for `build` in `ns` and observes the
/// Jobs it controls.
pub async fn observe(ctx: &Context, build: &ImageBuild, ns: &str) -> Result<Vec<BuildJob>, Error> {
    let name = build.name_any();
    let selector = format!("{LABEL_IMAGE_BUILD}={}", run_label(&name));
    let of_build = || format!("of {}", describe::<ImageBuild>(Some(ns), &name));
    let jobs = Api::<Job>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await
        .observing(|| format!("Jobs {}", of_build()))?;
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await
        .observing(|| format!("pods {}", of_build()))?;
    let owner = controller_ref(build).ok_or(Error::MissingField("metadata.uid"))?;
    Ok(build_jobs(jobs.items, &pods.items, &owner.uid))
}

/// The build and prune Jobs controlled by `owner_uid`, one observation each
/// (a Job without a suffix label is ignored); `pods` may hold any Jobs' pods.
/// Pure.
pub fn build_jobs(jobs: Vec<Job>, pods: &[Pod], owner_uid: &str) -> Vec<BuildJob> {
    let (owned, _) = split_by_owner(jobs, owner_uid);
    let (prune_jobs, build_jobs): (Vec<Job>, Vec<Job>) =
        owned.into_iter().partition(|j| j.labels().contains_key(LABEL_PRUNE));
    let builds = observe_jobs(&build_jobs, pods, BUILD_CONTAINER).into_iter().map(|o| (o, false));
    let prunes = observe_jobs(&prune_jobs, pods, PRUNE_CONTAINER).into_iter().map(|o| (o, true));
    builds
        .chain(prunes)
        .filter_map(|((job, outcome), prune)| {
            let (labels, annotations) = (job.labels(), job.annotations());
            Some(BuildJob {
                rebuild_request: annotations.get(ANNOTATION_REBUILD).cloned(),
                image: annotations.get(ANNOTATION_IMAGE).cloned(),
                suffix: labels.get(LABEL_SUFFIX)?.clone(),
                generation: labels.get(LABEL_GENERATION).and_then(|g| g.parse().ok()).unwrap_or_default(),
                outcome,
                prune,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::job::JobState;

    fn job(name: &str, owner: Option<&str>, labels: serde_json::Value, annotations: serde_json::Value) -> Job {
        let refs = owner.map(|uid| {
            serde_json::json!([{"apiVersion": "gantry.dev/v1alpha1", "kind": "ImageBuild", "name": "fedora",
                                "uid": uid, "controller": true}])
        });
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"), "ownerReferences": refs,
                         "labels": labels, "annotations": annotations},
            "status": {"conditions": [{"type": "Failed", "status": "True", "message": "deadline"}]}
        }))
        .unwrap()
    }

    #[test]
    fn owned_build_and_prune_jobs_are_observed_with_their_labels_and_annotations() {
        let build_labels = serde_json::json!({"gantry.dev/image-build": "fedora", "gantry.dev/suffix": "c1",
                                              "gantry.dev/generation": "3"});
        let prune_labels = serde_json::json!({"gantry.dev/image-build": "fedora", "gantry.dev/suffix": "c0",
                                              "gantry.dev/prune": "true"});
        let annotations = serde_json::json!({"gantry.dev/rebuild": "monday", "gantry.dev/image": "reg/fedora:c1"});
        let jobs = vec![
            job("fedora-c1", Some("uid-build"), build_labels.clone(), annotations),
            job("fedora-prune-c0", Some("uid-build"), prune_labels, serde_json::json!({})),
            job("fedora-c1-orphan", None, build_labels.clone(), serde_json::json!({})),
            job("fedora-c1-other", Some("uid-someone-else"), build_labels, serde_json::json!({})),
            job(
                "fedora-unlabelled",
                Some("uid-build"),
                serde_json::json!({"gantry.dev/image-build": "fedora"}),
                serde_json::json!({}),
            ),
        ];
        let observed = build_jobs(jobs, &[], "uid-build");
        assert_eq!(observed.len(), 2, "{observed:?}");
        let (build, prune) = (&observed[0], &observed[1]);
        assert_eq!((build.outcome.name.as_str(), build.prune, build.generation), ("fedora-c1", false, 3));
        assert_eq!(build.outcome.state, JobState::Failed);
        assert_eq!(build.rebuild_request.as_deref(), Some("monday"));
        assert_eq!(build.image.as_deref(), Some("reg/fedora:c1"));
        assert_eq!((prune.outcome.name.as_str(), prune.prune, prune.suffix.as_str()), ("fedora-prune-c0", true, "c0"));
        assert_eq!(prune.generation, 0, "a prune Job has no generation label");
    }
}

//! `resubmit RUN`: a new run with the same spec (not cancelled), labels and
//! annotations, under a fresh name (`generateName: <base>-`).

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Args;
use gantry::api::pipelinerun::PipelineRun;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::cluster::Target;
use crate::failure::CliError;
use crate::runs;

/// On a resubmitted run: the run it was made from.
pub const ANNOTATION_RESUBMITTED_FROM: &str = "gantry.dev/resubmitted-from";

/// kubectl's record of the last `kubectl apply`: it describes another object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The random suffix the API server adds to a `generateName`.
const GENERATED_SUFFIX_LEN: usize = 5;

#[derive(Args, Debug)]
pub struct ResubmitArgs {
    /// The run to submit again (`@latest`: the newest in the namespace).
    run: String,
}

pub async fn run(target: &Target, args: ResubmitArgs) -> Result<ExitCode, CliError> {
    let original = runs::get(target, &args.run).await?;
    let copy = resubmission(&original);
    let created = runs::api(target)
        .create(&runs::create_params(), &copy)
        .await
        .map_err(|e| CliError::api(&format!("a copy of pipelinerun \"{}\"", original.name_any()), e))?;
    println!("pipelinerun/{} created (a resubmit of {})", created.name_any(), original.name_any());
    Ok(ExitCode::SUCCESS)
}

/// The new run: the same spec (`cancel` off), the labels and annotations
/// except Gantry's own (`gantry.dev/*`: shard, rerun, superseded-by) and
/// kubectl's last-applied record; `generateName` from the base name.
pub fn resubmission(run: &PipelineRun) -> PipelineRun {
    let name = run.name_any();
    let keep = |map: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        map.iter()
            .filter(|(k, _)| !is_gantrys(k) && k.as_str() != LAST_APPLIED)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut annotations = keep(run.annotations());
    annotations.insert(ANNOTATION_RESUBMITTED_FROM.into(), name.clone());
    let base = resubmit_base(&name, run.annotations().contains_key(ANNOTATION_RESUBMITTED_FROM));
    let mut spec = run.spec.clone();
    spec.cancel = false;
    PipelineRun {
        metadata: ObjectMeta {
            generate_name: Some(format!("{base}-")),
            namespace: run.metadata.namespace.clone(),
            labels: Some(keep(run.labels())).filter(|l| !l.is_empty()),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

fn is_gantrys(key: &str) -> bool {
    key.starts_with("gantry.dev/")
}

/// The name a resubmit of `name` starts from: a run that was itself a
/// resubmit loses the suffix the API server gave it, so resubmits of
/// resubmits read `nightly-x7k2p`, not `nightly-x7k2p-q9d4m`.
pub fn resubmit_base(name: &str, was_resubmitted: bool) -> &str {
    if !was_resubmitted {
        return name;
    }
    match name.rsplit_once('-') {
        Some((base, suffix))
            if !base.is_empty()
                && suffix.len() == GENERATED_SUFFIX_LEN
                && suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            base
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, annotations: serde_json::Value) -> PipelineRun {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gantry.dev/v1alpha1", "kind": "PipelineRun",
            "metadata": {"name": name, "namespace": "ci", "uid": "u", "resourceVersion": "7",
                         "labels": {"project": "fuel", "gantry.dev/shard": "12"}, "annotations": annotations},
            "spec": {"cancel": true, "stages": [{"name": "a", "run": {"image": "busybox"}}]},
            "status": {"phase": "Cancelled"},
        }))
        .unwrap()
    }

    #[test]
    fn the_copy_keeps_spec_and_user_metadata_and_drops_gantrys() {
        let original = run(
            "nightly",
            serde_json::json!({"owner": "team-os", "gantry.dev/rerun": "a", "gantry.dev/superseded-by": "n2",
                               LAST_APPLIED: "{}"}),
        );
        let copy = resubmission(&original);
        assert_eq!(copy.metadata.name, None);
        assert_eq!(copy.metadata.generate_name.as_deref(), Some("nightly-"));
        assert_eq!(copy.metadata.namespace.as_deref(), Some("ci"));
        assert_eq!((copy.metadata.uid.as_ref(), copy.metadata.resource_version.as_ref()), (None, None));
        assert_eq!(copy.labels(), &BTreeMap::from([("project".to_string(), "fuel".to_string())]));
        assert_eq!(
            copy.annotations(),
            &BTreeMap::from([
                ("owner".to_string(), "team-os".to_string()),
                (ANNOTATION_RESUBMITTED_FROM.to_string(), "nightly".to_string()),
            ])
        );
        assert!(!copy.spec.cancel, "the copy runs");
        assert_eq!(copy.spec.stages, original.spec.stages);
        assert!(copy.status.is_none());
    }

    #[test]
    fn a_resubmit_of_a_resubmit_keeps_the_original_base() {
        let again = run("nightly-x7k2p", serde_json::json!({ANNOTATION_RESUBMITTED_FROM: "nightly"}));
        assert_eq!(resubmission(&again).metadata.generate_name.as_deref(), Some("nightly-"));
        assert_eq!(resubmission(&again).annotations()[ANNOTATION_RESUBMITTED_FROM], "nightly-x7k2p");
    }

    #[test]
    fn only_a_generated_suffix_is_stripped() {
        assert_eq!(resubmit_base("release-1-2", false), "release-1-2");
        assert_eq!(resubmit_base("pr-12345", false), "pr-12345", "not a resubmit: the name is kept");
        assert_eq!(resubmit_base("pr-12345", true), "pr");
        assert_eq!(resubmit_base("pr-1234", true), "pr-1234");
        assert_eq!(resubmit_base("-abcde", true), "-abcde");
        assert_eq!(resubmit_base("nightly", true), "nightly");
    }
}

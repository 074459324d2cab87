//! The PersistentVolumeClaim shared by every stage of a run.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::engine::naming::{run_label, LABEL_MANAGED_BY, LABEL_RUN};

/// A ReadWriteOnce claim of `size`, owned by the run.
pub fn workspace_claim(
    claim: &str,
    run: &str,
    namespace: &str,
    size: &str,
    storage_class: Option<&str>,
    owner: OwnerReference,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(claim.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (LABEL_RUN.to_string(), run_label(run)),
                (LABEL_MANAGED_BY.to_string(), "gantry".to_string()),
            ])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage_class.map(str::to_string),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size.to_string()))])),
                limits: None,
            }),
            ..Default::default()
        }),
        status: None,
    }
}

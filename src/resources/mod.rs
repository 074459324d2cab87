//! Pure builders for the manifests Gantry creates. No I/O: each takes what
//! the engine decided and returns the object to apply.

pub mod build_job;
pub mod cloudevent;
pub mod job;
pub mod kata;
pub mod shard;
pub mod workspace;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

/// An owner reference that makes `owner` the controller of the child, so
/// deleting the owner garbage-collects the child.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    let meta = owner.meta();
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

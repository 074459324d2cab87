//! Children inherit their run's shard label (`engine::shard`), so the
//! replica that owns the run watches them and no other replica does.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::engine::shard::LABEL_SHARD;

fn label(meta: &mut ObjectMeta, bucket: u32) {
    meta.labels.get_or_insert_with(Default::default).insert(LABEL_SHARD.to_string(), bucket.to_string());
}

/// A stage Job in `bucket`, its pod template too (its pods get the template's labels).
pub fn shard_job(mut job: Job, bucket: u32) -> Job {
    label(&mut job.metadata, bucket);
    if let Some(spec) = job.spec.as_mut() {
        label(spec.template.metadata.get_or_insert_with(Default::default), bucket);
    }
    job
}

/// A workspace claim in `bucket`.
pub fn shard_claim(mut claim: PersistentVolumeClaim, bucket: u32) -> PersistentVolumeClaim {
    label(&mut claim.metadata, bucket);
    claim
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;

    #[test]
    fn a_job_and_its_pods_carry_the_bucket_beside_their_other_labels() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "j", "labels": {"gantry.dev/run": "r"}},
            "spec": {"template": {"metadata": {"labels": {"gantry.dev/run": "r"}}, "spec": {"containers": []}}}
        }))
        .unwrap();
        let job = shard_job(job, 17);
        let labels = job.metadata.labels.unwrap();
        assert_eq!((labels["gantry.dev/shard"].as_str(), labels["gantry.dev/run"].as_str()), ("17", "r"));
        let template = job.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        assert_eq!((template["gantry.dev/shard"].as_str(), template["gantry.dev/run"].as_str()), ("17", "r"));
        let bare = shard_job(Job { spec: Some(JobSpec::default()), ..Default::default() }, 3);
        assert_eq!(bare.spec.unwrap().template.metadata.unwrap().labels.unwrap()["gantry.dev/shard"], "3");
        let claim = shard_claim(PersistentVolumeClaim::default(), 0);
        assert_eq!(claim.metadata.labels.unwrap()["gantry.dev/shard"], "0");
    }
}

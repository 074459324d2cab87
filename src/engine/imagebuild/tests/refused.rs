//! A build Job the API server refuses fails its build with the server's
//! message, within the same reconcile, and is not retried.

use std::collections::BTreeMap;

use super::*;
use crate::engine::refusal::Refusal;
use crate::engine::testing::t0;

#[test]
fn a_refused_build_job_fails_the_build_with_the_servers_message_and_is_not_retried() {
    let spec = ImageBuildSpec {
        output: "10.88.0.1:5000/app".into(),
        builder: ContainerRun { image: Some("local/gantry-builder:1".into()), ..Default::default() },
        ..Default::default()
    };
    let settings = Settings::default();
    let now = t0();
    let status = ImageBuildStatus::default();
    let view = View { name: "app", generation: 1, spec: &spec, status: &status, rebuild: None, settings: &settings };
    let first = plan(&view, &[], now);
    let job = match &first.actions[..] {
        [Action::CreateJob(l)] => l.job_name.clone(),
        other => panic!("one build Job to create: {other:?}"),
    };
    let mut jobs = Vec::new();
    let refused = BTreeMap::from([(
        job.clone(),
        Refusal { conflict: false, message: "pods \"x\" is forbidden: violates PodSecurity".into() },
    )]);
    record_applied(&mut jobs, &first.actions, &refused, now);
    let plan = replan(&view, &jobs, first, now);

    assert!(plan.actions.is_empty(), "no retry loop: {:?}", plan.actions);
    assert_eq!(plan.status.phase, Some(BuildPhase::Failed));
    let record = plan.status.builds.last().unwrap();
    let message = record.message.clone().unwrap_or_default();
    assert!(message.starts_with(&format!("JobRefused: the API server refused Job {job}: ")), "{message}");
    assert!(message.contains("violates PodSecurity"), "{message}");
    assert!(plan.notes.iter().any(|n| n.reason == "BuildFailed" && n.message.contains("PodSecurity")));
}

//! A refused build Job fails the build with the server's message.

use chrono::{TimeZone, Utc};

use super::*;
use crate::api::common::ContainerRun;
use crate::engine::settings::Settings;

fn refusal(message: &str) -> Refusal {
    Refusal { conflict: false, message: message.into() }
}

#[test]
fn a_refused_build_job_fails_the_build_with_the_servers_message_and_is_not_retried() {
    use crate::api::imagebuild::{BuildPhase, ImageBuildSpec, ImageBuildStatus};
    let spec = ImageBuildSpec {
        output: "10.88.0.1:5000/app".into(),
        builder: ContainerRun { image: Some("local/gantry-builder:1".into()), ..Default::default() },
        ..Default::default()
    };
    let settings = Settings::default();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let status = ImageBuildStatus::default();
    let view =
        BuildView { name: "app", generation: 1, spec: &spec, status: &status, rebuild: None, settings: &settings };
    let first = plan_build(&view, &[], now);
    let job = match &first.actions[..] {
        [BuildAction::CreateJob(l)] => l.job_name.clone(),
        other => panic!("one build Job to create: {other:?}"),
    };
    let mut jobs = Vec::new();
    let refused = BTreeMap::from([(job.clone(), refusal("pods \"x\" is forbidden: violates PodSecurity"))]);
    record_applied_builds(&mut jobs, &first.actions, &refused, now);
    let plan = replan_build(&view, &jobs, first, now);

    assert!(plan.actions.is_empty(), "no retry loop: {:?}", plan.actions);
    assert_eq!(plan.status.phase, Some(BuildPhase::Failed));
    let record = plan.status.builds.last().unwrap();
    let message = record.message.clone().unwrap_or_default();
    assert!(message.starts_with(&format!("JobRefused: the API server refused Job {job}: ")), "{message}");
    assert!(message.contains("violates PodSecurity"), "{message}");
    assert!(plan.notes.iter().any(|n| n.reason == "BuildFailed" && n.message.contains("PodSecurity")));
}

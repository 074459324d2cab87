//! The smoke test: server, then client, then a verdict; repeated only for
//! a new set of installed nodes.

use std::time::Duration;

use super::*;
use crate::api::katainstall::{SmokeResult, SmokeStatus};
use crate::engine::job::JobState;
use crate::engine::katainstall::plan::smoke_key;
use crate::engine::testing::condition;

fn smoke_actions(plan: &Plan) -> Vec<Action> {
    plan.actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::CreateSmokeServer { .. } | Action::CreateSmokeClient { .. } | Action::DeleteSmoke { .. }
            )
        })
        .cloned()
        .collect()
}

#[test]
fn the_smoke_test_runs_server_then_client_and_passes() {
    let mut sim = Sim::of(Cluster::new(installed_observed()));
    let key = smoke_key(1, &["n1".to_string()]);
    let plan = sim.step();
    assert_eq!(smoke_actions(plan), vec![Action::CreateSmokeServer { key: key.clone() }]);
    assert_eq!(condition(&plan.status.conditions, CONDITION_VERIFIED), ("Unknown".into(), "SmokeTestRunning".into()));
    assert_eq!(plan.status.phase, Some(KataPhase::Installed));
    assert!(plan.requeue_after.expect("always set") <= Duration::from_secs(300));

    let server = |state| SmokeServer { key: key.clone(), ip: Some("10.88.0.9".into()), node: Some("n1".into()), state };
    sim.observed.smoke_servers = vec![server(PodState::Pending("pod Pending".into()))];
    let plan = sim.step();
    assert!(smoke_actions(plan).is_empty());

    sim.observed.smoke_servers = vec![server(PodState::Ready)];
    let plan = sim.step();
    let client = Action::CreateSmokeClient { key: key.clone(), server_ip: "10.88.0.9".into() };
    assert_eq!(smoke_actions(plan), vec![client]);

    sim.observed.smoke_clients = vec![SmokeClient { key: key.clone(), state: JobState::Succeeded, message: None }];
    let plan = sim.step();
    assert_eq!(condition(&plan.status.conditions, CONDITION_VERIFIED), ("True".into(), "SmokeTestPassed".into()));
    assert_eq!(smoke_actions(plan), vec![Action::DeleteSmoke { keep_key: None }]);
    let smoke = plan.status.smoke.clone().unwrap();
    assert!(smoke.message.unwrap().contains("kata-qemu on n1"));
    assert!(plan.notes.iter().any(|n| n.reason == "SmokeTestPassed"));

    // Same node set: not repeated.
    sim.observed.smoke_servers.clear();
    sim.observed.smoke_clients.clear();
    let again = sim.step();
    assert!(smoke_actions(again).is_empty());
    assert_eq!(condition(&again.status.conditions, CONDITION_VERIFIED), ("True".into(), "SmokeTestPassed".into()));
}

#[test]
fn a_newly_installed_node_starts_a_new_smoke_test() {
    let spec = spec();
    let key = smoke_key(1, &["n1".to_string()]);
    let status = KataInstallStatus {
        smoke: Some(SmokeStatus { key, result: SmokeResult::Passed, start_time: Some(t0()), message: None }),
        ..Default::default()
    };
    let mut observed = installed_observed();
    observed.nodes.push(installed_node("n2"));
    observed.pods.push(pod("n2", PodState::Ready));
    let plan = plan_kata(&view(&spec, &status), &observed, t0());
    let new_key = smoke_key(1, &["n1".to_string(), "n2".to_string()]);
    assert_eq!(smoke_actions(&plan), vec![Action::CreateSmokeServer { key: new_key.clone() }]);
    assert_eq!(plan.status.smoke.unwrap().key, new_key);
}

#[test]
fn smoke_failures_and_timeouts_are_reported() {
    let spec = spec();
    let key = smoke_key(1, &["n1".to_string()]);
    let running = SmokeStatus { key: key.clone(), result: SmokeResult::Running, start_time: Some(t0()), message: None };
    let status = KataInstallStatus { smoke: Some(running), ..Default::default() };
    let mut observed = installed_observed();
    observed.smoke_servers = vec![SmokeServer {
        key: key.clone(),
        ip: None,
        node: None,
        state: PodState::Pending("pod Pending (ContainerCreating)".into()),
    }];
    let plan = plan_kata(&view(&spec, &status), &observed, t0() + chrono::Duration::seconds(301));
    assert_eq!(condition(&plan.status.conditions, CONDITION_VERIFIED), ("False".into(), "SmokeTestFailed".into()));
    let message = plan.status.smoke.as_ref().unwrap().message.clone().unwrap();
    assert_eq!(message, "timed out after 5m: the server pod is still starting (pod Pending (ContainerCreating))");
    assert_eq!(plan.status.phase, Some(KataPhase::Degraded));

    observed.smoke_clients =
        vec![SmokeClient { key: key.clone(), state: JobState::Failed, message: Some("cannot fetch".into()) }];
    let plan = plan_kata(&view(&spec, &status), &observed, t0());
    let message = plan.status.smoke.unwrap().message.unwrap();
    assert!(message.contains("could not fetch the page from the kata-qemu pod: cannot fetch"), "{message}");
}

#[test]
fn a_disabled_smoke_test_runs_nothing() {
    let mut spec = spec();
    spec.smoke_test.enabled = Some(false);
    let status = KataInstallStatus::default();
    let plan = plan_kata(&view(&spec, &status), &installed_observed(), t0());
    assert!(smoke_actions(&plan).is_empty());
    assert_eq!(condition(&plan.status.conditions, CONDITION_VERIFIED), ("Unknown".into(), "SmokeTestDisabled".into()));
}

//! The KataInstall planner under arbitrary input.

use proptest::prelude::*;

use crate::api::katainstall::{KataInstallSpec, KataInstallStatus, NodeInstallStatus, NodeState, SmokeTest};
use crate::engine::job::JobState;
use crate::engine::katainstall::{
    plan, InstallerPod, NodeInfo, Observed, PodState, Role, SmokeClient, SmokeServer, View,
};
use crate::engine::testing::arbitrary::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_kata_planner_never_panics_and_keeps_status_bounded(
        shims in proptest::collection::vec(prop_oneof![text(), Just("qemu".to_string()), Just("clh".to_string())], 0..4),
        default_shim in proptest::option::of(text()),
        selector in proptest::collection::btree_map(text(), text(), 0..3),
        timeouts in (proptest::option::of(text()), proptest::option::of(text()), proptest::option::of(any::<bool>())),
        nodes in proptest::collection::vec((text(), proptest::collection::btree_map(text(), text(), 0..3), proptest::option::of(text())), 0..6),
        pods in proptest::collection::vec((text(), any::<bool>(), 0u8..3, text()), 0..6),
        smoke in (proptest::collection::vec((text(), proptest::option::of(text()), 0u8..3), 0..3), proptest::collection::vec((text(), 0u8..3), 0..3)),
        node_statuses in proptest::collection::vec((text(), 0u8..4), 0..6),
        deleting in proptest::option::of(time()),
        now in time(),
        generation in any::<i64>(),
    ) {
        let (cleanup_timeout, smoke_timeout, smoke_enabled) = timeouts;
        let spec = KataInstallSpec {
            installer_image: "local/kata-installer:1".into(),
            shims,
            default_shim,
            node_selector: selector,
            cleanup_timeout,
            smoke_test: SmokeTest { enabled: smoke_enabled, image: None, timeout: smoke_timeout },
            ..Default::default()
        };
        let status = KataInstallStatus {
            nodes: node_statuses
                .into_iter()
                .map(|(name, state)| NodeInstallStatus {
                    name,
                    state: [NodeState::InProgress, NodeState::Installed, NodeState::Failed, NodeState::CleaningUp]
                        [usize::from(state)],
                    message: None,
                })
                .collect(),
            ..Default::default()
        };
        let pod_state = |n: u8, text: String| match n {
            0 => PodState::Ready,
            1 => PodState::Pending(text),
            _ => PodState::Failed(text),
        };
        let (servers, clients) = smoke;
        let observed = Observed {
            nodes: nodes.into_iter().map(|(name, labels, owner)| NodeInfo { name, labels, owner }).collect(),
            pods: pods
                .into_iter()
                .map(|(node, cleanup, state, text)| InstallerPod {
                    node,
                    role: if cleanup { Role::Cleanup } else { Role::Install },
                    config: Some(text.clone()),
                    state: pod_state(state, text),
                })
                .collect(),
            smoke_servers: servers
                .into_iter()
                .map(|(key, ip, state)| SmokeServer { key, ip, node: None, state: pod_state(state, "x".into()) })
                .collect(),
            smoke_clients: clients
                .into_iter()
                .map(|(key, state)| SmokeClient {
                    key,
                    state: [JobState::Active, JobState::Succeeded, JobState::Failed][usize::from(state)],
                    message: Some("m".into()),
                })
                .collect(),
            ..Default::default()
        };
        let view = View {
            name: "kata",
            generation,
            created: Some(now),
            spec: &spec,
            status: &status,
            deleting_since: deleting,
            has_finalizer: deleting.is_some(),
        };
        let planned = plan(&view, &observed, now);
        let bytes = serde_json::to_vec(&planned.status).map(|v| v.len()).unwrap_or(0);
        prop_assert!(bytes < MAX_STATUS_BYTES, "status of {bytes} bytes");
    }
}

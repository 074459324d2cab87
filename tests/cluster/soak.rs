//! The apiserver built from Debian's source with Go 1.19 crashed within
//! minutes before the reflect2 fix (map iteration in JSON encoding). This
//! keeps it busy for several minutes creating, listing and watching
//! thousands of objects with map fields, and checks it is still serving.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;

use crate::support::{client, TestNamespace};

fn soak_duration() -> Duration {
    let secs = std::env::var("GANTRY_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(240);
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_survives_minutes_of_create_list_watch() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "soak").await;
    let maps = Api::<ConfigMap>::namespaced(client.clone(), &ns.name);

    // A watcher that counts every object it sees being added.
    let watched = maps.clone();
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let watcher_seen = seen.clone();
    let watch_task = tokio::spawn(async move {
        let mut stream = watcher(watched, watcher::Config::default().labels("soak=true")).applied_objects().boxed();
        while let Some(cm) = stream.try_next().await.expect("watch stream") {
            watcher_seen.lock().unwrap().insert(cm.metadata.name.unwrap_or_default());
        }
    });

    let started = Instant::now();
    let mut created = 0usize;
    let mut round = 0usize;
    while started.elapsed() < soak_duration() || created < 3000 {
        let batch: Vec<_> = (0..100)
            .map(|i| {
                let maps = maps.clone();
                let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("cm-{round}-{i}"),
                                 "labels": {"round": round.to_string(), "soak": "true"},
                                 "annotations": {"a": "1", "b": "2", "c": "3"}},
                    "data": {"k1": "v1", "k2": "v2", "k3": "v3", "round": round.to_string()}
                }))
                .unwrap();
                async move { maps.create(&PostParams::default(), &cm).await.map(|_| ()) }
            })
            .collect();
        for result in futures::stream::iter(batch).buffer_unordered(10).collect::<Vec<_>>().await {
            result.expect("create ConfigMap");
            created += 1;
        }
        let listed = maps.list(&ListParams::default().labels("soak=true")).await.expect("list");
        assert!(listed.items.len() >= 100, "list sees the objects");
        // Keep etcd small: drop the previous round.
        if round > 0 {
            maps.delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels(&format!("round={}", round - 1)),
            )
            .await
            .expect("delete previous round");
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The watcher saw every object created; give it a moment to catch up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().len() < created && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!watch_task.is_finished(), "the watch stream ended early");
    watch_task.abort();
    assert_eq!(seen.lock().unwrap().len(), created, "the watch saw every created object");
    let ready = client
        .request_text(http::Request::get("/readyz").body(vec![]).unwrap())
        .await
        .expect("apiserver still answers /readyz after the soak");
    assert_eq!(ready.trim(), "ok");
    assert!(created >= 3000, "created {created}");
    ns.delete().await;
}

//! One watch loop for the bench's three watchers (Jobs, pods, PipelineRuns).

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::Api;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

/// Calls `on_object` in a task for every object the watch lists or sees
/// added or changed; returns once the first list is done, with the task
/// (abort it to stop watching).
pub async fn each<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    mut on_object: impl FnMut(K) + Send + 'static,
) -> JoinHandle<()>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut stream = watcher::watcher(api, config).boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(object) | Event::InitApply(object)) => on_object(object),
                Ok(Event::InitDone) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => eprintln!("bench: watching {what}: {e}"),
            }
        }
    });
    let _ = ready_rx.await;
    task
}

//! Reads the end of a container's log within a byte and time budget, so
//! nothing a stage prints can grow the operator's memory or hold a
//! reconcile for long.

use std::time::Duration;

use futures::AsyncReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::Api;

use crate::engine::pipelinerun::log_tail::{LogTail, Tail, MAX_LOG_BYTES};

/// Lines asked of the kubelet: bounds what is sent, not only what is kept.
const MAX_LOG_LINES: i64 = 200_000;
/// Longest time spent reading one log; what arrived by then is used (marked cut).
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// The last [`MAX_LOG_BYTES`] of `container`'s log in `pod`.
pub async fn read_log_tail(pods: &Api<Pod>, pod: &str, container: &str) -> Result<Tail, kube::Error> {
    let params = LogParams { container: Some(container.into()), tail_lines: Some(MAX_LOG_LINES), ..Default::default() };
    let mut stream = pods.log_stream(pod, &params).await?;
    let mut tail = LogTail::new(MAX_LOG_BYTES);
    let mut chunk = vec![0u8; 64 * 1024];
    let read_all = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => return Ok(()),
                Ok(n) => tail.push(&chunk[..n]),
                Err(e) => return Err(e),
            }
        }
    };
    match tokio::time::timeout(READ_TIMEOUT, read_all).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(kube::Error::ReadEvents(e)),
        Err(_) => tail.mark_cut(),
    }
    Ok(tail.finish())
}

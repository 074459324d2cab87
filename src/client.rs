//! The operator's Kubernetes client, with a client-side rate limit: kube's
//! client has none, and one operator shared by many teams must not flood
//! the API server when thousands of objects change at once.

use std::time::Duration;

use anyhow::Context as _;
use kube::client::ClientBuilder;

/// The window the rate limit counts requests in: `qps / 10` requests may
/// start in each 100 ms, so bursts stay short and the limit smooth.
const WINDOW: Duration = Duration::from_millis(100);

/// A client for the cluster `kube::Config::infer` finds (KUBECONFIG, or
/// the pod's service account) that starts at most `qps` requests a second
/// (`None`: no limit). Requests over the limit wait their turn.
pub async fn client(qps: Option<u32>) -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer().await.context("no Kubernetes cluster found: set KUBECONFIG or run in a pod")?;
    let builder = ClientBuilder::try_from(config).context("building the Kubernetes client")?;
    Ok(match qps {
        Some(qps) => builder.with_layer(&tower::limit::RateLimitLayer::new(per_window(qps), WINDOW)).build(),
        None => builder.build(),
    })
}

/// Requests per [`WINDOW`] for `qps` a second (at least one).
fn per_window(qps: u32) -> u64 {
    u64::from(qps).div_ceil(10).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_spread_over_tenths_of_a_second() {
        assert_eq!(per_window(100), 10);
        assert_eq!(per_window(5), 1);
        assert_eq!(per_window(1), 1);
        assert_eq!(per_window(1001), 101);
    }
}

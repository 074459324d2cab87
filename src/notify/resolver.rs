//! The DNS resolver of the notification client: it resolves a target's
//! host name when the operator connects and hands the connector only the
//! addresses the destination policy allows, so a name that points inside
//! the cluster (or is changed to later) cannot be used to get there. IP
//! literals never reach a resolver; [`crate::notify::Notifier::post`]
//! checks them.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

use crate::engine::pipelinerun::destinations::DestinationPolicy;

/// Resolves with the system resolver, then filters by policy.
#[derive(Clone)]
pub struct PolicyResolver {
    policy: Arc<DestinationPolicy>,
}

impl PolicyResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<DestinationPolicy>) -> Self {
        PolicyResolver { policy }
    }
}

/// The error kind that marks a refusal by policy (see [`is_refusal`]).
const REFUSED: io::ErrorKind = io::ErrorKind::PermissionDenied;

impl tower_service::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let lookup = host.clone();
            // getaddrinfo blocks: off the async threads, as hyper's own resolver does.
            let addrs: Vec<SocketAddr> = tokio::task::spawn_blocking(move || (lookup.as_str(), 0).to_socket_addrs())
                .await
                .map_err(io::Error::other)??
                .collect();
            let allowed = allowed_addresses(&policy, &host, addrs);
            if allowed.is_empty() {
                return Err(io::Error::new(REFUSED, format!("{host} resolves to no address the notify policy allows")));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// The addresses of `host` the operator may connect to.
pub fn allowed_addresses(policy: &DestinationPolicy, host: &str, addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let listed = policy.host_listed(host);
    addrs.into_iter().filter(|a| policy.allows_ip(a.ip(), listed)).collect()
}

/// Whether a client error comes from the policy refusing every address.
pub fn is_refusal(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(cause) = source {
        if cause.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == REFUSED) {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| format!("{a}:0").parse().unwrap()).collect()
    }

    #[test]
    fn only_allowed_addresses_of_a_name_are_dialled() {
        let policy = DestinationPolicy::default();
        let mixed = addrs(&["10.96.0.1", "203.0.113.5", "127.0.0.1"]);
        assert_eq!(allowed_addresses(&policy, "results.example", mixed.clone()), addrs(&["203.0.113.5"]));
        let listed: DestinationPolicy = serde_yaml::from_str("allowedDestinations: [results.example]").unwrap();
        assert_eq!(allowed_addresses(&listed, "RESULTS.example", mixed.clone()), mixed, "a listed name goes anywhere");
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_as_policy() {
        let mut resolver = PolicyResolver::new(Arc::new(DestinationPolicy::default()));
        let err = resolver.call("localhost".parse().unwrap()).await.unwrap_err();
        assert_eq!(err.kind(), REFUSED);
        assert!(err.to_string().contains("localhost resolves to no address"), "{err}");
        assert!(is_refusal(&err));
        assert!(!is_refusal(&io::Error::other("connection refused")));
        let open: DestinationPolicy = serde_yaml::from_str("allowedDestinations: [127.0.0.0/8, '::1']").unwrap();
        let found: Vec<SocketAddr> =
            PolicyResolver::new(Arc::new(open)).call("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(!found.is_empty() && found.iter().all(|a| a.ip().is_loopback()), "{found:?}");
    }
}

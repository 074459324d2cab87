//! The operator's Kubernetes client: a client-side rate limit (kube's
//! client has none, and one operator shared by many teams must not flood
//! the API server when thousands of objects change at once), and every
//! request counted by verb and resource (`gantry_api_requests_total`).

use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use http::{Method, Request};
use kube::client::ClientBuilder;
use tower::{Layer, Service};

use crate::metrics::{api_requests, RequestLabels};

/// The window the rate limit counts requests in: `qps / 10` requests may
/// start in each 100 ms, so bursts stay short and the limit smooth.
const WINDOW: Duration = Duration::from_millis(100);

/// A client for the cluster `kube::Config::infer` finds (KUBECONFIG, or
/// the pod's service account) that starts at most `qps` requests a second
/// (`None`: no limit). Requests over the limit wait their turn.
pub async fn client(qps: Option<u32>) -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer().await.context("no Kubernetes cluster found: set KUBECONFIG or run in a pod")?;
    let builder = ClientBuilder::try_from(config).context("building the Kubernetes client")?.with_layer(&Counted);
    Ok(match qps {
        Some(qps) => builder.with_layer(&tower::limit::RateLimitLayer::new(per_window(qps), WINDOW)).build(),
        None => builder.build(),
    })
}

/// Requests per [`WINDOW`] for `qps` a second (at least one).
fn per_window(qps: u32) -> u64 {
    u64::from(qps).div_ceil(10).max(1)
}

/// Counts each request in [`api_requests`].
#[derive(Clone, Copy)]
struct Counted;

impl<S> Layer<S> for Counted {
    type Service = CountedService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CountedService(inner)
    }
}

#[derive(Clone)]
struct CountedService<S>(S);

impl<S: Service<Request<B>>, B> Service<Request<B>> for CountedService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let uri = request.uri();
        api_requests().get_or_create(&classify(request.method(), uri.path(), uri.query(), content_type)).inc();
        self.0.call(request)
    }
}

/// The verb and resource of a request to the Kubernetes API, from its
/// method, path (`/api/v1/namespaces/ci/pods/p/log`,
/// `/apis/batch/v1/jobs`), query and content type.
fn classify(method: &Method, path: &str, query: Option<&str>, content_type: Option<&str>) -> RequestLabels {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[][..],
    };
    // `namespaces/<ns>/<resource>…`, unless it is the namespace itself.
    let rest = match rest {
        ["namespaces", _ns, resource, more @ ..] => [&[*resource][..], more].concat(),
        other => other.to_vec(),
    };
    let (resource, named) = match rest.as_slice() {
        [] => ("other".to_string(), false),
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    };
    let watching = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        Method::GET if watching => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if content_type == Some("application/apply-patch+yaml") => "apply",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    };
    RequestLabels { verb: verb.to_string(), resource }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(method: Method, path: &str, query: Option<&str>, content_type: Option<&str>) -> (String, String) {
        let l = classify(&method, path, query, content_type);
        (l.verb, l.resource)
    }

    fn pair(verb: &str, resource: &str) -> (String, String) {
        (verb.to_string(), resource.to_string())
    }

    #[test]
    fn the_limit_is_spread_over_tenths_of_a_second() {
        assert_eq!(per_window(100), 10);
        assert_eq!(per_window(5), 1);
        assert_eq!(per_window(1), 1);
        assert_eq!(per_window(1001), 101);
    }

    #[test]
    fn requests_are_named_by_verb_and_resource() {
        let jobs = "/apis/batch/v1/namespaces/ci/jobs";
        assert_eq!(labels(Method::POST, jobs, None, None), pair("create", "jobs"));
        assert_eq!(labels(Method::GET, jobs, Some("labelSelector=gantry.dev%2Frun"), None), pair("list", "jobs"));
        assert_eq!(labels(Method::GET, "/apis/batch/v1/jobs", Some("watch=true&timeoutSeconds=290"), None), {
            pair("watch", "jobs")
        });
        assert_eq!(labels(Method::DELETE, &format!("{jobs}/r-a-1"), None, None), pair("delete", "jobs"));
        let status = "/apis/gantry.dev/v1alpha1/namespaces/ci/pipelineruns/nightly/status";
        let apply = Some("application/apply-patch+yaml");
        assert_eq!(labels(Method::PATCH, status, Some("fieldManager=gantry&force=true"), apply), {
            pair("apply", "pipelineruns/status")
        });
        let merge = Some("application/merge-patch+json");
        assert_eq!(labels(Method::PATCH, status, None, merge), pair("patch", "pipelineruns/status"));
        assert_eq!(labels(Method::GET, "/api/v1/namespaces/ci/pods/p/log", None, None), pair("get", "pods/log"));
        assert_eq!(labels(Method::GET, "/api/v1/namespaces/ci", None, None), pair("get", "namespaces"));
        assert_eq!(labels(Method::GET, "/api/v1/nodes", None, None), pair("list", "nodes"));
        assert_eq!(labels(Method::GET, "/version", None, None), pair("list", "other"));
    }
}

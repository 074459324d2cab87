//! Delivers CloudEvents to `spec.notify` endpoints over HTTP(S), off the
//! reconcile path: [`delivery`] queues and retries, [`Notifier`] makes one
//! POST at a time, and [`resolver`] keeps it to the admin's destinations.

pub mod delivery;
pub mod resolver;

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::engine::pipelinerun::destinations::DestinationPolicy;
use crate::resources::cloudevent::CONTENT_TYPE;
use resolver::PolicyResolver;

/// Deadline of one POST, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why one POST did not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// The destination policy refused the address (not a network failure).
    pub refused: bool,
    /// What happened, naming the URL.
    pub message: String,
}

/// A shared HTTP(S) client for notifications.
#[derive(Clone)]
pub struct Notifier {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector<PolicyResolver>>, Full<Bytes>>,
    policy: Arc<DestinationPolicy>,
}

impl Notifier {
    /// A client trusting the system's root certificates that connects only
    /// where `policy` allows.
    pub fn new(policy: DestinationPolicy) -> std::io::Result<Self> {
        let policy = Arc::new(policy);
        let mut http = HttpConnector::new_with_resolver(PolicyResolver::new(policy.clone()));
        http.enforce_http(false);
        http.set_connect_timeout(Some(REQUEST_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Notifier { client: Client::builder(TokioExecutor::new()).build(https), policy })
    }

    /// POSTs one structured CloudEvent to `url`, once, within [`REQUEST_TIMEOUT`].
    /// Any 2xx answer is an acknowledgement.
    pub async fn post(&self, url: &str, body: Bytes) -> Result<(), SendError> {
        // Validation checked the URL already; the policy may have changed
        // since (another operator version wrote the status).
        self.policy.check_url(url).map_err(|e| SendError { refused: true, message: format!("{url}: {e}") })?;
        let request = hyper::Request::post(url)
            .header("content-type", CONTENT_TYPE)
            .body(Full::new(body))
            .map_err(|e| SendError { refused: true, message: format!("bad URL {url}: {e}") })?;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => {
                Err(SendError { refused: false, message: format!("{url} answered {}", response.status()) })
            }
            Ok(Err(e)) => {
                Err(SendError { refused: resolver::is_refusal(&e), message: format!("{url}: {}", chain(&e)) })
            }
            Err(_) => {
                Err(SendError { refused: false, message: format!("{url}: no answer within {REQUEST_TIMEOUT:?}") })
            }
        }
    }
}

/// An error and its causes, `: `-separated (hyper's own message says little).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

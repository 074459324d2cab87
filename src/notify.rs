//! Delivers CloudEvents to `spec.notify` endpoints over HTTP(S): best
//! effort, a few quick tries, never holding a reconcile for long.

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::resources::cloudevent::CONTENT_TYPE;

/// Tries per endpoint and event.
const TRIES: u32 = 3;
/// Deadline of one try.
const TRY_TIMEOUT: Duration = Duration::from_secs(5);

/// A shared HTTP(S) client for notifications.
#[derive(Clone)]
pub struct Notifier {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Notifier {
    /// A client trusting the system's root certificates.
    pub fn new() -> std::io::Result<Self> {
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_native_roots()?.https_or_http().enable_http1().build();
        Ok(Notifier { client: Client::builder(TokioExecutor::new()).build(https) })
    }

    /// POSTs one structured CloudEvent to `url`; the error says why the last try failed.
    pub async fn send(&self, url: &str, event: &serde_json::Value) -> Result<(), String> {
        let body = Bytes::from(serde_json::to_vec(event).map_err(|e| e.to_string())?);
        let mut last = String::new();
        for attempt in 1..=TRIES {
            let request = hyper::Request::post(url)
                .header("content-type", CONTENT_TYPE)
                .body(Full::new(body.clone()))
                .map_err(|e| format!("bad URL {url}: {e}"))?;
            match tokio::time::timeout(TRY_TIMEOUT, self.client.request(request)).await {
                Ok(Ok(response)) if response.status().is_success() => return Ok(()),
                Ok(Ok(response)) => last = format!("{url} answered {}", response.status()),
                Ok(Err(e)) => last = format!("{url}: {e}"),
                Err(_) => last = format!("{url}: no answer within {TRY_TIMEOUT:?}"),
            }
            if attempt < TRIES {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
        Err(last)
    }
}

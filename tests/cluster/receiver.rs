//! A CloudEvent receiver on the test host's loopback (the operator under
//! test runs on the host): it acknowledges, hangs or fails on demand and
//! keeps every body it acknowledged.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::Value;

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// 200, body kept.
    Answer = 0,
    /// Accepts the request and never answers.
    Hang = 1,
    /// 503.
    Fail = 2,
}

#[derive(Default)]
struct Shared {
    mode: AtomicU8,
    requests: AtomicUsize,
    acknowledged: Mutex<Vec<Value>>,
}

/// A running receiver; it stops with the test's runtime.
pub struct Receiver {
    /// Where to POST: `http://127.0.0.1:PORT/events`.
    pub url: String,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Starts one answering as `mode`.
    pub async fn start(mode: Mode) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        shared.mode.store(mode as u8, Ordering::SeqCst);
        let state = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(req, state.clone()));
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Receiver { url, shared }
    }

    /// Answers as `mode` from now on (requests hanging already keep hanging).
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Requests received, whatever the answer.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The events acknowledged so far, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.shared.acknowledged.lock().unwrap().clone()
    }

    /// Waits up to `secs` until `done` holds for the acknowledged events; returns them.
    pub async fn wait_for(&self, secs: u64, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let events = self.events();
            if done(&events) {
                return events;
            }
            let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
            assert!(std::time::Instant::now() < deadline, "{} never got {what}; got {types:?}", self.url);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn answer(req: Request<Incoming>, state: Arc<Shared>) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let reply = |code: u16| Ok(Response::builder().status(code).body(Full::new(Bytes::new())).unwrap());
    match state.mode.load(Ordering::SeqCst) {
        m if m == Mode::Hang as u8 => std::future::pending().await,
        m if m == Mode::Fail as u8 => reply(503),
        _ => {
            let content_type =
                req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            match serde_json::from_slice::<Value>(&body) {
                Ok(event) if content_type == "application/cloudevents+json" => {
                    state.acknowledged.lock().unwrap().push(event);
                    reply(200)
                }
                _ => reply(400),
            }
        }
    }
}

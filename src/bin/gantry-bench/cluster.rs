//! Talking to the cluster and to the operator's process: a clean namespace per
//! phase, the apiserver's request counters, the operator's peak RSS and its
//! reconcile counter.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

use crate::metrics::{parse_request_totals, Counts};

/// Creates namespace `name` and waits for its default ServiceAccount and
/// token Secret (1.20 refuses pods until the token exists).
pub async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.context("create namespace")?;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), name);
    for _ in 0..300 {
        let account = accounts.get_opt("default").await?;
        if account.is_some_and(|a| a.secrets.is_some_and(|s| !s.is_empty())) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("namespace {name}: no default ServiceAccount token after 60 s")
}

/// Deletes namespace `name` and, when `wait` is set, waits (up to 10 min) until it is gone.
pub async fn delete_namespace(client: &Client, name: &str, wait: bool) -> anyhow::Result<()> {
    let api = Api::<Namespace>::all(client.clone());
    api.delete(name, &DeleteParams::default()).await.context("delete namespace")?;
    for _ in 0..1200 {
        if !wait || api.get_opt(name).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("namespace {name} still there after 10 min")
}

/// `apiserver_request_total` by verb and resource, now.
pub async fn request_totals(client: &Client) -> anyhow::Result<Counts> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await.context("GET the apiserver's /metrics")?;
    Ok(parse_request_totals(&text))
}

/// `VmHWM` (peak resident set) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    parse_vm_hwm(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The `VmHWM:   1234 kB` line of a `/proc/PID/status`.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A plain-HTTP GET of `path` on `addr` (the operator's metrics server); the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.lines().next().unwrap_or_default();
        anyhow::ensure!(status.split(' ').nth(1) == Some("200"), "GET {path}: {status}");
        Ok(body.to_string())
    })
    .await?
}

/// The sum of the samples of counter `name` (any labels) in a Prometheus text exposition.
pub fn counter_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_peak_rss() {
        let status = "Name:\tgantry\nVmPeak:\t  900000 kB\nVmHWM:\t   91234 kB\nVmRSS:\t   80000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(91234));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
    }

    #[test]
    fn sums_a_counter_over_labels() {
        let text = "# TYPE gantry_reconciles counter\ngantry_reconciles_total{kind=\"pipelinerun\"} 12\n\
                    gantry_reconciles_total{kind=\"imagebuild\"} 3\ngantry_reconciles_total_other 5\n";
        assert_eq!(counter_sum(text, "gantry_reconciles_total"), 15.0);
    }
}

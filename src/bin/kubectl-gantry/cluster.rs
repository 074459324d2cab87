//! Which cluster and namespace a command talks to: the usual kubectl flags
//! (`--kubeconfig`, `--context`, `-n`, `-A`), else `$KUBECONFIG` or
//! `~/.kube/config`, else the pod's own service account.

use std::time::Duration;

use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::failure::{one_line, CliError};

/// The kubectl flags every command takes (before or after the command's name).
#[derive(Args, Debug, Clone, Default)]
pub struct TargetArgs {
    /// The namespace (default: the context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Every namespace (`list` only).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig file (default: `$KUBECONFIG`, else `~/.kube/config`).
    #[arg(long, global = true)]
    pub kubeconfig: Option<String>,
}

/// A client and the namespace the command works in.
pub struct Target {
    pub client: Client,
    pub namespace: String,
    pub all_namespaces: bool,
}

/// How long the plugin waits for the API server to answer its first request.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the client the flags ask for and checks that the API server answers,
/// so "no cluster" is said once, plainly, before any command starts.
pub async fn connect(args: &TargetArgs) -> Result<Target, CliError> {
    let options = KubeConfigOptions { context: args.context.clone(), ..Default::default() };
    let config = match (&args.kubeconfig, &args.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                CliError::no_cluster(format!("cannot read kubeconfig {path}: {}", one_line(&e.to_string())))
            })?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| e.to_string())
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await.map_err(|e| e.to_string()),
        (None, None) => Config::infer().await.map_err(|e| e.to_string()),
    }
    .map_err(|e| CliError::no_cluster(format!("no usable kubeconfig: {}", one_line(&e))))?;
    let server = config.cluster_url.to_string();
    let namespace = args.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| {
        CliError::no_cluster(format!("cannot make a client for {server}: {}", one_line(&e.to_string())))
    })?;
    match tokio::time::timeout(REACH_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(CliError::no_cluster(format!(
                "cannot reach the cluster at {server}: {}",
                one_line(&e.to_string())
            )))
        }
        Err(_) => {
            return Err(CliError::no_cluster(format!(
                "cannot reach the cluster at {server}: no answer in {}s",
                REACH_TIMEOUT.as_secs()
            )))
        }
    }
    Ok(Target { client, namespace, all_namespaces: args.all_namespaces })
}

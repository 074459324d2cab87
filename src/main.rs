//! The `gantry` command: the operator (`gantry run`) and its helpers.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gantry::{controllers, crdgen, telemetry};

#[derive(Parser)]
#[command(name = "gantry", version, about = "Kubernetes operator for image-build and test pipelines")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at start-up; boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the operator: reconcile PipelineRuns, ImageBuilds and KataInstalls.
    Run {
        /// Log format.
        #[arg(long, value_enum, default_value = "pretty", env = "GANTRY_LOG_FORMAT")]
        log_format: telemetry::LogFormat,
        /// Log level when RUST_LOG is unset.
        #[arg(long, default_value = "info", env = "GANTRY_LOG_LEVEL")]
        log_level: String,
        /// Watch PipelineRuns and ImageBuilds in this namespace only (default: all).
        #[arg(long, env = "GANTRY_NAMESPACE")]
        namespace: Option<String>,
        /// Address of the /metrics, /healthz and /readyz server (port 0: any free port).
        #[arg(long, default_value = "0.0.0.0:8080", env = "GANTRY_HTTP_ADDR")]
        http_addr: std::net::SocketAddr,
        /// The admin-owned configuration file (YAML; see `gantry::config`).
        #[arg(long, env = "GANTRY_CONFIG")]
        config: Option<std::path::PathBuf>,
        /// Reconcile only while holding a Lease, so several replicas are safe.
        #[arg(long, env = "GANTRY_LEADER_ELECT")]
        leader_elect: bool,
        /// Name of the leader Lease.
        #[arg(long, default_value = "gantry")]
        lease_name: String,
        /// Namespace of the leader Lease (default: the pod's namespace).
        #[arg(long, env = "POD_NAMESPACE")]
        lease_namespace: Option<String>,
        /// Seconds a leader's lease lasts without renewal (at least 3); a leader
        /// that could not renew for two thirds of it stops.
        #[arg(long, default_value_t = 15)]
        lease_seconds: u64,
        /// Spread PipelineRuns over this many shards (1 to 64), each a Lease
        /// `<lease-name>-shard-<k>` (needs --leader-elect): each replica reconciles
        /// only the runs of the shards it holds. 1: one leader reconciles everything.
        #[arg(long, default_value_t = 1, env = "GANTRY_SHARDS",
              value_parser = clap::value_parser!(u32).range(1..=i64::from(gantry::engine::shard::BUCKETS)))]
        shards: u32,
        /// The operator's own namespace: KataInstall's installer DaemonSets and smoke test run there.
        #[arg(long, env = "POD_NAMESPACE", default_value = controllers::DEFAULT_OPERATOR_NAMESPACE)]
        operator_namespace: String,
        /// Reconcile only the KataInstalls matching this label selector (e.g. `team=infra`).
        #[arg(long, env = "GANTRY_KATAINSTALL_SELECTOR")]
        katainstall_selector: Option<String>,
        /// Which controllers to run.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "pipelinerun,imagebuild,katainstall")]
        controllers: Vec<controllers::Kind>,
    },
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD.
    Crds {
        /// Write `<plural>.<group>.yaml` files into this folder instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run {
            log_format,
            log_level,
            namespace,
            controllers: kinds,
            http_addr,
            config,
            leader_elect,
            lease_name,
            lease_namespace,
            lease_seconds,
            shards,
            operator_namespace,
            katainstall_selector,
        } => {
            telemetry::init(log_format, &log_level);
            let config = match config {
                Some(path) => gantry::config::OperatorConfig::load(&path)?,
                None => gantry::config::OperatorConfig::default(),
            };
            let namespace = namespace.or_else(|| config.watch_namespace.clone());
            let client = gantry::client::client(config.api_qps()).await?;
            if shards > 1 && !leader_elect {
                anyhow::bail!("--shards {shards} needs --leader-elect: each shard is a Lease");
            }
            let leader = match (leader_elect, lease_namespace) {
                (false, _) => None,
                (true, None) => anyhow::bail!("--leader-elect needs --lease-namespace (or POD_NAMESPACE)"),
                (true, Some(lease_namespace)) => {
                    Some(gantry::leader::LeaseConfig::new(lease_namespace, lease_name, identity(), lease_seconds))
                }
            };
            controllers::run(
                client,
                controllers::Scope {
                    namespace,
                    kinds,
                    http_addr,
                    leader,
                    config,
                    operator_namespace,
                    katainstall_selector,
                    shards,
                },
            )
            .await
        }
        Command::Crds { out_dir: None } => {
            let yaml = crdgen::to_yaml()?;
            match std::io::stdout().write_all(yaml.as_bytes()) {
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            }
        }
        Command::Crds { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            for crd in crdgen::all() {
                let path = dir.join(crdgen::file_name(&crd));
                std::fs::write(&path, serde_yaml::to_string(&crd)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
    }
}

/// This replica's identity for leader election: the pod name, else host and pid.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

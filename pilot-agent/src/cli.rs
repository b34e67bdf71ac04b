use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pilot_agent::bootstrap::XdsType;
use pilot_agent::identity::NodeKind;

#[derive(Debug, Parser)]
#[command(
    name = "pilot-agent",
    version,
    about = "Sidecar agent: bootstraps, starts and supervises Envoy"
)]
pub struct Cli {
    /// The agent's own log filter, as RUST_LOG.
    #[arg(long, env = "PILOT_AGENT_LOG", default_value = "info", global = true)]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Envoy as a sidecar (or router) proxy.
    Proxy(ProxyArgs),
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration such as 200ms, 10s, 1m)"))
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// What kind of proxy this is.
    #[arg(value_enum, default_value = "sidecar")]
    pub node_type: NodeKind,

    /// pilot-discovery's xDS address, HOST:PORT.
    #[arg(
        long,
        alias = "discoveryAddress",
        env = "DISCOVERY_ADDRESS",
        default_value = "istiod.istio-system.svc:15010"
    )]
    pub discovery_address: String,

    /// ADS flavour: `delta` (incremental) or `sotw` (state of the world).
    #[arg(
        long,
        value_enum,
        env = "PILOT_AGENT_XDS_TYPE",
        default_value = "delta"
    )]
    pub xds_type: XdsType,

    /// The Envoy binary; defaults to $ENVOY_BIN, then `envoy` on PATH.
    #[arg(
        long,
        alias = "envoyBinary",
        env = "ENVOY_BIN",
        default_value = "envoy"
    )]
    pub envoy_binary: PathBuf,

    /// Folder the bootstrap (envoy-rev.json) is written to.
    #[arg(long, alias = "configPath", default_value = "/etc/istio/proxy")]
    pub config_path: PathBuf,

    /// Envoy's admin port, bound on 127.0.0.1 only.
    #[arg(long, alias = "proxyAdminPort", default_value_t = 15000)]
    pub admin_port: u16,

    /// The agent's status port (`/healthz/ready`); 0 disables it.
    #[arg(long, alias = "statusPort", default_value_t = 15020)]
    pub status_port: u16,

    /// Envoy's log level: trace, debug, info, warning, error, critical, off.
    #[arg(long, alias = "proxyLogLevel", default_value = "warning")]
    pub proxy_log_level: String,

    /// Per-component Envoy log levels, `upstream:debug,connection:trace`.
    #[arg(long, alias = "proxyComponentLogLevel")]
    pub proxy_component_log_level: Option<String>,

    /// Envoy worker threads; unset lets Envoy use one per core.
    #[arg(long)]
    pub concurrency: Option<u32>,

    /// Envoy's node cluster name.
    #[arg(long, alias = "serviceCluster", default_value = "istio-proxy")]
    pub service_cluster: String,

    /// DNS domain suffix of services.
    #[arg(long, default_value = "cluster.local")]
    pub domain: String,

    /// Restarts of a failing Envoy allowed before the agent gives up and
    /// exits non-zero; refilled after a minute of stable running.
    #[arg(long, env = "PILOT_AGENT_RESTART_BUDGET", default_value_t = 10)]
    pub restart_budget: u32,

    /// Wait before the first restart; doubles with each further one.
    #[arg(long, env = "PILOT_AGENT_RESTART_INITIAL_BACKOFF", default_value = "200ms", value_parser = duration)]
    pub restart_initial_backoff: Duration,

    /// Longest wait between restarts.
    #[arg(long, env = "PILOT_AGENT_RESTART_MAX_BACKOFF", default_value = "30s", value_parser = duration)]
    pub restart_max_backoff: Duration,
}

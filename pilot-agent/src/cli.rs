use std::net::IpAddr;
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
    Proxy(Box<ProxyArgs>),
    /// Print the bootstrap `proxy` would write, and exit.
    Bootstrap(Box<BootstrapArgs>),
    /// Wait until the proxy is ready (exit 0) or the timeout passes (exit 1).
    Wait(WaitArgs),
}

/// A duration such as `200ms`, `10s` or `1m`; a bare number is seconds, as
/// in Istio's `*_SECONDS` variables.
fn duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration such as 200ms, 10s, 1m)"))
}

/// What the bootstrap is made of: shared by `proxy` and `bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
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

    /// PEM root certificates for TLS to discovery; plaintext when unset.
    #[arg(long, env = "XDS_ROOT_CA")]
    pub xds_root_cert: Option<PathBuf>,

    /// Name discovery's certificate must carry; defaults to the address's host.
    #[arg(long, env = "PILOT_AGENT_XDS_SERVER_NAME")]
    pub xds_server_name: Option<String>,

    /// PEM client certificate Envoy presents to discovery (its workload
    /// identity); needs --xds-root-cert and --xds-client-key.
    #[arg(long, value_name = "PATH", requires_all = ["xds_root_cert", "xds_client_key"])]
    pub xds_client_cert: Option<PathBuf>,

    /// PEM private key of --xds-client-cert. Envoy reads it; it is never
    /// copied into the bootstrap.
    #[arg(long, value_name = "PATH", requires = "xds_client_cert")]
    pub xds_client_key: Option<PathBuf>,

    /// Folder the bootstrap (envoy-rev.json) is written to.
    #[arg(
        long,
        alias = "configPath",
        env = "PILOT_AGENT_CONFIG_PATH",
        default_value = "/etc/istio/proxy"
    )]
    pub config_path: PathBuf,

    /// A JSON bootstrap template with `{{ name }}` placeholders, used instead
    /// of the built-in bootstrap (README lists the names). Watched: a change
    /// hot-restarts Envoy.
    #[arg(long, alias = "templateFile", env = "PILOT_AGENT_TEMPLATE_FILE")]
    pub template_file: Option<PathBuf>,

    /// YAML or JSON merged on top of the bootstrap, as Envoy's --config-yaml
    /// (objects merged, lists appended). Watched like the template.
    #[arg(long, env = "ISTIO_BOOTSTRAP_OVERRIDE")]
    pub bootstrap_override: Option<PathBuf>,

    /// Envoy's admin port, bound on 127.0.0.1 only.
    #[arg(
        long,
        alias = "proxyAdminPort",
        env = "PILOT_AGENT_ADMIN_PORT",
        default_value_t = 15000
    )]
    pub admin_port: u16,

    /// The agent's status port (`/healthz/ready`, `/stats/prometheus`); 0 disables it.
    #[arg(
        long,
        alias = "statusPort",
        env = "PILOT_AGENT_STATUS_PORT",
        default_value_t = 15020
    )]
    pub status_port: u16,

    /// Envoy's Prometheus listener (`/stats/prometheus`); 0 leaves it out.
    #[arg(long, env = "PILOT_AGENT_STATS_PORT", default_value_t = 15090)]
    pub stats_port: u16,

    /// Envoy's readiness listener (`/healthz/ready`, answered by the status
    /// port); 0 leaves it out.
    #[arg(long, env = "PILOT_AGENT_READINESS_PORT", default_value_t = 15021)]
    pub readiness_port: u16,

    /// Address the status port and Envoy's Prometheus and readiness
    /// listeners bind.
    #[arg(long, env = "PILOT_AGENT_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// Envoy's node cluster name.
    #[arg(
        long,
        alias = "serviceCluster",
        env = "PILOT_AGENT_SERVICE_CLUSTER",
        default_value = "istio-proxy"
    )]
    pub service_cluster: String,

    /// DNS domain suffix of services.
    #[arg(long, env = "PILOT_AGENT_DOMAIN", default_value = "cluster.local")]
    pub domain: String,

    /// Overload manager limit on downstream connections, all listeners together.
    #[arg(
        long,
        env = "PILOT_AGENT_MAX_DOWNSTREAM_CONNECTIONS",
        default_value_t = 1_000_000
    )]
    pub max_downstream_connections: u64,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,

    /// The Envoy binary; defaults to $ENVOY_BIN, then `envoy` on PATH.
    #[arg(
        long,
        alias = "envoyBinary",
        alias = "binaryPath",
        env = "ENVOY_BIN",
        default_value = "envoy"
    )]
    pub envoy_binary: PathBuf,

    /// Envoy's log level, optionally with component scopes:
    /// `info,misc:error` is `-l info --component-log-level misc:error`.
    #[arg(
        long,
        alias = "proxyLogLevel",
        env = "PILOT_AGENT_PROXY_LOG_LEVEL",
        default_value = "warning"
    )]
    pub proxy_log_level: String,

    /// More per-component Envoy log levels, `upstream:debug,connection:trace`.
    #[arg(
        long,
        alias = "proxyComponentLogLevel",
        env = "PILOT_AGENT_PROXY_COMPONENT_LOG_LEVEL"
    )]
    pub proxy_component_log_level: Option<String>,

    /// Envoy worker threads; unset lets Envoy use one per core.
    #[arg(long, env = "PILOT_AGENT_CONCURRENCY")]
    pub concurrency: Option<u32>,

    /// How long Envoy drains listeners (its --drain-time-s), in a hot
    /// restart or on removal.
    #[arg(long, alias = "drainDuration", env = "PILOT_AGENT_DRAIN_DURATION", default_value = "45s", value_parser = duration)]
    pub drain_duration: Duration,

    /// When a hot restart's old epoch exits (Envoy's --parent-shutdown-time-s).
    #[arg(long, alias = "parentShutdownDuration", env = "PILOT_AGENT_PARENT_SHUTDOWN_DURATION", default_value = "60s", value_parser = duration)]
    pub parent_shutdown_duration: Duration,

    /// On SIGTERM: time between draining the listeners and stopping Envoy.
    #[arg(long, alias = "terminationDrainDuration", env = "TERMINATION_DRAIN_DURATION_SECONDS", default_value = "5s", value_parser = duration)]
    pub termination_drain_duration: Duration,

    /// On SIGTERM, stop once no downstream connection is left (checked every
    /// second after --minimum-drain-duration) instead of after a fixed wait.
    #[arg(long, env = "EXIT_ON_ZERO_ACTIVE_CONNECTIONS", default_value_t = false)]
    pub exit_on_zero_active_connections: bool,

    /// With --exit-on-zero-active-connections: the shortest drain.
    #[arg(long, env = "MINIMUM_DRAIN_DURATION", default_value = "5s", value_parser = duration)]
    pub minimum_drain_duration: Duration,

    /// Envoy's shared-memory base id; unset lets each cold start pick a free one.
    #[arg(long, env = "PILOT_AGENT_BASE_ID")]
    pub base_id: Option<u32>,

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

    /// Time between health probes of Envoy's admin; 0 turns them off.
    #[arg(long, env = "PILOT_AGENT_HEALTH_CHECK_INTERVAL", default_value = "10s", value_parser = duration)]
    pub health_check_interval: Duration,

    /// Failed health probes in a row that make the agent restart Envoy.
    #[arg(long, env = "PILOT_AGENT_HEALTH_FAILURE_THRESHOLD", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub health_failure_threshold: u32,

    /// A file or folder whose change hot-restarts Envoy (e.g. certificates);
    /// repeatable. Changes settle for a second before the restart.
    #[arg(
        long = "watch",
        value_name = "PATH",
        env = "PILOT_AGENT_WATCH",
        value_delimiter = ','
    )]
    pub watch: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The readiness URL to poll.
    #[arg(long, default_value = "http://127.0.0.1:15021/healthz/ready")]
    pub url: String,

    /// Give up after this long.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub timeout: Duration,

    /// Time between polls.
    #[arg(long, default_value = "500ms", value_parser = duration)]
    pub period: Duration,

    /// Timeout of one poll.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub request_timeout: Duration,
}

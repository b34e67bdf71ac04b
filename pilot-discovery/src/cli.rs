use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pilot_discovery::kubernetes::{EndpointApiChoice, LabelSelector};

#[derive(Debug, Parser)]
#[command(
    name = "pilot-discovery",
    version,
    about = "Service mesh control plane: serves Envoy xDS from the mesh model"
)]
pub struct Cli {
    /// Log filter, as RUST_LOG (`info`, `pilot_discovery=debug`, ...).
    #[arg(long, env = "PILOT_LOG", default_value = "info", global = true)]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the discovery service.
    Discovery(DiscoveryArgs),
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration such as 100ms, 10s, 30m)"))
}

/// A source of services and config, as `--registries` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    Kubernetes,
    ConfigFolder,
}

fn registry(s: &str) -> Result<Registry, String> {
    match s.to_ascii_lowercase().as_str() {
        "kubernetes" => Ok(Registry::Kubernetes),
        "configfolder" => Ok(Registry::ConfigFolder),
        _ => Err(format!(
            "{s:?} is not a registry (valid: Kubernetes, ConfigFolder)"
        )),
    }
}

#[derive(Debug, Args)]
pub struct DiscoveryArgs {
    /// Registries to read, comma-separated: `Kubernetes` (an API server) and
    /// `ConfigFolder` (--config-dir). Default: the config folder when
    /// --config-dir is given.
    #[arg(long, value_delimiter = ',', value_parser = registry)]
    pub registries: Vec<Registry>,

    /// Folder of Istio and Kubernetes YAML/JSON to serve, watched for changes.
    #[arg(long, alias = "configDir", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Kubeconfig for the Kubernetes registry. Without it: KUBECONFIG,
    /// ~/.kube/config, then the pod's service account when run in a cluster.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Name of the Kubernetes cluster, in logs and errors.
    #[arg(long, alias = "clusterID", default_value = "Kubernetes")]
    pub cluster_id: String,

    /// Endpoints API of the Kubernetes registry: `auto` (EndpointSlices where
    /// discovery.k8s.io/v1 is served, else Endpoints), `endpointslice` or
    /// `endpoints`.
    #[arg(long, env = "PILOT_ENDPOINT_API", default_value = "auto")]
    pub endpoint_api: EndpointApiChoice,

    /// Read only the Kubernetes namespaces whose labels this selector picks
    /// (`kubectl -l` syntax, e.g. `istio-discovery=enabled`); repeat it to
    /// read those any of them picks. Default: every namespace. Istio's
    /// `meshConfig.discoverySelectors`.
    #[arg(long, alias = "discoverySelectors", value_name = "SELECTOR")]
    pub discovery_selectors: Vec<LabelSelector>,

    /// Address of the plaintext xDS (gRPC) server.
    #[arg(long, alias = "grpcAddr", default_value = "0.0.0.0:15010")]
    pub grpc_addr: SocketAddr,

    /// Address of the xDS server over TLS; served when --tls-cert-file and
    /// --tls-key-file are given.
    #[arg(long, alias = "secureGRPCAddr", default_value = "0.0.0.0:15012")]
    pub secure_grpc_addr: SocketAddr,

    /// PEM certificate chain of the secure xDS server (leaf first).
    #[arg(long, value_name = "PATH", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of --tls-cert-file.
    #[arg(long, value_name = "PATH", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// PEM roots client certificates are verified against when a proxy
    /// presents one on the secure port.
    #[arg(long, value_name = "PATH", requires = "tls_cert_file")]
    pub ca_cert_file: Option<PathBuf>,

    /// Refuse proxies on the secure port that present no valid client
    /// certificate.
    #[arg(long, requires = "ca_cert_file")]
    pub require_client_cert: bool,

    /// Address of the HTTP server: `/ready`, `/metrics`, `/debug/*`.
    #[arg(long, alias = "httpAddr", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Address of the monitoring server: `/metrics` (Prometheus), `/ready`, `/debug/*`.
    #[arg(long, alias = "monitoringAddr", default_value = "0.0.0.0:15014")]
    pub monitoring_addr: SocketAddr,

    /// File holding a bearer token that lets callers off this machine read
    /// the debug pages; without it they answer on loopback only.
    #[arg(long, value_name = "PATH")]
    pub debug_auth: Option<PathBuf>,

    /// DNS domain suffix of services.
    #[arg(long, default_value = "cluster.local")]
    pub domain: String,

    /// Quiet time after a config event before pushing; events in between are merged.
    #[arg(long, env = "PILOT_DEBOUNCE_AFTER", default_value = "100ms", value_parser = duration)]
    pub debounce_after: Duration,

    /// Longest a push waits for events to go quiet.
    #[arg(long, env = "PILOT_DEBOUNCE_MAX", default_value = "10s", value_parser = duration)]
    pub debounce_max: Duration,

    /// Longest a burst of endpoint-only events waits before its push, even
    /// while events keep arriving.
    #[arg(long, env = "PILOT_EDS_DEBOUNCE_MAX", default_value = "100ms", value_parser = duration)]
    pub eds_debounce_max: Duration,

    /// Pushes generated concurrently; 0 scales with the CPU cores (10 per core, 10 to 100).
    #[arg(long, env = "PILOT_PUSH_THROTTLE", default_value_t = 0)]
    pub push_throttle: usize,

    /// A response that cannot be queued for this long marks the proxy as stuck
    /// and its stream is no longer served.
    #[arg(long, env = "PILOT_XDS_SEND_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub xds_send_timeout: Duration,

    /// The most resource bytes in one delta xDS response; a bigger change is
    /// sent in several, each acknowledged on its own.
    #[arg(long, env = "PILOT_XDS_RESPONSE_PART_BYTES", default_value_t = pilot_discovery::xds::protocol::state::PART_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..))]
    pub xds_response_part_bytes: usize,

    /// Interval of HTTP/2 keepalive pings to proxies.
    #[arg(long, alias = "keepaliveInterval", default_value = "30s", value_parser = duration)]
    pub keepalive_interval: Duration,

    /// A proxy that does not answer a keepalive ping within this is disconnected.
    #[arg(long, alias = "keepaliveTimeout", default_value = "10s", value_parser = duration)]
    pub keepalive_timeout: Duration,

    /// Connections older than this are asked to reconnect, so proxies rebalance across replicas.
    #[arg(long, alias = "keepaliveMaxServerConnectionAge", default_value = "30m", value_parser = duration)]
    pub keepalive_max_server_connection_age: Duration,

    /// How long a connection asked to reconnect may linger before it is closed.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub keepalive_max_server_connection_age_grace: Duration,

    /// On SIGTERM, how long streams get to close before the process exits.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub shutdown_grace: Duration,
}

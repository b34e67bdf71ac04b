use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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

#[derive(Debug, Args)]
pub struct DiscoveryArgs {
    /// Folder of Istio and Kubernetes YAML/JSON to serve, watched for changes.
    #[arg(long, alias = "configDir", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Address of the plaintext xDS (gRPC) server.
    #[arg(long, alias = "grpcAddr", default_value = "0.0.0.0:15010")]
    pub grpc_addr: SocketAddr,

    /// Address of the HTTP server (`GET /ready`).
    #[arg(long, alias = "httpAddr", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// DNS domain suffix of services.
    #[arg(long, default_value = "cluster.local")]
    pub domain: String,
}

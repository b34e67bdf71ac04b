use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

mod cli;

use cli::{Cli, Command, DiscoveryArgs, Registry};
use pilot_discovery::debug_access::DebugAccess;
use pilot_discovery::kubernetes::KubeOptions;
use pilot_discovery::push::DebounceConfig;
use pilot_discovery::server::{run, KeepaliveOptions, SecureGrpc, ServerOptions};
use pilot_discovery::tls::TlsFiles;
use pilot_discovery::xds::server::hub::{default_push_throttle, HubConfig};

// The server allocates and frees per push and per response from many tasks
// on a few threads; mimalloc's thread-local free lists cost up to a quarter
// less CPU than glibc's arenas in S1 and S2. Its v2 line returns freed pages
// after 10 ms (v3 waits a second, by which time a server gone quiet after a
// connect storm makes no call that would return them): with huge pages off
// (`memory.rs`), 0.09-0.13 MB per proxy after a storm against 0.23 MB
// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log_level).context("invalid --log-level")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(e) = pilot_discovery::memory::no_huge_pages() {
        tracing::warn!(error = %e, "memory freed after a burst of pushes may stay resident");
    }
    match cli.command {
        Command::Discovery(args) => run(options(args)?, shutdown_signal())
            .await
            .context("pilot-discovery failed"),
    }
}

fn options(args: DiscoveryArgs) -> anyhow::Result<ServerOptions> {
    let registries = if args.registries.is_empty() {
        vec![Registry::ConfigFolder]
    } else {
        args.registries.clone()
    };
    let folder = registries.contains(&Registry::ConfigFolder);
    if !folder && args.config_dir.is_some() {
        anyhow::bail!("--config-dir is set but --registries does not include ConfigFolder");
    }
    if !args.registries.is_empty() && folder && args.config_dir.is_none() {
        anyhow::bail!("--registries includes ConfigFolder but no --config-dir is set");
    }
    let kubernetes = registries
        .contains(&Registry::Kubernetes)
        .then(|| KubeOptions {
            kubeconfig: args.kubeconfig.clone(),
            cluster_id: args.cluster_id.clone(),
            endpoint_api: args.endpoint_api,
            discovery_selectors: args.discovery_selectors.clone(),
        });
    Ok(ServerOptions {
        config_dir: args.config_dir,
        kubernetes,
        grpc_addr: args.grpc_addr,
        secure_grpc: match (&args.tls_cert_file, &args.tls_key_file) {
            (Some(cert), Some(key)) => Some(SecureGrpc {
                addr: args.secure_grpc_addr,
                tls: TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: args.ca_cert_file.clone(),
                    require_client_cert: args.require_client_cert,
                },
            }),
            _ => None,
        },
        http_addr: args.http_addr,
        monitoring_addr: args.monitoring_addr,
        debug_access: match &args.debug_auth {
            Some(file) => DebugAccess::with_token_file(file)?,
            None => DebugAccess::loopback_only(),
        },
        domain: args.domain,
        debounce: DebounceConfig {
            after: args.debounce_after,
            max: args.debounce_max,
            eds_max: args.eds_debounce_max,
        },
        hub: HubConfig {
            push_throttle: match args.push_throttle {
                0 => default_push_throttle(),
                n => n,
            },
            send_timeout: args.xds_send_timeout,
            part_bytes: args.xds_response_part_bytes,
        },
        keepalive: KeepaliveOptions {
            interval: args.keepalive_interval,
            timeout: args.keepalive_timeout,
            max_connection_age: args.keepalive_max_server_connection_age,
            max_connection_age_grace: args.keepalive_max_server_connection_age_grace,
        },
        shutdown_grace: args.shutdown_grace,
    })
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown signal received");
}

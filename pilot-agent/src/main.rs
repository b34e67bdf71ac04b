use std::collections::BTreeMap;
use std::net::SocketAddr;

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

mod cli;

use cli::{Cli, Command, ProxyArgs};
use pilot_agent::bootstrap::{self, BootstrapConfig};
use pilot_agent::envoy::{self, EnvoyLauncher, EnvoyOptions};
use pilot_agent::identity::Identity;
use pilot_agent::supervisor::{supervise, Outcome, RestartPolicy};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log_level).context("invalid --log-level")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let code = match cli.command {
        Command::Proxy(args) => proxy(args).await?,
    };
    std::process::exit(code);
}

async fn proxy(args: ProxyArgs) -> anyhow::Result<i32> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let identity = Identity::from_env(args.node_type, &args.domain, &env)
        .context("cannot work out the proxy's identity from the environment")?;
    let cfg = BootstrapConfig {
        identity,
        service_cluster: args.service_cluster.clone(),
        discovery_address: args.discovery_address.clone(),
        admin_port: args.admin_port,
        xds_type: args.xds_type,
    };
    let rendered = bootstrap::render(&cfg).context("cannot build the Envoy bootstrap")?;
    let path = bootstrap::write(&args.config_path, &rendered)
        .context("cannot write the Envoy bootstrap")?;
    tracing::info!(node = %cfg.identity.node_id(), bootstrap = %path.display(), discovery = %args.discovery_address, "bootstrap written");

    if args.status_port != 0 {
        let addr = SocketAddr::from(([0, 0, 0, 0], args.status_port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on status port {addr}"))?;
        let app = pilot_agent::status::router(args.admin_port);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "status server failed");
            }
        });
    }

    let launcher = EnvoyLauncher(EnvoyOptions {
        binary: args.envoy_binary,
        config_path: path,
        log_level: args.proxy_log_level,
        component_log_level: args.proxy_component_log_level,
        concurrency: args.concurrency,
    });
    let policy = RestartPolicy {
        budget: args.restart_budget,
        initial_backoff: args.restart_initial_backoff,
        max_backoff: args.restart_max_backoff,
        ..RestartPolicy::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(e) = envoy::forward_signals(stop_tx).await {
            tracing::error!(error = %e, "signals will not reach Envoy");
        }
    });
    let code = match supervise(launcher, policy, stop_rx).await {
        Outcome::Stopped(status) => {
            tracing::info!(%status, "Envoy exited");
            envoy::exit_code(status)
        }
        Outcome::BudgetSpent {
            restarts,
            last_failure,
        } => {
            anyhow::bail!(
                "giving up: Envoy failed again after {restarts} restarts (restart budget {}); last failure: {last_failure}",
                args.restart_budget
            );
        }
    };
    Ok(code)
}

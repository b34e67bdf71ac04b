use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::sync::{mpsc, watch};
use tracing_subscriber::EnvFilter;

mod cli;

use cli::{BootstrapArgs, Cli, Command, ProxyArgs, WaitArgs};
use pilot_agent::admin::Admin;
use pilot_agent::bootstrap::{self, BootstrapConfig, Sources, XdsTls};
use pilot_agent::envoy::{EnvoyAdmin, EnvoyLauncher, EnvoyOptions};
use pilot_agent::identity::{Identity, NodeKind};
use pilot_agent::reload::{self, Reloader};
use pilot_agent::supervisor::{
    self, DrainPolicy, HealthPolicy, Outcome, Policy, RestartPolicy, Status,
};
use pilot_agent::{child, log_level, signals, status, wait};

/// File epoch 0 writes its chosen shared-memory base id to.
const BASE_ID_FILE: &str = "envoy-base-id";
/// How long watched paths must be quiet before a hot restart.
const WATCH_SETTLE: Duration = Duration::from_secs(1);
/// Timeout of one call to Envoy's admin API.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log_level).context("invalid --log-level")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let code = match cli.command {
        Command::Proxy(args) => proxy(*args).await?,
        Command::Bootstrap(args) => print_bootstrap(&args)?,
        Command::Wait(args) => wait_ready(&args).await,
    };
    std::process::exit(code);
}

fn bootstrap_config(args: &BootstrapArgs) -> anyhow::Result<(BootstrapConfig, Sources)> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let identity = Identity::from_env(args.node_type, &args.domain, &env)
        .context("cannot work out the proxy's identity from the environment")?;
    let xds_tls = match &args.xds_root_cert {
        Some(root_cert) => Some(XdsTls {
            root_cert: root_cert.clone(),
            server_name: match &args.xds_server_name {
                Some(n) => n.clone(),
                None => bootstrap::discovery_host(&args.discovery_address)?,
            },
            client_cert: args
                .xds_client_cert
                .clone()
                .zip(args.xds_client_key.clone()),
        }),
        None => None,
    };
    let cfg = BootstrapConfig {
        identity,
        service_cluster: args.service_cluster.clone(),
        discovery_address: args.discovery_address.clone(),
        admin_port: args.admin_port,
        xds_type: args.xds_type,
        stats_port: args.stats_port,
        readiness_port: args.readiness_port,
        status_port: args.status_port,
        bind_address: args.bind_address,
        xds_tls,
        max_downstream_connections: args.max_downstream_connections,
        domain: args.domain.clone(),
    };
    let sources = Sources {
        template: args.template_file.clone(),
        overlay: args.bootstrap_override.clone(),
    };
    Ok((cfg, sources))
}

fn print_bootstrap(args: &BootstrapArgs) -> anyhow::Result<i32> {
    let (cfg, sources) = bootstrap_config(args)?;
    let b = bootstrap::build(&cfg, &sources).context("cannot build the Envoy bootstrap")?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &b).context("cannot print the bootstrap")?;
    writeln!(out).context("cannot print the bootstrap")?;
    Ok(0)
}

async fn wait_ready(args: &WaitArgs) -> i32 {
    match wait::wait_ready(&args.url, args.timeout, args.period, args.request_timeout).await {
        Ok(()) => {
            tracing::info!(url = %args.url, "proxy is ready");
            0
        }
        Err(e) => {
            tracing::error!(error = %e, url = %args.url, "proxy did not become ready");
            1
        }
    }
}

async fn proxy(args: ProxyArgs) -> anyhow::Result<i32> {
    if let Err(e) = child::become_subreaper() {
        tracing::warn!(error = %e, "cannot become a child subreaper; orphans of Envoy go to init");
    }
    let b = &args.bootstrap;
    let levels = log_level::parse(
        &args.proxy_log_level,
        args.proxy_component_log_level.as_deref(),
    )
    .context("invalid Envoy log level")?;
    let (cfg, sources) = bootstrap_config(b)?;
    let rendered = bootstrap::build(&cfg, &sources).context("cannot build the Envoy bootstrap")?;
    let path =
        bootstrap::write(&b.config_path, &rendered).context("cannot write the Envoy bootstrap")?;
    tracing::info!(node = %cfg.identity.node_id(), bootstrap = %path.display(), discovery = %b.discovery_address, "bootstrap written");

    let (control_tx, control_rx) = mpsc::channel(16);
    let (status_tx, status_rx) = watch::channel(Status::default());
    let admin = Admin::new(b.admin_port, ADMIN_TIMEOUT);

    if b.status_port != 0 {
        let addr = SocketAddr::from((b.bind_address, b.status_port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on status port {addr}"))?;
        let app = status::router(admin, status_rx.clone(), control_tx.clone());
        tokio::spawn(async move {
            if let Err(e) = status::serve(listener, app).await {
                tracing::error!(error = %e, "status server failed");
            }
        });
    }

    let signal_tx = control_tx.clone();
    tokio::spawn(async move {
        if let Err(e) = signals::forward(signal_tx).await {
            tracing::error!(error = %e, "cannot listen for SIGTERM/SIGINT");
        }
    });

    let reloader = Reloader {
        cfg,
        sources: sources.clone(),
        dir: b.config_path.clone(),
        envoy_binary: args.envoy_binary.clone(),
    };
    let watched: Vec<_> = args
        .watch
        .iter()
        .cloned()
        .chain(sources.template.iter().cloned())
        .chain(sources.overlay.iter().cloned())
        .collect();
    // Held for the life of the proxy: dropping it ends the watch.
    let _watch = if watched.is_empty() {
        None
    } else {
        let (w, changes) = pilot_agent::watch::watch(&watched, &reloader.own_files(), WATCH_SETTLE)
            .context("cannot watch --watch paths")?;
        tracing::info!(paths = ?watched, "watching for changes that hot-restart Envoy");
        tokio::spawn(reload::run(reloader, changes, control_tx.clone()));
        Some(w)
    };

    let launcher = EnvoyLauncher(EnvoyOptions {
        binary: args.envoy_binary.clone(),
        config_path: path,
        log_level: levels.level,
        component_log_level: levels.components,
        concurrency: args.concurrency,
        base_id: args.base_id,
        base_id_path: b.config_path.join(BASE_ID_FILE),
        drain_duration: args.drain_duration,
        parent_shutdown: args.parent_shutdown_duration,
    });
    let envoy_admin = EnvoyAdmin {
        admin,
        ignored_ports: vec![b.stats_port, b.readiness_port],
    };
    let policy = Policy {
        restart: RestartPolicy {
            budget: args.restart_budget,
            initial_backoff: args.restart_initial_backoff,
            max_backoff: args.restart_max_backoff,
            ..RestartPolicy::default()
        },
        health: HealthPolicy {
            interval: args.health_check_interval,
            failure_threshold: args.health_failure_threshold,
            ..HealthPolicy::default()
        },
        drain: DrainPolicy {
            termination_drain: args.termination_drain_duration,
            exit_on_zero_active: args.exit_on_zero_active_connections,
            minimum_drain: args.minimum_drain_duration,
            inbound_only: b.node_type == NodeKind::Sidecar,
            parent_shutdown: args.parent_shutdown_duration,
            ..DrainPolicy::default()
        },
    };
    drop(control_tx);
    match supervisor::supervise(launcher, envoy_admin, policy, control_rx, status_tx).await {
        Outcome::Stopped => {
            tracing::info!("Envoy stopped; exiting");
            Ok(0)
        }
        Outcome::BudgetSpent {
            restarts,
            last_failure,
        } => anyhow::bail!(
            "giving up: Envoy failed again after {restarts} restarts (restart budget {}); last failure: {last_failure}",
            args.restart_budget
        ),
    }
}

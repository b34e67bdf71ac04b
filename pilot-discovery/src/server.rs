//! Wires the sources, the push pipeline and the servers together.
//!
//! Start-up order matters to operators: the ports are bound first (a port in
//! use fails at once), the servers answer straight away (`/ready` says 503 and
//! ADS says `Unavailable` until the sources have loaded), and only then is the
//! first snapshot installed and readiness reported.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::accept::without_nagle;
use crate::configdir::{self, FolderError};
use crate::debug::DebugState;
use crate::debug_access::DebugAccess;
use crate::http::router;
use crate::kubernetes::{self, KubeError, KubeOptions};
use crate::metrics::{Metrics, MetricsError};
use crate::push::{debounce, DebounceConfig, SnapshotBuilder};
use crate::readiness::Readiness;
use crate::sources::SourceSet;
use crate::tls::{TlsError, TlsFiles};
use crate::xds::server::ads::AdsService;
use crate::xds::server::hub::{HubConfig, XdsHub};
use crate::xds::server::stream::until_stopped;

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub config_dir: Option<PathBuf>,
    /// Watch a Kubernetes API server too (`--registries Kubernetes`).
    pub kubernetes: Option<KubeOptions>,
    pub grpc_addr: SocketAddr,
    /// xDS over TLS, served when certificate files are given.
    pub secure_grpc: Option<SecureGrpc>,
    pub http_addr: SocketAddr,
    pub monitoring_addr: SocketAddr,
    /// Who may read `/debug/*`.
    pub debug_access: DebugAccess,
    pub domain: String,
    pub debounce: DebounceConfig,
    pub hub: HubConfig,
    pub keepalive: KeepaliveOptions,
    /// How long streams get to close after a shutdown signal before the
    /// process exits regardless.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct SecureGrpc {
    pub addr: SocketAddr,
    pub tls: TlsFiles,
}

#[derive(Debug, Clone, Copy)]
pub struct KeepaliveOptions {
    pub interval: Duration,
    pub timeout: Duration,
    /// Connections older than this are asked to go away (GOAWAY), so proxies
    /// spread over replicas as replicas come and go.
    pub max_connection_age: Duration,
    /// How long a connection asked to go away may stay before it is closed.
    pub max_connection_age_grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    ConfigDir(#[from] FolderError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Kubernetes(#[from] KubeError),
    #[error("server task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The gRPC server's connection settings, shared by both xDS ports.
fn grpc_server(keepalive: &KeepaliveOptions) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(keepalive.interval))
        .http2_keepalive_timeout(Some(keepalive.timeout))
        .max_connection_age(keepalive.max_connection_age)
        .max_connection_age_grace(keepalive.max_connection_age_grace)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Runs until `shutdown` completes.
pub async fn run(
    opts: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let grpc_listener = bind(opts.grpc_addr).await?;
    // Certificates are read before anything is served: a bad file fails the
    // start, naming it.
    let secure = match &opts.secure_grpc {
        Some(s) => Some((bind(s.addr).await?, s.tls.server_config()?)),
        None => None,
    };
    let http_listener = bind(opts.http_addr).await?;
    let monitoring_listener = bind(opts.monitoring_addr).await?;

    let metrics = Metrics::new()?;
    let hub = Arc::new(XdsHub::new(opts.hub, metrics.clone()));
    let readiness = Readiness::default();
    let first_snapshot = readiness.register("first snapshot");
    // Sources, in order of precedence: the config folder, then Kubernetes.
    let sources = SourceSet::default();
    let (events_tx, events_rx) = mpsc::channel(1024);
    let mut kube = match opts.kubernetes.clone() {
        Some(k) => {
            Some(kubernetes::start(k, events_tx.clone(), metrics.clone(), &readiness).await?)
        }
        None => None,
    };
    let (problems_tx, problems_rx) = watch::channel(Arc::new(Vec::new()));
    let debug = DebugState {
        hub: hub.clone(),
        sources: sources.clone(),
        problems: problems_rx,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move { until_stopped(&mut rx).await };
    let ads = || AdsService::new(hub.clone(), stop_rx.clone());
    let grpc = grpc_server(&opts.keepalive)
        .add_service(ads())
        .serve_with_incoming_shutdown(without_nagle(grpc_listener), stopped(stop_rx.clone()));
    let secure_grpc = match secure {
        Some((listener, tls)) => Some(
            grpc_server(&opts.keepalive)
                .tls_config(tls)?
                .add_service(ads())
                .serve_with_incoming_shutdown(without_nagle(listener), stopped(stop_rx.clone())),
        ),
        None => None,
    };
    let app = router(readiness.clone(), debug, opts.debug_access.clone())
        .into_make_service_with_connect_info::<SocketAddr>();
    let http =
        axum::serve(http_listener, app.clone()).with_graceful_shutdown(stopped(stop_rx.clone()));
    let monitoring =
        axum::serve(monitoring_listener, app).with_graceful_shutdown(stopped(stop_rx.clone()));
    let servers = tokio::spawn(async move {
        let secure = async move {
            match secure_grpc {
                Some(s) => s.await,
                None => Ok(()),
            }
        };
        let (g, s, h, m) = tokio::join!(grpc, secure, http, monitoring);
        g?;
        s?;
        h.map_err(ServerError::Http)?;
        m.map_err(ServerError::Http)?;
        Ok::<(), ServerError>(())
    });
    tracing::info!(
        grpc = %opts.grpc_addr,
        secure_grpc = ?opts.secure_grpc.as_ref().map(|s| s.addr),
        http = %opts.http_addr,
        monitoring = %opts.monitoring_addr,
        "pilot-discovery listening"
    );

    // Served while the folder loads: `/ready` says what is still pending.
    let mut _folder = None;
    if let Some(dir) = opts.config_dir.clone() {
        let folder = configdir::start(dir, events_tx.clone(), metrics.clone(), &readiness).await?;
        sources.add(folder.reader.clone());
        _folder = Some(folder);
    }
    if let Some(k) = &kube {
        sources.add(k.reader.clone());
    }
    drop(events_tx);
    if let Some(k) = kube.as_mut() {
        tracing::info!("waiting for the Kubernetes watches to sync");
        k.wait_synced().await;
    }

    let mut builder =
        SnapshotBuilder::new(opts.domain.clone(), sources, metrics.clone(), problems_tx);
    hub.install_first(builder.current());
    drop(first_snapshot);
    tracing::info!("pilot-discovery ready");

    let push_hub = hub.clone();
    tokio::spawn(debounce::run(events_rx, opts.debounce, move |merged| {
        if let Some((snapshot, scope)) = builder.on_burst(&merged) {
            push_hub.publish(snapshot, scope, &merged);
        }
    }));

    tokio::pin!(servers);
    tokio::select! {
        result = &mut servers => return result?,
        () = shutdown => {}
    }
    tracing::info!(
        streams = hub.connections().len(),
        "shutting down: closing streams and listeners"
    );
    let _ = stop_tx.send(true);
    match tokio::time::timeout(opts.shutdown_grace, servers).await {
        Ok(result) => result??,
        Err(_) => {
            tracing::warn!(grace = ?opts.shutdown_grace, "connections still open after the shutdown grace period; exiting anyway")
        }
    }
    tracing::info!("pilot-discovery stopped");
    Ok(())
}

//! Wires the sources, the snapshot channel and the servers together.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mesh_model::MeshSnapshot;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use xds_proto::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;

use crate::configdir::{watch_folder, ConfigFolder};
use crate::http::{router, Readiness};
use crate::registry::build_snapshot;
use crate::xds::ads::AdsService;

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub config_dir: Option<PathBuf>,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub domain: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot read config folder {dir}: {source}")]
    ConfigDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch config folder {dir}: {source}")]
    Watch {
        dir: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
}

fn log_reload_errors(errors: &[crate::configdir::ConfigError]) {
    for e in errors {
        tracing::error!(file = %e.file.display(), "invalid config: {e}");
    }
}

/// Runs until `shutdown` completes.
pub async fn run(
    opts: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let readiness = Readiness::default();
    let mut version = 1;

    let mut folder = opts.config_dir.as_ref().map(ConfigFolder::new);
    if let Some(f) = folder.as_mut() {
        let reload = f.reload().map_err(|source| ServerError::ConfigDir {
            dir: f.dir().to_path_buf(),
            source,
        })?;
        log_reload_errors(&reload.errors);
        tracing::info!(dir = %f.dir().display(), resources = f.resources().len(), "config folder loaded");
    }
    let empty = Default::default();
    let resources = folder.as_ref().map(|f| f.resources()).unwrap_or(&empty);
    let first = build_snapshot(version, &opts.domain, resources);
    log_snapshot(&first);
    let (snap_tx, snap_rx) = watch::channel(Arc::new(first));
    readiness.mark_ready();

    // Keep the watcher alive for the life of the server.
    let _watcher = match folder {
        Some(mut folder) => {
            let dir = folder.dir().to_path_buf();
            let (watcher, mut changes) =
                watch_folder(&dir).map_err(|source| ServerError::Watch {
                    dir: dir.clone(),
                    source,
                })?;
            let domain = opts.domain.clone();
            tokio::spawn(async move {
                while changes.recv().await.is_some() {
                    match folder.reload() {
                        Err(e) => {
                            tracing::error!(dir = %dir.display(), error = %e, "cannot read config folder; keeping the current config")
                        }
                        Ok(reload) => {
                            log_reload_errors(&reload.errors);
                            if reload.changed {
                                version += 1;
                                let snap = build_snapshot(version, &domain, folder.resources());
                                log_snapshot(&snap);
                                snap_tx.send_replace(Arc::new(snap));
                            }
                        }
                    }
                }
            });
            Some(watcher)
        }
        None => None,
    };

    let grpc_listener =
        TcpListener::bind(opts.grpc_addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: opts.grpc_addr,
                source,
            })?;
    let http_listener =
        TcpListener::bind(opts.http_addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: opts.http_addr,
                source,
            })?;
    tracing::info!(grpc = %opts.grpc_addr, http = %opts.http_addr, "pilot-discovery serving");

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let grpc = tonic::transport::Server::builder()
        .add_service(AggregatedDiscoveryServiceServer::new(AdsService::new(
            snap_rx,
        )))
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(grpc_listener),
            stopped(stop_rx.clone()),
        );
    let http =
        axum::serve(http_listener, router(readiness)).with_graceful_shutdown(stopped(stop_rx));
    let (g, h) = tokio::join!(grpc, async { http.await.map_err(ServerError::Http) });
    g?;
    h?;
    tracing::info!("pilot-discovery stopped");
    Ok(())
}

fn log_snapshot(snap: &MeshSnapshot) {
    tracing::info!(
        version = snap.version,
        services = snap.services.len(),
        endpoints = snap.endpoints.values().map(Vec::len).sum::<usize>(),
        virtual_services = snap.virtual_services.len(),
        destination_rules = snap.destination_rules.len(),
        "snapshot built"
    );
}

//! The Kubernetes adapter: watches an API server (Services, EndpointSlices
//! or Endpoints, Pods, Nodes, and the Istio networking custom resources) and
//! publishes what it holds as one more source of the aggregate registry.
//!
//! Namespaces are watched too: discovery selectors pick the namespaces whose
//! objects are read.
//!
//! Each kind has its own watch (kube-rs's watcher: list, then watch from the
//! list's resource version, relisting with backoff when the watch breaks or
//! the version is too old). All watches feed one store task, which owns the
//! source's view, publishes it, and sends one event per changed object.
//! Istio kinds whose CRDs are installed later are watched once they appear.

mod client;
pub mod convert;
mod crds;
pub mod discovery;
mod options;
mod selector;
mod store;
mod watch;

use std::time::Duration;

use tokio::sync::{mpsc, watch as tokio_watch};

use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::sources::{self, Reader, SourceEvent};

pub use discovery::{endpoint_api_of, EndpointApi, EndpointApiChoice};
pub use options::{KubeError, KubeOptions};
pub use selector::{LabelSelector, SelectorError};

/// How long API discovery waits between attempts while the API server is
/// unreachable at start.
const DISCOVERY_RETRY: Duration = Duration::from_secs(2);

/// The running adapter: its published view, and whether every watch has
/// listed its kind yet.
pub struct KubeSource {
    pub reader: Reader,
    synced: tokio_watch::Receiver<bool>,
}

impl KubeSource {
    /// Completes once every watch has listed its kind, so a snapshot built
    /// from `reader` is complete.
    pub async fn wait_synced(&mut self) {
        // The sender lives as long as the store task, which never ends on
        // its own; a closed channel means the runtime is stopping.
        let _ = self.synced.wait_for(|synced| *synced).await;
    }
}

/// Connects, then in the background discovers what the API server serves
/// (retrying while it is unreachable) and starts every watch. A bad client
/// configuration fails here; an unreachable server only delays the sync.
pub async fn start(
    opts: KubeOptions,
    events: mpsc::Sender<SourceEvent>,
    metrics: Metrics,
    readiness: &Readiness,
) -> Result<KubeSource, KubeError> {
    let client = client::connect(&opts).await?;
    let syncing = readiness.register(convert::origin(&opts.cluster_id).display().to_string());
    let (writer, reader) = sources::channel();
    let (synced_tx, synced_rx) = tokio_watch::channel(false);
    tokio::spawn(async move {
        let served = loop {
            match discovery::discover(&client, opts.endpoint_api).await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!(cluster = %opts.cluster_id, error = %e, "Kubernetes API discovery failed; retrying");
                    tokio::time::sleep(DISCOVERY_RETRY).await;
                }
            }
        };
        tracing::info!(
            cluster = %opts.cluster_id,
            endpoints = %served.endpoint_api,
            istio_kinds = ?served.istio.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
            discovery_selectors = ?opts.discovery_selectors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "watching the Kubernetes API server"
        );
        let (tx, rx) = mpsc::channel(1024);
        let mut watches = watch::Watches::new(client.clone(), &opts, tx);
        watches.start_core(served.endpoint_api);
        watches.start_istio(&served.istio);
        let store = store::Store::new(
            watches.watched().clone(),
            &convert::origin(&opts.cluster_id),
            opts.discovery_selectors.clone(),
        );
        tokio::spawn(crds::watch_for_istio_kinds(client, watches));
        store::run(store, rx, writer, synced_tx, syncing, events, metrics).await;
    });
    Ok(KubeSource {
        reader,
        synced: synced_rx,
    })
}

//! How the adapter is configured, and how connecting to the API server
//! fails.

use std::path::PathBuf;

use super::discovery::EndpointApiChoice;
use super::selector::LabelSelector;

#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// A kubeconfig file; `None` infers the config as kubectl does
    /// (`KUBECONFIG`, `~/.kube/config`, then the in-cluster service account).
    pub kubeconfig: Option<PathBuf>,
    /// Names this cluster in logs and errors.
    pub cluster_id: String,
    pub endpoint_api: EndpointApiChoice,
    /// Namespaces read: those any selects; empty reads all.
    pub discovery_selectors: Vec<LabelSelector>,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no Kubernetes client configuration (no --kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster service account): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("invalid Kubernetes client configuration: {0}")]
    Client(#[source] kube::Error),
}

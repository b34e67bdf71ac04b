//! A Kubernetes client from a kubeconfig file or the environment.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::options::{KubeError, KubeOptions};

pub async fn connect(opts: &KubeOptions) -> Result<Client, KubeError> {
    let config = match &opts.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|source| KubeError::Kubeconfig {
                path: path.clone(),
                source,
            })?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|source| KubeError::Kubeconfig {
                    path: path.clone(),
                    source,
                })?
        }
        None => Config::infer().await?,
    };
    Client::try_from(config).map_err(KubeError::Client)
}

//! One watch per kind. Each turns kube-rs watcher events into store updates:
//! a full (re)list arrives as one `Listed`, so objects deleted while the
//! watch was broken disappear, and later events one by one.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::PathBuf;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource as KubeResource};
use mesh_model::kinds::KINDS;
use mesh_model::{ConfigKey, ConfigKind};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::convert::{self, Converted};
use super::discovery::{EndpointApi, IstioKind};
use super::options::KubeOptions;

/// What a watch tells the store.
#[derive(Debug)]
pub enum Update {
    Applied(ConfigKey, Converted),
    Deleted(ConfigKey),
    /// Everything of `kind` that exists, after a (re)list.
    Listed {
        kind: ConfigKind,
        items: Vec<(ConfigKey, Converted)>,
    },
}

/// The watches running, by kind; more are added when Istio's CRDs appear
/// after the start.
pub struct Watches {
    client: Client,
    origin: PathBuf,
    tx: mpsc::Sender<Update>,
    watched: BTreeSet<ConfigKind>,
}

impl Watches {
    pub fn new(client: Client, opts: &KubeOptions, tx: mpsc::Sender<Update>) -> Watches {
        Watches {
            client,
            origin: convert::origin(&opts.cluster_id),
            tx,
            watched: BTreeSet::new(),
        }
    }

    pub fn watched(&self) -> &BTreeSet<ConfigKind> {
        &self.watched
    }

    /// A watch for each Kubernetes kind of [`core_kinds`].
    pub fn start_core(&mut self, endpoint_api: EndpointApi) {
        let client = &self.client;
        let tx = &self.tx;
        for kind in core_kinds(endpoint_api) {
            let o = self.origin.clone();
            match kind {
                ConfigKind::Service => watch_kind(
                    Api::<Service>::all(client.clone()),
                    kind,
                    convert::service,
                    tx.clone(),
                ),
                ConfigKind::EndpointSlice => watch_kind(
                    Api::<EndpointSlice>::all(client.clone()),
                    kind,
                    convert::endpoint_slice,
                    tx.clone(),
                ),
                ConfigKind::Endpoints => watch_kind(
                    Api::<Endpoints>::all(client.clone()),
                    kind,
                    convert::endpoints,
                    tx.clone(),
                ),
                ConfigKind::Pod => watch_kind(
                    Api::<Pod>::all(client.clone()),
                    kind,
                    move |p| convert::pod(p, o.clone()),
                    tx.clone(),
                ),
                ConfigKind::Node => watch_kind(
                    Api::<Node>::all(client.clone()),
                    kind,
                    move |n| convert::node(n, o.clone()),
                    tx.clone(),
                ),
                ConfigKind::Namespace => watch_kind(
                    Api::<Namespace>::all(client.clone()),
                    kind,
                    move |n| convert::namespace(n, o.clone()),
                    tx.clone(),
                ),
                // A Kubernetes kind in the table with no typed watch here: a
                // test (every_kubernetes_kind_of_the_table_is_watched) fails.
                other => {
                    tracing::error!(kind = %other, "no watch for this Kubernetes kind");
                    continue;
                }
            }
            self.watched.insert(kind);
        }
    }

    /// A watch for each of `kinds` not watched yet.
    pub fn start_istio(&mut self, kinds: &[IstioKind]) {
        for istio in kinds {
            if !self.watched.insert(istio.kind) {
                continue;
            }
            tracing::info!(kind = %istio.kind, version = %istio.api.api_version, "watching Istio resources");
            let api = Api::<DynamicObject>::all_with(self.client.clone(), &istio.api);
            let resource = istio.api.clone();
            let o = self.origin.clone();
            watch_kind(
                api,
                istio.kind,
                move |obj| convert::custom_resource(obj, &resource, o.clone()),
                self.tx.clone(),
            );
        }
    }
}

/// The Kubernetes (not custom) kinds of the kind table, with the one
/// endpoints API in use.
pub fn core_kinds(endpoint_api: EndpointApi) -> impl Iterator<Item = ConfigKind> {
    KINDS
        .iter()
        .filter(|k| !k.is_istio())
        .map(|k| k.kind)
        .filter(move |k| {
            !matches!(
                (k, endpoint_api),
                (ConfigKind::EndpointSlice, EndpointApi::Endpoints)
                    | (ConfigKind::Endpoints, EndpointApi::EndpointSlice)
            )
        })
}

/// Starts one watch; it runs for the life of the process.
fn watch_kind<K, F>(api: Api<K>, kind: ConfigKind, convert: F, tx: mpsc::Sender<Update>)
where
    K: KubeResource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Fn(K) -> Converted + Send + 'static,
{
    tokio::spawn(run(api, kind, convert, tx));
}

async fn run<K, F>(api: Api<K>, kind: ConfigKind, convert: F, tx: mpsc::Sender<Update>)
where
    K: KubeResource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Fn(K) -> Converted + Send + 'static,
{
    let key_of = |obj: &K| {
        let meta = obj.meta();
        convert::key(kind, meta.namespace.as_deref(), meta.name.as_deref())
    };
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut listing: Option<Vec<(ConfigKey, Converted)>> = None;
    while let Some(event) = stream.next().await {
        let update = match event {
            Ok(Event::Init) => {
                listing = Some(Vec::new());
                continue;
            }
            Ok(Event::InitApply(obj)) => {
                let key = key_of(&obj);
                listing
                    .get_or_insert_with(Vec::new)
                    .push((key, convert(obj)));
                continue;
            }
            Ok(Event::InitDone) => Update::Listed {
                kind,
                items: listing.take().unwrap_or_default(),
            },
            Ok(Event::Apply(obj)) => Update::Applied(key_of(&obj), convert(obj)),
            Ok(Event::Delete(obj)) => Update::Deleted(key_of(&obj)),
            Err(e) => {
                tracing::warn!(%kind, error = %e, "Kubernetes watch failed; resuming with backoff");
                continue;
            }
        };
        if tx.send(update).await.is_err() {
            return; // the store is gone: shutting down
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::discovery::EndpointApiChoice;

    /// Every Kubernetes kind of the table gets a watch (with either
    /// endpoints API), so a kind added to the table and not here fails.
    #[tokio::test]
    async fn every_kubernetes_kind_of_the_table_is_watched() {
        // Nothing listens there: the watches only retry, which is enough
        // to see which were started.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let opts = KubeOptions {
            kubeconfig: None,
            cluster_id: "test".into(),
            endpoint_api: EndpointApiChoice::Auto,
            discovery_selectors: Vec::new(),
        };
        let mut all = BTreeSet::new();
        for api in [EndpointApi::EndpointSlice, EndpointApi::Endpoints] {
            let (tx, _rx) = mpsc::channel(8);
            let mut watches = Watches::new(client.clone(), &opts, tx);
            watches.start_core(api);
            let started: BTreeSet<ConfigKind> = core_kinds(api).collect();
            assert_eq!(watches.watched(), &started, "{api}");
            all.extend(started);
        }
        let kubernetes: BTreeSet<ConfigKind> = KINDS
            .iter()
            .filter(|k| !k.is_istio())
            .map(|k| k.kind)
            .collect();
        assert_eq!(all, kubernetes);
    }
}

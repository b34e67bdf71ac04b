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

    /// Services, the endpoints API in use, Pods, Nodes and Namespaces.
    pub fn start_core(&mut self, endpoint_api: EndpointApi) {
        let client = &self.client;
        let tx = &self.tx;
        self.watched.insert(ConfigKind::Service);
        watch_kind(
            Api::<Service>::all(client.clone()),
            ConfigKind::Service,
            convert::service,
            tx.clone(),
        );
        match endpoint_api {
            EndpointApi::EndpointSlice => {
                self.watched.insert(ConfigKind::EndpointSlice);
                watch_kind(
                    Api::<EndpointSlice>::all(client.clone()),
                    ConfigKind::EndpointSlice,
                    convert::endpoint_slice,
                    tx.clone(),
                );
            }
            EndpointApi::Endpoints => {
                self.watched.insert(ConfigKind::Endpoints);
                watch_kind(
                    Api::<Endpoints>::all(client.clone()),
                    ConfigKind::Endpoints,
                    convert::endpoints,
                    tx.clone(),
                );
            }
        }
        let o = self.origin.clone();
        self.watched.insert(ConfigKind::Pod);
        watch_kind(
            Api::<Pod>::all(client.clone()),
            ConfigKind::Pod,
            move |p| convert::pod(p, o.clone()),
            tx.clone(),
        );
        let o = self.origin.clone();
        self.watched.insert(ConfigKind::Node);
        watch_kind(
            Api::<Node>::all(client.clone()),
            ConfigKind::Node,
            move |n| convert::node(n, o.clone()),
            tx.clone(),
        );
        let o = self.origin.clone();
        self.watched.insert(ConfigKind::Namespace);
        watch_kind(
            Api::<Namespace>::all(client.clone()),
            ConfigKind::Namespace,
            move |n| convert::namespace(n, o.clone()),
            tx.clone(),
        );
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

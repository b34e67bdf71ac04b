//! One configuration object as a source holds it, typed by kind. Every source
//! (the config folder, the Kubernetes API server) produces these, and the
//! snapshot builder builds the mesh model from them. Of Kubernetes' own
//! objects, those whose status churns (Pods) or that only select (Nodes,
//! Namespaces) are kept as the little the model reads of them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service as KubeService};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mesh_model::{ConfigKey, ConfigKind, IstioConfig, Locality};
use serde::Serialize;
use serde_json::Value;

/// What a source holds, by key. A persistent map: publishing a source's
/// state after one change shares all but the changed path with the state
/// before, where a `BTreeMap` would be copied (and the old copy dropped)
/// whole, 10,000 resources for one endpoint edit.
pub type ResourceMap = imbl::OrdMap<ConfigKey, Resource>;

/// The file each resource of a source was read from; persistent for the
/// same reason as [`ResourceMap`].
pub type Origins = imbl::OrdMap<ConfigKey, Arc<Path>>;

/// Shared, not copied: a reload of a source of thousands of objects clones
/// every one of them into the merged view, and an unchanged object then
/// compares equal by pointer.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Istio(IstioConfig),
    KubeService(Arc<KubeService>),
    EndpointSlice(Arc<EndpointSlice>),
    KubeEndpoints(Arc<Endpoints>),
    /// Only what the snapshot builder reads of a Pod: a Pod's status
    /// changes often and none of that churn should reach the model.
    Pod(Arc<PodInfo>),
    Node(Arc<NodeInfo>),
    /// Its labels, which discovery selectors match.
    Namespace(Arc<NamespaceInfo>),
}

impl Resource {
    pub fn key(&self) -> ConfigKey {
        match self {
            Resource::Istio(c) => c.key(),
            Resource::KubeService(s) => kube_key(ConfigKind::Service, &s.metadata),
            Resource::EndpointSlice(s) => kube_key(ConfigKind::EndpointSlice, &s.metadata),
            Resource::KubeEndpoints(e) => kube_key(ConfigKind::Endpoints, &e.metadata),
            Resource::Pod(p) => ConfigKey {
                kind: ConfigKind::Pod,
                namespace: p.namespace.clone(),
                name: p.name.clone(),
            },
            Resource::Node(n) => ConfigKey {
                kind: ConfigKind::Node,
                namespace: String::new(),
                name: n.name.clone(),
            },
            Resource::Namespace(n) => ConfigKey {
                kind: ConfigKind::Namespace,
                namespace: String::new(),
                name: n.name.clone(),
            },
        }
    }

    /// The object as JSON, for debug pages.
    pub fn to_json(&self) -> Value {
        let json = match self {
            Resource::Istio(c) => return c.to_json(),
            Resource::KubeService(s) => serde_json::to_value(s),
            Resource::EndpointSlice(s) => serde_json::to_value(s),
            Resource::KubeEndpoints(e) => serde_json::to_value(e),
            Resource::Pod(p) => serde_json::to_value(p),
            Resource::Node(n) => serde_json::to_value(n),
            Resource::Namespace(n) => serde_json::to_value(n),
        };
        json.unwrap_or(Value::Null)
    }
}

fn kube_key(kind: ConfigKind, meta: &ObjectMeta) -> ConfigKey {
    ConfigKey {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
    }
}

/// Drops the metadata that changes on every write (resource version,
/// managed fields, ...) so an object the model does not care about compares
/// equal to its previous version and causes no event.
pub fn strip_volatile(meta: &mut ObjectMeta) {
    meta.resource_version = None;
    meta.managed_fields = None;
    meta.generation = None;
    meta.uid = None;
    meta.self_link = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
        a.remove("endpoints.kubernetes.io/last-change-trigger-time");
    }
}

const REGION_LABEL: &str = "topology.kubernetes.io/region";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const SUBZONE_LABEL: &str = "topology.istio.io/subzone";

/// What the model reads of a Pod: who it is and where it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodInfo {
    pub name: String,
    pub namespace: String,
    pub ips: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub node_name: String,
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> Option<PodInfo> {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let mut ips: Vec<String> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|ip| ip.ip.clone()).collect())
            .unwrap_or_default();
        if let Some(ip) = status.and_then(|s| s.pod_ip.clone()) {
            if !ips.contains(&ip) {
                ips.insert(0, ip);
            }
        }
        Some(PodInfo {
            name: pod.metadata.name.clone()?,
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            ips,
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            service_account: spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".into()),
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        })
    }

    /// The pod as the id of a proxy running in it names it (`name.namespace`).
    pub fn proxy_key(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

/// What the model reads of a Node: its locality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub locality: Locality,
}

impl NodeInfo {
    pub fn from_node(node: &Node) -> Option<NodeInfo> {
        let labels = node.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).cloned().unwrap_or_default();
        Some(NodeInfo {
            name: node.metadata.name.clone()?,
            locality: Locality {
                region: label(REGION_LABEL),
                zone: label(ZONE_LABEL),
                subzone: label(SUBZONE_LABEL),
            },
        })
    }
}

/// What the model reads of a Namespace: the labels discovery selectors
/// match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl NamespaceInfo {
    pub fn from_namespace(ns: &Namespace) -> Option<NamespaceInfo> {
        Some(NamespaceInfo {
            name: ns.metadata.name.clone()?,
            labels: ns.metadata.labels.clone().unwrap_or_default(),
        })
    }
}

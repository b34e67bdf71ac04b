//! One configuration object as a source holds it, typed by kind. Every source
//! (the config folder, the Kubernetes API server) produces these, and the
//! registry builds the mesh model from them.

use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Service as KubeService};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mesh_model::istio::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use mesh_model::{Config, ConfigKey, ConfigKind};

use crate::registry::kube::{NamespaceInfo, NodeInfo, PodInfo};

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
    VirtualService(Arc<Config<VirtualService>>),
    DestinationRule(Arc<Config<DestinationRule>>),
    ServiceEntry(Arc<Config<ServiceEntry>>),
    WorkloadEntry(Arc<Config<WorkloadEntry>>),
    Sidecar(Arc<Config<Sidecar>>),
    Gateway(Arc<Config<Gateway>>),
    KubeService(Arc<KubeService>),
    EndpointSlice(Arc<EndpointSlice>),
    KubeEndpoints(Arc<Endpoints>),
    /// Only what the registry reads of a Pod: a Pod's status changes often
    /// and none of that churn should reach the model.
    Pod(Arc<PodInfo>),
    Node(Arc<NodeInfo>),
    /// Its labels, which discovery selectors match.
    Namespace(Arc<NamespaceInfo>),
}

impl Resource {
    pub fn key(&self) -> ConfigKey {
        match self {
            Resource::VirtualService(c) => c.key(ConfigKind::VirtualService),
            Resource::DestinationRule(c) => c.key(ConfigKind::DestinationRule),
            Resource::ServiceEntry(c) => c.key(ConfigKind::ServiceEntry),
            Resource::WorkloadEntry(c) => c.key(ConfigKind::WorkloadEntry),
            Resource::Sidecar(c) => c.key(ConfigKind::Sidecar),
            Resource::Gateway(c) => c.key(ConfigKind::Gateway),
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

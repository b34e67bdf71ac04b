use std::sync::Arc;

use k8s_openapi::api::core::v1::Service as KubeService;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use mesh_model::istio::{DestinationRule, ServiceEntry, VirtualService, WorkloadEntry};
use mesh_model::{Config, ConfigKey, ConfigKind};

/// One configuration object read from a source, typed by kind. Shared, not
/// copied: a reload of a folder of thousands of objects clones every one of
/// them into the merged view, and an unchanged object then compares equal by
/// pointer.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    VirtualService(Arc<Config<VirtualService>>),
    DestinationRule(Arc<Config<DestinationRule>>),
    ServiceEntry(Arc<Config<ServiceEntry>>),
    WorkloadEntry(Arc<Config<WorkloadEntry>>),
    KubeService(Arc<KubeService>),
    EndpointSlice(Arc<EndpointSlice>),
}

impl Resource {
    pub fn key(&self) -> ConfigKey {
        match self {
            Resource::VirtualService(c) => c.key(ConfigKind::VirtualService),
            Resource::DestinationRule(c) => c.key(ConfigKind::DestinationRule),
            Resource::ServiceEntry(c) => c.key(ConfigKind::ServiceEntry),
            Resource::WorkloadEntry(c) => c.key(ConfigKind::WorkloadEntry),
            Resource::KubeService(s) => kube_key(ConfigKind::Service, &s.metadata),
            Resource::EndpointSlice(s) => kube_key(ConfigKind::EndpointSlice, &s.metadata),
        }
    }
}

fn kube_key(
    kind: ConfigKind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> ConfigKey {
    ConfigKey {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
    }
}

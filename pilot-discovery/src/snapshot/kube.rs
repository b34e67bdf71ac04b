//! Kubernetes objects (Service, EndpointSlice or Endpoints, Pod, Node) to
//! model services and endpoints, as Istio's Kubernetes controller converts
//! them. Shared by every source of Kubernetes objects: the config folder and
//! the API server watches.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, ObjectReference, Service as KubeService};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use mesh_model::{
    ConfigKey, ConfigKind, Endpoint, HealthStatus, Hostname, Locality, Protocol, Resolution,
    Service, ServicePort,
};

use crate::resource::{NodeInfo, PodInfo};

/// The label an EndpointSlice carries naming its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// One address of an EndpointSlice or Endpoints object, as both say it.
struct Address<'a> {
    ip: &'a str,
    target: Option<&'a ObjectReference>,
    node_name: Option<&'a str>,
    /// The slice's own zone hint, used when the node is unknown.
    zone: Option<&'a str>,
    health: HealthStatus,
}

/// Pods by name and by IP, and Nodes by name, so each endpoint address finds
/// its workload's labels, service account and locality.
#[derive(Default)]
pub struct WorkloadLookup<'a> {
    pods_by_name: HashMap<(&'a str, &'a str), &'a PodInfo>,
    pods_by_ip: HashMap<&'a str, &'a PodInfo>,
    nodes: HashMap<&'a str, &'a NodeInfo>,
}

impl<'a> WorkloadLookup<'a> {
    pub fn add_pod(&mut self, pod: &'a PodInfo) {
        self.pods_by_name
            .insert((pod.namespace.as_str(), pod.name.as_str()), pod);
        for ip in &pod.ips {
            self.pods_by_ip.insert(ip.as_str(), pod);
        }
    }

    pub fn add_node(&mut self, node: &'a NodeInfo) {
        self.nodes.insert(node.name.as_str(), node);
    }

    /// The pod behind an address: the one its target reference names, else
    /// the one holding the IP.
    fn pod(&self, target: Option<&ObjectReference>, address: &str) -> Option<&'a PodInfo> {
        let by_ref = target
            .filter(|t| t.kind.as_deref() == Some("Pod"))
            .and_then(|t| Some((t.namespace.as_deref()?, t.name.as_deref()?)))
            .and_then(|key| self.pods_by_name.get(&key));
        by_ref.or_else(|| self.pods_by_ip.get(address)).copied()
    }

    /// An endpoint of `service` on `port` at `address`, with what its pod
    /// and node say about it.
    fn endpoint(
        &self,
        service: &Hostname,
        port_name: &str,
        port: u16,
        address: &Address<'_>,
    ) -> Endpoint {
        let pod = self.pod(address.target, address.ip);
        let node = address
            .node_name
            .or(pod.map(|p| p.node_name.as_str()))
            .and_then(|n| self.nodes.get(n));
        let locality = match node {
            Some(n) => n.locality.clone(),
            None => Locality {
                zone: address.zone.unwrap_or_default().to_string(),
                ..Locality::default()
            },
        };
        Endpoint {
            service: service.clone(),
            service_port_name: port_name.to_string(),
            address: address.ip.to_string(),
            port,
            labels: pod.map(|p| p.labels.clone()).unwrap_or_default(),
            locality,
            health: address.health,
            service_account: pod.map(|p| p.service_account.clone()).unwrap_or_default(),
            weight: 0,
        }
    }
}

pub fn convert_service(ks: &KubeService, domain: &str) -> Option<(Service, Vec<Endpoint>)> {
    let name = ks.metadata.name.as_deref()?;
    let namespace = ks.metadata.namespace.as_deref().unwrap_or("default");
    let spec = ks.spec.as_ref()?;
    let hostname = Hostname::new(format!("{name}.{namespace}.svc.{domain}"));
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port_name = p.name.clone().unwrap_or_default();
            let protocol = match (&p.app_protocol, p.protocol.as_deref()) {
                (Some(app), _) => Protocol::parse(app),
                (None, Some("UDP" | "SCTP")) => Protocol::Unsupported,
                (None, _) => Protocol::from_port_name(&port_name),
            };
            Some(ServicePort {
                name: port_name,
                port: u16::try_from(p.port).ok()?,
                protocol,
            })
        })
        .collect();
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or_default();
    let external_name = (spec.type_.as_deref() == Some("ExternalName"))
        .then(|| spec.external_name.clone())
        .flatten();
    let resolution = if external_name.is_some() {
        Resolution::DnsLb
    } else if cluster_ip == "None" {
        Resolution::Passthrough
    } else {
        Resolution::ClientSideLb
    };
    let service = Service {
        hostname: hostname.clone(),
        namespace: namespace.to_string(),
        ports,
        resolution,
        mesh_external: false,
        addresses: spec
            .cluster_ips
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|ip| ip != "None")
            .collect(),
        origin: ConfigKey {
            kind: ConfigKind::Service,
            namespace: namespace.to_string(),
            name: name.to_string(),
        },
    };
    // An ExternalName service resolves the external name on every port.
    let endpoints = match external_name {
        Some(target) => service
            .ports
            .iter()
            .map(|p| Endpoint {
                service: hostname.clone(),
                service_port_name: p.name.clone(),
                address: target.clone(),
                port: p.port,
                labels: BTreeMap::new(),
                locality: Locality::default(),
                health: HealthStatus::Healthy,
                service_account: String::new(),
                weight: 0,
            })
            .collect(),
        None => Vec::new(),
    };
    Some((service, endpoints))
}

/// The service an endpoints object belongs to, when that service exists and
/// has endpoints of its own (an ExternalName service has none).
fn owning_service<'s>(
    services: &'s BTreeMap<Hostname, Arc<Service>>,
    service_name: &str,
    namespace: &str,
    domain: &str,
) -> Option<&'s Service> {
    let hostname = Hostname::new(format!("{service_name}.{namespace}.svc.{domain}"));
    let service = services.get(&hostname)?;
    (service.resolution != Resolution::DnsLb).then_some(service.as_ref())
}

/// The endpoints of one slice, for the service it names, if that service exists.
pub fn convert_slice(
    slice: &EndpointSlice,
    services: &BTreeMap<Hostname, Arc<Service>>,
    workloads: &WorkloadLookup<'_>,
    domain: &str,
) -> Vec<Endpoint> {
    let namespace = slice.metadata.namespace.as_deref().unwrap_or("default");
    let Some(service_name) = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
    else {
        tracing::warn!(slice = ?slice.metadata.name, "EndpointSlice without the {SERVICE_NAME_LABEL} label is ignored");
        return Vec::new();
    };
    let Some(service) = owning_service(services, service_name, namespace, domain) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ep in &slice.endpoints {
        let conditions = ep.conditions.as_ref();
        let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
        // Kubernetes: a nil `ready` means ready.
        let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
        let health = if terminating {
            HealthStatus::Draining
        } else if ready {
            HealthStatus::Healthy
        } else {
            HealthStatus::Unhealthy
        };
        for slice_port in slice.ports.iter().flatten() {
            let port_name = slice_port.name.clone().unwrap_or_default();
            if service.port_by_name(&port_name).is_none() {
                continue;
            }
            let Some(port) = slice_port.port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            for ip in &ep.addresses {
                let address = Address {
                    ip,
                    target: ep.target_ref.as_ref(),
                    node_name: ep.node_name.as_deref(),
                    zone: ep.zone.as_deref(),
                    health,
                };
                out.push(workloads.endpoint(&service.hostname, &port_name, port, &address));
            }
        }
    }
    out
}

/// The endpoints of a core/v1 Endpoints object (named as its Service), for
/// API servers that serve no `discovery.k8s.io/v1`.
pub fn convert_endpoints(
    endpoints: &Endpoints,
    services: &BTreeMap<Hostname, Arc<Service>>,
    workloads: &WorkloadLookup<'_>,
    domain: &str,
) -> Vec<Endpoint> {
    let namespace = endpoints.metadata.namespace.as_deref().unwrap_or("default");
    let Some(name) = endpoints.metadata.name.as_deref() else {
        return Vec::new();
    };
    let Some(service) = owning_service(services, name, namespace, domain) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let addresses = subset
            .addresses
            .iter()
            .flatten()
            .map(|a| (a, HealthStatus::Healthy))
            .chain(
                subset
                    .not_ready_addresses
                    .iter()
                    .flatten()
                    .map(|a| (a, HealthStatus::Unhealthy)),
            );
        for (address, health) in addresses {
            for ep_port in subset.ports.iter().flatten() {
                let port_name = ep_port.name.clone().unwrap_or_default();
                if service.port_by_name(&port_name).is_none() {
                    continue;
                }
                let Ok(port) = u16::try_from(ep_port.port) else {
                    continue;
                };
                let address = Address {
                    ip: &address.ip,
                    target: address.target_ref.as_ref(),
                    node_name: address.node_name.as_deref(),
                    zone: None,
                    health,
                };
                out.push(workloads.endpoint(&service.hostname, &port_name, port, &address));
            }
        }
    }
    out
}

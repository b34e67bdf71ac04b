//! Kubernetes Service and EndpointSlice objects to model services and
//! endpoints, as Istio's Kubernetes controller converts them. Shared by every
//! source of Kubernetes objects (the config folder today).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service as KubeService;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use mesh_model::{
    ConfigKey, ConfigKind, Endpoint, HealthStatus, Hostname, Locality, Protocol, Resolution,
    Service, ServicePort,
};

/// The label an EndpointSlice carries naming its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

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

/// The endpoints of one slice, for the service it names, if that service exists.
pub fn convert_slice(
    slice: &EndpointSlice,
    services: &BTreeMap<Hostname, Arc<Service>>,
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
    let hostname = Hostname::new(format!("{service_name}.{namespace}.svc.{domain}"));
    let Some(service) = services.get(&hostname) else {
        return Vec::new();
    };
    if service.resolution == Resolution::DnsLb {
        return Vec::new(); // ExternalName services have no endpoints of their own.
    }
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
        let locality = Locality {
            region: String::new(),
            zone: ep.zone.clone().unwrap_or_default(),
            subzone: String::new(),
        };
        for slice_port in slice.ports.iter().flatten() {
            let port_name = slice_port.name.clone().unwrap_or_default();
            if service.port_by_name(&port_name).is_none() {
                continue;
            }
            let Some(port) = slice_port.port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            for address in &ep.addresses {
                out.push(Endpoint {
                    service: hostname.clone(),
                    service_port_name: port_name.clone(),
                    address: address.clone(),
                    port,
                    labels: BTreeMap::new(),
                    locality: locality.clone(),
                    health,
                    service_account: String::new(),
                    weight: 0,
                });
            }
        }
    }
    out
}

//! ServiceEntry and WorkloadEntry to model services and endpoints, as Istio's
//! `serviceentry` controller converts them.

use mesh_model::istio::{Location, ServiceEntry, ServiceEntryResolution, WorkloadEntry};

use super::workload_index::Workload;
use mesh_model::labels;
use mesh_model::{
    Config, ConfigKind, Endpoint, HealthStatus, Hostname, Locality, Protocol, Resolution, Service,
    ServicePort,
};

/// One `Service` per host of the entry, each with its endpoints.
pub fn convert(
    se: &Config<ServiceEntry>,
    workload_entries: &[Workload<'_>],
    domain: &str,
) -> Vec<(Service, Vec<Endpoint>)> {
    let spec = &se.spec;
    let resolution = match spec.resolution {
        ServiceEntryResolution::Static => Resolution::ClientSideLb,
        ServiceEntryResolution::Dns | ServiceEntryResolution::DnsRoundRobin => Resolution::DnsLb,
        ServiceEntryResolution::None => Resolution::Passthrough,
    };
    let ports: Vec<ServicePort> = spec
        .ports
        .iter()
        .filter_map(|p| {
            Some(ServicePort {
                name: p.name.clone(),
                port: u16::try_from(p.number).ok()?,
                protocol: Protocol::parse(&p.protocol),
            })
        })
        .collect();

    let mut workloads: Vec<&WorkloadEntry> = spec.endpoints.iter().collect();
    if let Some(selector) = &spec.workload_selector {
        workloads.extend(
            workload_entries
                .iter()
                .filter(|we| we.meta.namespace == se.meta.namespace)
                .filter(|we| labels::selects(&selector.labels, &we.spec.labels))
                .map(|we| &we.spec),
        );
    }

    spec.hosts
        .iter()
        .map(|h| {
            let hostname = Hostname::resolve(h, &se.meta.namespace, domain);
            let service = Service {
                hostname: hostname.clone(),
                namespace: se.meta.namespace.clone(),
                ports: ports.clone(),
                resolution,
                mesh_external: spec.location == Location::MeshExternal,
                addresses: spec.addresses.clone(),
                origin: se.key(ConfigKind::ServiceEntry),
            };
            let mut endpoints = Vec::new();
            for port in &spec.ports {
                for we in &workloads {
                    endpoints.extend(endpoint(&hostname, port, we));
                }
                // A DNS entry without endpoints resolves its own host name.
                if workloads.is_empty() && resolution == Resolution::DnsLb {
                    endpoints.extend(endpoint(
                        &hostname,
                        port,
                        &WorkloadEntry {
                            address: hostname.to_string(),
                            ..Default::default()
                        },
                    ));
                }
            }
            (service, endpoints)
        })
        .collect()
}

fn endpoint(
    service: &Hostname,
    port: &mesh_model::istio::ServiceEntryPort,
    we: &WorkloadEntry,
) -> Option<Endpoint> {
    let number = we
        .ports
        .get(&port.name)
        .copied()
        .or(port.target_port)
        .unwrap_or(port.number);
    Some(Endpoint {
        service: service.clone(),
        service_port_name: port.name.clone(),
        address: we.address.clone(),
        port: u16::try_from(number).ok()?,
        labels: we.labels.clone(),
        locality: Locality::parse(&we.locality),
        health: HealthStatus::Healthy,
        service_account: we.service_account.clone(),
        weight: we.weight,
    })
}

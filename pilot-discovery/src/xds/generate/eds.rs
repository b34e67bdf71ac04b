//! Endpoints: one ClusterLoadAssignment per EDS cluster, grouped by locality.

use std::collections::{BTreeMap, BTreeSet};

use mesh_model::{Endpoint, HealthStatus, Hostname, Locality, MeshSnapshot};
use xds_proto::pb::envoy::config::core::v3::{
    HealthStatus as EnvoyHealth, Locality as EnvoyLocality,
};
use xds_proto::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint,
    LocalityLbEndpoints,
};
use xds_proto::protobuf::UInt32Value;

use super::common::socket_address;
use super::generator::{nothing_own, Cache, Generator, Names};
use super::named::Named;
use super::names::{outbound_cluster_name, ClusterName};
use super::proxy::Proxy;

/// EDS: one load assignment per cluster name, the same for every proxy;
/// an endpoint-only push sends the clusters of the services it names.
pub const GENERATOR: Generator = Generator {
    type_url: xds_proto::type_url::ENDPOINT,
    short_name: "eds",
    wildcard: false,
    endpoint_push: Some(endpoint_clusters),
    cache: Cache::Name,
    shared: load_assignments,
    own: nothing_own,
};

/// The load assignments of the clusters named, alike for every proxy.
fn load_assignments(snap: &MeshSnapshot, _: &Proxy, names: Names<'_>) -> Vec<Named> {
    names
        .map(|n| Named::new(n, xds_proto::pack(&load_assignment(snap, n))))
        .collect()
}

/// The EDS cluster names of `hosts` in `snap`: every port, with and without
/// each subset. An endpoint-only push touches exactly these, so each stream
/// looks up a handful of names instead of scanning its whole subscription.
pub fn endpoint_clusters(snap: &MeshSnapshot, hosts: &BTreeSet<Hostname>) -> Vec<String> {
    let mut out = Vec::new();
    for host in hosts {
        let Some(svc) = snap.service(host) else {
            continue;
        };
        let subsets = snap
            .destination_rule(host)
            .map(|r| r.spec.subsets.as_slice())
            .unwrap_or_default();
        for port in &svc.ports {
            out.push(outbound_cluster_name(port.port, "", host));
            for s in subsets {
                out.push(outbound_cluster_name(port.port, &s.name, host));
            }
        }
    }
    out
}

/// The load assignment for a cluster name. A name that matches no service,
/// port or subset gets an empty assignment, so Envoy finishes warming the
/// cluster instead of waiting forever.
pub fn load_assignment(snap: &MeshSnapshot, cluster_name: &str) -> ClusterLoadAssignment {
    match ClusterName::parse(cluster_name) {
        Some(name) => load_assignment_for(snap, &name),
        None => empty(cluster_name),
    }
}

fn empty(cluster_name: &str) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_string(),
        ..Default::default()
    }
}

pub fn load_assignment_for(snap: &MeshSnapshot, name: &ClusterName) -> ClusterLoadAssignment {
    let cluster_name = name.to_string();
    let Some(svc) = snap.service(&name.host) else {
        return empty(&cluster_name);
    };
    let Some(port) = svc.port(name.port) else {
        return empty(&cluster_name);
    };
    let subset_labels = if name.subset.is_empty() {
        None
    } else {
        let subset = snap
            .destination_rule(&name.host)
            .and_then(|r| r.spec.subsets.iter().find(|s| s.name == name.subset));
        match subset {
            Some(s) => Some(&s.labels),
            None => return empty(&cluster_name),
        }
    };
    let mut by_locality: BTreeMap<&Locality, Vec<LbEndpoint>> = BTreeMap::new();
    for ep in snap.endpoints(&name.host) {
        if ep.service_port_name != port.name {
            continue;
        }
        if subset_labels.is_some_and(|labels| !ep.matches(labels)) {
            continue;
        }
        by_locality
            .entry(&ep.locality)
            .or_default()
            .push(lb_endpoint(ep));
    }
    ClusterLoadAssignment {
        cluster_name,
        endpoints: by_locality
            .into_iter()
            .map(|(locality, lb_endpoints)| LocalityLbEndpoints {
                locality: Some(EnvoyLocality {
                    region: locality.region.clone(),
                    zone: locality.zone.clone(),
                    sub_zone: locality.subzone.clone(),
                }),
                lb_endpoints,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn lb_endpoint(ep: &Endpoint) -> LbEndpoint {
    let health = match ep.health {
        HealthStatus::Healthy => EnvoyHealth::Healthy,
        HealthStatus::Unhealthy => EnvoyHealth::Unhealthy,
        HealthStatus::Draining => EnvoyHealth::Draining,
    };
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(EnvoyEndpoint {
            address: Some(socket_address(&ep.address, ep.port)),
            ..Default::default()
        })),
        health_status: health as i32,
        load_balancing_weight: (ep.weight > 0).then_some(UInt32Value { value: ep.weight }),
        ..Default::default()
    }
}

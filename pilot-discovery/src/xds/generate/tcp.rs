//! Opaque TCP services: which service owns a TCP port, and where its
//! VirtualService `tcp` rules send the connections.

use mesh_model::istio::virtual_service::{RouteDestination, TcpRoute};
use mesh_model::{Hostname, MeshSnapshot, Service};
use xds_proto::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    tcp_proxy::{weighted_cluster::ClusterWeight, ClusterSpecifier, WeightedCluster},
    TcpProxy,
};

use super::names::ClusterName;
use super::visibility::Visibility;

/// The services with a non-HTTP port, by port: the first by hostname owns
/// it, since a local-mode sidecar can bind each port once. Ports an HTTP
/// service uses are left to HTTP.
pub fn tcp_ports<'a>(
    snap: &'a MeshSnapshot,
    visible: Visibility<'_>,
    http_ports: &std::collections::BTreeSet<u16>,
) -> std::collections::BTreeMap<u16, &'a Service> {
    let mut out = std::collections::BTreeMap::new();
    for svc in snap.services.values().filter(|s| visible.sees(s)) {
        for p in &svc.ports {
            if !p.protocol.is_http() && !http_ports.contains(&p.port) {
                out.entry(p.port).or_insert(svc.as_ref());
            }
        }
    }
    out
}

/// The TCP proxy for `svc` on `port`, as the proxy in `proxy_namespace`
/// sees it: the first `tcp` rule of a VirtualService for the host that
/// matches the port, else the service's own cluster.
pub fn tcp_proxy(snap: &MeshSnapshot, svc: &Service, port: u16, proxy_namespace: &str) -> TcpProxy {
    let own = ClusterName::outbound(port, "", &svc.hostname);
    let rule = snap
        .virtual_services_for(&svc.hostname, proxy_namespace)
        .find_map(|vs| {
            vs.spec
                .tcp
                .iter()
                .find(|r| matches_port(r, port))
                .map(|r| (vs.meta.namespace.clone(), r.clone()))
        });
    let specifier = match rule {
        None => ClusterSpecifier::Cluster(own.to_string()),
        Some((namespace, rule)) => {
            let cluster = |d: &RouteDestination| {
                let host = Hostname::resolve(&d.destination.host, &namespace, &snap.domain);
                let p = d
                    .destination
                    .port
                    .as_ref()
                    .and_then(|p| u16::try_from(p.number).ok())
                    .unwrap_or(port);
                ClusterName::outbound(p, &d.destination.subset, &host).to_string()
            };
            match rule.route.as_slice() {
                [only] => ClusterSpecifier::Cluster(cluster(only)),
                [] => ClusterSpecifier::Cluster(own.to_string()),
                many => ClusterSpecifier::WeightedClusters(WeightedCluster {
                    clusters: many
                        .iter()
                        .filter(|d| d.weight > 0)
                        .map(|d| ClusterWeight {
                            name: cluster(d),
                            weight: d.weight,
                            ..Default::default()
                        })
                        .collect(),
                }),
            }
        }
    };
    TcpProxy {
        stat_prefix: own.to_string(),
        cluster_specifier: Some(specifier),
        ..Default::default()
    }
}

fn matches_port(rule: &TcpRoute, port: u16) -> bool {
    rule.matches.is_empty()
        || rule
            .matches
            .iter()
            .any(|m| m.port.is_none_or(|p| p == u32::from(port)))
}

//! Clusters: one per service port, one more per DestinationRule subset, and
//! Istio's two catch-alls.

use mesh_model::istio::destination_rule::SimpleLb;
use mesh_model::istio::EffectivePolicy;
use mesh_model::{MeshSnapshot, NodeType, Resolution, Service, ServicePort};
use xds_proto::pb::envoy::config::cluster::v3::{
    cluster::{
        ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, EdsClusterConfig, LbConfig, LbPolicy,
        OriginalDstLbConfig,
    },
    Cluster,
};

use super::cluster_policy::{self, CONNECT_TIMEOUT};
use super::common::{ads_config_source, duration};
use super::eds::load_assignment_for;
use super::generator::{Cache, Generator, Names, ShapeOf};
use super::inbound;
use super::named::Named;
use super::names::{ClusterName, BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER};
use super::proxy::Proxy;
use super::visibility::Visibility;

/// CDS: every proxy of one scope shares its outbound clusters; a sidecar
/// has its own inbound ones besides.
pub const GENERATOR: Generator = Generator {
    type_url: xds_proto::type_url::CLUSTER,
    short_name: "cds",
    wildcard: true,
    endpoint_push: None,
    cache: Cache::List(ShapeOf::Scope),
    shared: outbound,
    own: own_inbound,
};

/// What every proxy of one scope gets alike: its outbound clusters and
/// Istio's catch-alls.
fn outbound(snap: &MeshSnapshot, proxy: &Proxy, _: Names<'_>) -> Vec<Named> {
    let mut out = Vec::new();
    for_each_cluster(snap, proxy, |c| {
        out.push(Named::new(&c.name, xds_proto::pack(c)))
    });
    out
}

/// A sidecar's own: the inbound clusters of its workload's ports.
fn own_inbound(snap: &MeshSnapshot, proxy: &Proxy) -> Vec<Named> {
    if proxy.id.node_type == NodeType::Router {
        return Vec::new();
    }
    inbound::clusters(&inbound::ports(snap, proxy), proxy.is_local_mode())
        .iter()
        .map(|c| Named::new(&c.name, xds_proto::pack(c)))
        .collect()
}

/// The proxy's clusters, gathered: for callers that keep them as messages.
/// The server encodes each as it is made, with [`for_each_cluster`].
pub fn clusters(snap: &MeshSnapshot, proxy: &Proxy) -> Vec<Cluster> {
    let mut out = Vec::new();
    for_each_cluster(snap, proxy, |c| out.push(c.clone()));
    out
}

/// Hands the proxy's clusters to `emit` one at a time, in order. A
/// `Cluster` is over 3 KB; gathered a thousand at a time, growing and
/// moving the list was a quarter of the cost of generating them.
pub fn for_each_cluster(snap: &MeshSnapshot, proxy: &Proxy, mut emit: impl FnMut(&Cluster)) {
    let visible = Visibility::of(snap, proxy);
    let local_mode = proxy.is_local_mode();
    for svc in snap.services.values().filter(|s| visible.sees(s)) {
        let rule = snap.destination_rule(&svc.hostname);
        let top = rule.and_then(|r| r.spec.traffic_policy.as_ref());
        let subsets = rule.map(|r| r.spec.subsets.as_slice()).unwrap_or_default();
        for port in &svc.ports {
            for subset in std::iter::once(None).chain(subsets.iter().map(Some)) {
                let name = ClusterName::outbound(
                    port.port,
                    subset.map_or("", |s| s.name.as_str()),
                    &svc.hostname,
                );
                let policy = EffectivePolicy::merge(
                    top,
                    subset.and_then(|s| s.traffic_policy.as_ref()),
                    port.port,
                );
                emit(&cluster(snap, svc, port, &name, &policy, local_mode));
            }
        }
    }
    emit(&blackhole());
    emit(&passthrough(local_mode));
    if !local_mode {
        emit(&inbound::original_destination(
            inbound::INBOUND_PASSTHROUGH_CLUSTER.to_string(),
        ));
    }
}

fn cluster(
    snap: &MeshSnapshot,
    svc: &Service,
    port: &ServicePort,
    name: &ClusterName,
    policy: &EffectivePolicy<'_>,
    local_mode: bool,
) -> Cluster {
    let name_str = name.to_string();
    let mut c = Cluster {
        name: name_str.clone(),
        alt_stat_name: String::new(),
        connect_timeout: Some(duration(CONNECT_TIMEOUT)),
        ..Default::default()
    };
    cluster_policy::apply(&mut c, policy, port);
    // A PASSTHROUGH load balancer forwards to the address the client asked
    // for, as a passthrough service does (Istio's translation).
    let passthrough_lb = policy
        .load_balancer
        .and_then(|lb| lb.simple)
        .is_some_and(|s| s == SimpleLb::Passthrough);
    let resolution = if passthrough_lb {
        Resolution::Passthrough
    } else {
        svc.resolution
    };
    match resolution {
        Resolution::ClientSideLb => {
            c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
            c.eds_cluster_config = Some(EdsClusterConfig {
                eds_config: Some(ads_config_source()),
                service_name: name_str,
            });
        }
        Resolution::DnsLb => {
            c.cluster_discovery_type =
                Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32));
            // Istio's choice for IPv4 proxies: an AAAA answer would send
            // the proxy to an address family it may not route.
            c.dns_lookup_family = DnsLookupFamily::V4Only as i32;
            // DNS clusters carry their endpoints inline; Envoy resolves them.
            c.load_assignment = Some(load_assignment_for(snap, name));
        }
        Resolution::Passthrough => {
            c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32,
            ));
            // The original destination is the only choice there is.
            c.lb_policy = LbPolicy::ClusterProvided as i32;
            c.lb_config = original_dst_config(local_mode);
        }
    }
    c
}

/// Sends nothing anywhere: requests to it fail at once.
fn blackhole() -> Cluster {
    Cluster {
        name: BLACKHOLE_CLUSTER.to_string(),
        connect_timeout: Some(duration(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        ..Default::default()
    }
}

/// Forwards to the address the client originally asked for.
fn passthrough(local_mode: bool) -> Cluster {
    Cluster {
        name: PASSTHROUGH_CLUSTER.to_string(),
        connect_timeout: Some(duration(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: LbPolicy::ClusterProvided as i32,
        lb_config: original_dst_config(local_mode),
        ..Default::default()
    }
}

/// A local-mode sidecar captures no original destination, so its clients
/// name it in a header (see `rds::ORIGINAL_DST_HEADER`). Captured proxies
/// do not honour the header: with REGISTRY_ONLY it would let a client
/// reach any address through a passthrough service.
fn original_dst_config(local_mode: bool) -> Option<LbConfig> {
    local_mode.then(|| {
        LbConfig::OriginalDstLbConfig(OriginalDstLbConfig {
            use_http_header: true,
            ..Default::default()
        })
    })
}

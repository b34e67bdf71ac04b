//! Clusters: one per service port, one more per DestinationRule subset, and
//! Istio's two catch-alls.

use std::time::Duration;

use mesh_model::istio::destination_rule::{SimpleLb, TrafficPolicy};
use mesh_model::{MeshSnapshot, Resolution, Service, ServicePort};
use xds_proto::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy},
    Cluster,
};
use xds_proto::pb::envoy::config::core::v3::Http2ProtocolOptions;
use xds_proto::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
    },
    HttpProtocolOptions,
};

use super::common::{ads_config_source, duration};
use super::eds::load_assignment_for;
use super::names::{ClusterName, BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER};
use super::proxy::Proxy;

/// Istio's default `connectTimeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

pub fn clusters(snap: &MeshSnapshot, _proxy: &Proxy) -> Vec<Cluster> {
    let mut out = Vec::new();
    for svc in snap.services.values() {
        let rule = snap.destination_rule(&svc.hostname);
        let base_policy = rule.and_then(|r| r.spec.traffic_policy.as_ref());
        for port in &svc.ports {
            let name = ClusterName::outbound(port.port, "", &svc.hostname);
            out.push(cluster(snap, svc, port, &name, base_policy));
            for subset in rule.map(|r| r.spec.subsets.as_slice()).unwrap_or_default() {
                let name = ClusterName::outbound(port.port, &subset.name, &svc.hostname);
                let policy = subset.traffic_policy.as_ref().or(base_policy);
                out.push(cluster(snap, svc, port, &name, policy));
            }
        }
    }
    out.push(blackhole());
    out.push(passthrough());
    out
}

fn cluster(
    snap: &MeshSnapshot,
    svc: &Service,
    port: &ServicePort,
    name: &ClusterName,
    policy: Option<&TrafficPolicy>,
) -> Cluster {
    let name_str = name.to_string();
    let mut c = Cluster {
        name: name_str.clone(),
        alt_stat_name: String::new(),
        connect_timeout: Some(duration(CONNECT_TIMEOUT)),
        lb_policy: lb_policy(policy) as i32,
        ..Default::default()
    };
    match svc.resolution {
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
            // DNS clusters carry their endpoints inline; Envoy resolves them.
            c.load_assignment = Some(load_assignment_for(snap, name));
        }
        Resolution::Passthrough => {
            c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32,
            ));
            c.lb_policy = LbPolicy::ClusterProvided as i32;
        }
    }
    if port.protocol.is_http2() {
        c.typed_extension_protocol_options.insert(
            HTTP_PROTOCOL_OPTIONS.to_string(),
            xds_proto::pack(&HttpProtocolOptions {
                upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                    ExplicitHttpConfig {
                        protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                            Http2ProtocolOptions::default(),
                        )),
                    },
                )),
                ..Default::default()
            }),
        );
    }
    c
}

/// Istio's default is LEAST_REQUEST.
fn lb_policy(policy: Option<&TrafficPolicy>) -> LbPolicy {
    let simple = policy
        .and_then(|p| p.load_balancer.as_ref())
        .and_then(|lb| lb.simple);
    match simple {
        Some(SimpleLb::RoundRobin) => LbPolicy::RoundRobin,
        Some(SimpleLb::Random) => LbPolicy::Random,
        Some(SimpleLb::Passthrough) => LbPolicy::ClusterProvided,
        Some(SimpleLb::LeastRequest | SimpleLb::LeastConn | SimpleLb::Unspecified) | None => {
            LbPolicy::LeastRequest
        }
    }
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
fn passthrough() -> Cluster {
    Cluster {
        name: PASSTHROUGH_CLUSTER.to_string(),
        connect_timeout: Some(duration(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: LbPolicy::ClusterProvided as i32,
        ..Default::default()
    }
}

//! Inbound: how a sidecar receives its workload's traffic, under Istio's
//! names (cluster `inbound|<port>||`).
//!
//! A local-mode sidecar listens on `INSTANCE_IP:<port>` and hands requests
//! to the application on `127.0.0.1:<port>`. A captured sidecar gets what
//! iptables redirects to `virtualInbound` (port 15006), which picks a filter
//! chain by the original destination port and forwards to that original
//! destination, from 127.0.0.6 so iptables lets it through.
//!
//! The ports are those of the mesh's endpoints at the proxy's own IPs: what
//! other proxies send to this workload. A local-mode proxy whose IP is
//! 127.0.0.1 gets none, since its listener would take the application's
//! own address.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use mesh_model::{MeshSnapshot, Protocol, ServicePort};
use xds_proto::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType, LbPolicy},
    Cluster,
};
use xds_proto::pb::envoy::config::core::v3::{
    socket_address::PortSpecifier, BindConfig, SocketAddress, TrafficDirection,
};
use xds_proto::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use xds_proto::pb::envoy::config::listener::v3::{
    listener_filter, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use xds_proto::pb::envoy::config::route::v3::{
    route, route_action::ClusterSpecifier, Route, RouteAction, RouteConfiguration, VirtualHost,
};
use xds_proto::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use xds_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier},
    HttpConnectionManager,
};
use xds_proto::protobuf::UInt32Value;

use super::cluster_policy::{self, CONNECT_TIMEOUT};
use super::common::{duration, socket_address};
use super::listener::{
    hcm_filter, listener, router_filter, tcp_proxy_filter, tcp_proxy_to, ANY_ADDRESS,
};
use super::names::ClusterName;
use super::proxy::Proxy;
use super::route::matching::prefix_match;

/// Where the application listens.
const APP_ADDRESS: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// One port the workload serves on, at one of the proxy's IPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPort {
    pub ip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

/// The workload's ports, one per (IP, port); the first service to name a
/// port decides its protocol.
pub fn ports(snap: &MeshSnapshot, proxy: &Proxy) -> Vec<InboundPort> {
    let mut out: BTreeMap<(IpAddr, u16), Protocol> = BTreeMap::new();
    for ip in &proxy.id.ip_addresses {
        if proxy.is_local_mode() && *ip == IpAddr::V4(APP_ADDRESS) {
            continue;
        }
        for ep in snap.endpoints_at(&ip.to_string()) {
            let protocol = snap
                .service(&ep.service)
                .and_then(|s| s.port_by_name(&ep.service_port_name))
                .map_or(Protocol::Tcp, |p| p.protocol);
            out.entry((*ip, ep.port)).or_insert(protocol);
        }
    }
    out.into_iter()
        .map(|((ip, port), protocol)| InboundPort { ip, port, protocol })
        .collect()
}

/// One cluster per port (two IPs serving one port share it): to the
/// application on loopback in local mode, else to the original destination.
pub fn clusters(ports: &[InboundPort], local_mode: bool) -> Vec<Cluster> {
    let mut by_port: BTreeMap<u16, Protocol> = BTreeMap::new();
    for p in ports {
        by_port.entry(p.port).or_insert(p.protocol);
    }
    by_port
        .into_iter()
        .map(|(port, protocol)| {
            let name = ClusterName::inbound(port).to_string();
            let mut c = if local_mode {
                to_app(name, port)
            } else {
                original_destination(name)
            };
            // Istio's defaults: unlimited circuit breakers, the port's HTTP
            // version.
            let port = ServicePort {
                name: String::new(),
                port,
                protocol,
            };
            cluster_policy::apply(&mut c, &Default::default(), &port);
            if !local_mode {
                c.lb_policy = LbPolicy::ClusterProvided as i32;
            }
            c
        })
        .collect()
}

/// Istio's cluster for inbound traffic to ports no service declares.
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughCluster";

/// The source address Istio's iptables rules let through to the
/// application without capturing it again.
const INBOUND_SOURCE: &str = "127.0.0.6";

/// Forwards to the connection's original destination, from
/// [`INBOUND_SOURCE`].
pub fn original_destination(name: String) -> Cluster {
    Cluster {
        name,
        connect_timeout: Some(duration(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: LbPolicy::ClusterProvided as i32,
        upstream_bind_config: Some(BindConfig {
            source_address: Some(SocketAddress {
                address: INBOUND_SOURCE.to_string(),
                port_specifier: Some(PortSpecifier::PortValue(0)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn to_app(name: String, port: u16) -> Cluster {
    Cluster {
        name: name.clone(),
        connect_timeout: Some(duration(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                        address: Some(socket_address(&APP_ADDRESS.to_string(), port)),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// In local mode, one bound listener per (IP, port); captured, the one
/// `virtualInbound` listener with a filter chain per port.
pub fn listeners(ports: &[InboundPort], local_mode: bool) -> Vec<Listener> {
    if !local_mode {
        return vec![virtual_inbound(ports)];
    }
    ports
        .iter()
        .map(|p| {
            let address = p.ip.to_string();
            listener(&address, p.port, true, filter(&address, p))
        })
        .collect()
}

/// HTTP ports go through an HTTP connection manager (so requests show in
/// Envoy's HTTP stats), others through a TCP proxy.
fn filter(address: &str, p: &InboundPort) -> Filter {
    let cluster = ClusterName::inbound(p.port).to_string();
    if p.protocol.is_http() {
        hcm_filter(&http(address, p.port, cluster))
    } else {
        tcp_proxy_filter(&tcp_proxy_to(cluster))
    }
}

pub const VIRTUAL_INBOUND: &str = "virtualInbound";
pub const VIRTUAL_INBOUND_PORT: u16 = 15006;

fn virtual_inbound(ports: &[InboundPort]) -> Listener {
    let mut chains = BTreeMap::new();
    for p in ports {
        chains.entry(p.port).or_insert_with(|| FilterChain {
            name: format!("{ANY_ADDRESS}_{}", p.port),
            filter_chain_match: Some(FilterChainMatch {
                destination_port: Some(UInt32Value {
                    value: u32::from(p.port),
                }),
                ..Default::default()
            }),
            filters: vec![filter(ANY_ADDRESS, p)],
            ..Default::default()
        });
    }
    Listener {
        name: VIRTUAL_INBOUND.to_string(),
        address: Some(socket_address(ANY_ADDRESS, VIRTUAL_INBOUND_PORT)),
        listener_filters: vec![ListenerFilter {
            name: ORIGINAL_DST_FILTER.to_string(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(xds_proto::pack(
                &OriginalDst::default(),
            ))),
            ..Default::default()
        }],
        filter_chains: chains.into_values().collect(),
        default_filter_chain: Some(FilterChain {
            name: "InboundPassthroughFilterChain".to_string(),
            filters: vec![tcp_proxy_filter(&tcp_proxy_to(
                INBOUND_PASSTHROUGH_CLUSTER.to_string(),
            ))],
            ..Default::default()
        }),
        traffic_direction: TrafficDirection::Inbound as i32,
        ..Default::default()
    }
}

const ORIGINAL_DST_FILTER: &str = "envoy.filters.listener.original_dst";

fn http(address: &str, port: u16, cluster: String) -> HttpConnectionManager {
    let route = Route {
        name: "default".to_string(),
        r#match: Some(prefix_match("/")),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.clone())),
            // The application decides how long it takes; Istio sets no
            // inbound timeout either.
            timeout: Some(duration(std::time::Duration::ZERO)),
            ..Default::default()
        })),
        ..Default::default()
    };
    HttpConnectionManager {
        stat_prefix: format!("inbound_{address}_{port}"),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: cluster,
            virtual_hosts: vec![VirtualHost {
                name: format!("inbound|http|{port}"),
                domains: vec!["*".to_string()],
                routes: vec![route],
                ..Default::default()
            }],
            ..Default::default()
        })),
        http_filters: vec![router_filter()],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::testing::snapshot_of;
    use crate::xds::generate::proxy::tests::local_proxy;
    use xds_proto::pb::envoy::config::core::v3::Node;

    const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 9080}, {number: 5432, name: db, protocol: TCP}]
  endpoints: [{address: 10.0.0.5}, {address: 10.0.0.6}, {address: 127.0.0.1}]
"#;

    fn local(ip: &str) -> Proxy {
        local_proxy(ip, "default")
    }

    #[test]
    fn a_local_mode_proxy_receives_on_the_ports_of_its_endpoints() {
        let snap = snapshot_of(MESH);
        let ports = ports(&snap, &local("10.0.0.5"));
        let found: Vec<(String, u16, Protocol)> = ports
            .iter()
            .map(|p| (p.ip.to_string(), p.port, p.protocol))
            .collect();
        assert_eq!(
            found,
            [
                ("10.0.0.5".to_string(), 5432, Protocol::Tcp),
                ("10.0.0.5".to_string(), 9080, Protocol::Http),
            ]
        );
        let names: Vec<String> = clusters(&ports, true).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["inbound|5432||", "inbound|9080||"]);
        let listeners = listeners(&ports, true);
        let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["10.0.0.5_5432", "10.0.0.5_9080"]);
        let filter = |l: &Listener| l.filter_chains[0].filters[0].name.clone();
        assert_eq!(filter(&listeners[0]), "envoy.filters.network.tcp_proxy");
        assert_eq!(
            filter(&listeners[1]),
            "envoy.filters.network.http_connection_manager"
        );

        assert!(
            super::ports(&snap, &local("127.0.0.1")).is_empty(),
            "the application's own address"
        );
        assert!(super::ports(&snap, &local("10.9.9.9")).is_empty());
    }

    #[test]
    fn a_captured_proxy_gets_virtual_inbound_with_a_chain_per_port() {
        let snap = snapshot_of(MESH);
        let captured = Proxy::from_node(&Node {
            id: "sidecar~10.0.0.5~shop-1.default~default.svc.cluster.local".into(),
            ..Default::default()
        })
        .expect("valid node");
        let ports = ports(&snap, &captured);
        let [l] = listeners(&ports, false).try_into().expect("one listener");
        assert_eq!(l.name, "virtualInbound");
        let chains: Vec<(&str, u32)> = l
            .filter_chains
            .iter()
            .map(|c| {
                let port = c
                    .filter_chain_match
                    .as_ref()
                    .and_then(|m| m.destination_port.as_ref())
                    .map_or(0, |p| p.value);
                (c.name.as_str(), port)
            })
            .collect();
        assert_eq!(chains, [("0.0.0.0_5432", 5432), ("0.0.0.0_9080", 9080)]);
        assert_eq!(
            l.default_filter_chain.map(|c| c.name).as_deref(),
            Some("InboundPassthroughFilterChain")
        );
        let clusters = clusters(&ports, false);
        assert!(clusters.iter().all(|c| c.upstream_bind_config.is_some()
            && c.cluster_discovery_type
                == Some(ClusterDiscoveryType::Type(
                    DiscoveryType::OriginalDst as i32
                ))));
        let no_ports = super::listeners(&[], false);
        assert_eq!(
            no_ports.len(),
            1,
            "virtualInbound even with nothing to serve"
        );
    }
}

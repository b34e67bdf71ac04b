//! Inbound: a local-mode sidecar receives its workload's traffic on
//! `INSTANCE_IP:<port>` and hands it to the application on
//! `127.0.0.1:<port>`, through cluster `inbound|<port>||`.
//!
//! The ports are those of the mesh's endpoints at the proxy's own IPs: what
//! other proxies send to this workload. A proxy whose IP is 127.0.0.1 gets
//! none, since its listener would take the application's own address.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use mesh_model::{MeshSnapshot, Protocol, ServicePort};
use xds_proto::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType},
    Cluster,
};
use xds_proto::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use xds_proto::pb::envoy::config::listener::v3::Listener;
use xds_proto::pb::envoy::config::route::v3::{
    route, route_action::ClusterSpecifier, Route, RouteAction, RouteConfiguration, VirtualHost,
};
use xds_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier},
    HttpConnectionManager,
};
use xds_proto::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    tcp_proxy::ClusterSpecifier as TcpClusterSpecifier, TcpProxy,
};

use super::cds::CONNECT_TIMEOUT;
use super::cluster_policy;
use super::common::{duration, socket_address};
use super::lds::{hcm_filter, listener, router_filter, tcp_proxy_filter};
use super::names::ClusterName;
use super::proxy::Proxy;
use super::route::prefix_match;

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
/// port decides its protocol. Empty unless the proxy is in local mode.
pub fn ports(snap: &MeshSnapshot, proxy: &Proxy) -> Vec<InboundPort> {
    if !proxy.is_local_mode() {
        return Vec::new();
    }
    let mut out: BTreeMap<(IpAddr, u16), Protocol> = BTreeMap::new();
    for ip in &proxy.id.ip_addresses {
        if *ip == IpAddr::V4(APP_ADDRESS) {
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

/// One static cluster per port, to the application on loopback. Two IPs
/// serving one port share it.
pub fn clusters(ports: &[InboundPort]) -> Vec<Cluster> {
    let mut by_port: BTreeMap<u16, Protocol> = BTreeMap::new();
    for p in ports {
        by_port.entry(p.port).or_insert(p.protocol);
    }
    by_port
        .into_iter()
        .map(|(port, protocol)| cluster(port, protocol))
        .collect()
}

fn cluster(port: u16, protocol: Protocol) -> Cluster {
    let name = ClusterName::inbound(port).to_string();
    let mut c = Cluster {
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
    };
    // Istio's defaults: unlimited circuit breakers, the port's HTTP version.
    let port = ServicePort {
        name: String::new(),
        port,
        protocol,
    };
    cluster_policy::apply(&mut c, &Default::default(), &port);
    c
}

/// One bound listener per (IP, port): HTTP ports through an HTTP connection
/// manager (so requests show in Envoy's HTTP stats), others as TCP.
pub fn listeners(ports: &[InboundPort]) -> Vec<Listener> {
    ports
        .iter()
        .map(|p| {
            let cluster = ClusterName::inbound(p.port).to_string();
            let address = p.ip.to_string();
            let filter = if p.protocol.is_http() {
                hcm_filter(&http(&address, p.port, cluster))
            } else {
                tcp_proxy_filter(&TcpProxy {
                    stat_prefix: cluster.clone(),
                    cluster_specifier: Some(TcpClusterSpecifier::Cluster(cluster)),
                    ..Default::default()
                })
            };
            listener(&address, p.port, true, filter)
        })
        .collect()
}

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
    use crate::registry::tests::snapshot_of;
    use crate::xds::proxy::tests::local_node;
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
        Proxy::from_node(&local_node(&format!(
            "sidecar~{ip}~shop-1.default~default.svc.cluster.local"
        )))
        .expect("valid node")
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
        let names: Vec<String> = clusters(&ports).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["inbound|5432||", "inbound|9080||"]);
        let listeners = listeners(&ports);
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
        let captured = Proxy::from_node(&Node {
            id: "sidecar~10.0.0.5~shop-1.default~default.svc.cluster.local".into(),
            ..Default::default()
        })
        .expect("valid node");
        assert!(
            super::ports(&snap, &captured).is_empty(),
            "captured proxies get virtualInbound instead"
        );
    }
}

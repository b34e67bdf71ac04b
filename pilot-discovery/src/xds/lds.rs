//! Listeners: one outbound listener per service port: HTTP where a service
//! speaks HTTP on it, else a TCP proxy.
//!
//! A proxy in local mode (`INTERCEPTION_MODE: NONE`) gets listeners that bind
//! `127.0.0.1:<port>` so the application reaches services through loopback.
//! Other proxies get the same listeners unbound (`bind_to_port: false`),
//! Istio's shape for listeners that iptables capture feeds.

use std::collections::BTreeSet;

use mesh_model::istio::OutboundMode;
use mesh_model::{MeshSnapshot, NodeType};
use xds_proto::pb::envoy::config::core::v3::TrafficDirection;
use xds_proto::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use xds_proto::pb::envoy::extensions::filters::http::cors::v3::Cors;
use xds_proto::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use xds_proto::pb::envoy::extensions::filters::http::router::v3::Router;
use xds_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use xds_proto::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    tcp_proxy::ClusterSpecifier as TcpClusterSpecifier, TcpProxy,
};
use xds_proto::protobuf::{Any, BoolValue};

use super::common::{ads_config_source, socket_address};
use super::gateway;
use super::names::{listener_name, route_config_name, BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER};
use super::proxy::Proxy;
use super::tcp;
use super::visibility::Visibility;

/// Where captured listeners listen: every address of the pod.
pub const ANY_ADDRESS: &str = "0.0.0.0";

const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";
const ROUTER_FILTER: &str = "envoy.filters.http.router";
/// Filters that do nothing unless a route's per-filter config asks, as
/// Istio puts them in every sidecar's HTTP chain.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// The ports that get an outbound HTTP listener.
pub fn http_ports(snap: &MeshSnapshot, visible: Visibility<'_>) -> BTreeSet<u16> {
    snap.services
        .values()
        .filter(|s| visible.sees(s))
        .flat_map(|s| s.ports.iter())
        .filter(|p| p.protocol.is_http())
        .map(|p| p.port)
        .collect()
}

pub fn listeners(snap: &MeshSnapshot, proxy: &Proxy) -> Vec<Listener> {
    if proxy.id.node_type == NodeType::Router {
        return gateway::listeners(snap, proxy);
    }
    let (bind_address, bind) = if proxy.is_local_mode() {
        ("127.0.0.1", true)
    } else {
        (ANY_ADDRESS, false)
    };
    let visible = Visibility::of(snap, proxy);
    let http = http_ports(snap, visible);
    let mut out: Vec<Listener> = http
        .iter()
        .map(|port| http_listener(bind_address, *port, bind))
        .collect();
    for (port, svc) in tcp::tcp_ports(snap, visible, &http) {
        let proxy = tcp::tcp_proxy(snap, svc, port, proxy.namespace());
        out.push(listener(bind_address, port, bind, tcp_proxy_filter(&proxy)));
    }
    if !bind {
        out.push(virtual_outbound(visible.outbound_mode()));
    }
    out
}

/// Istio's name and port for the listener iptables sends outbound traffic
/// to. It hands each connection to the listener of its original
/// destination port, or, for a port no service uses, passes it through or
/// drops it by the outbound traffic policy.
pub const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
pub const VIRTUAL_OUTBOUND_PORT: u16 = 15001;

fn virtual_outbound(mode: OutboundMode) -> Listener {
    let cluster = match mode {
        OutboundMode::AllowAny => PASSTHROUGH_CLUSTER,
        OutboundMode::RegistryOnly => BLACKHOLE_CLUSTER,
    };
    Listener {
        name: VIRTUAL_OUTBOUND.to_string(),
        address: Some(socket_address(ANY_ADDRESS, VIRTUAL_OUTBOUND_PORT)),
        use_original_dst: Some(BoolValue { value: true }),
        default_filter_chain: Some(FilterChain {
            name: "PassthroughFilterChain".to_string(),
            filters: vec![tcp_proxy_filter(&tcp_proxy_to(cluster.to_string()))],
            ..Default::default()
        }),
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}

fn http_listener(address: &str, port: u16, bind: bool) -> Listener {
    http_listener_with_routes(address, port, bind, route_config_name(port))
}

/// An HTTP listener whose routes come from RDS configuration `routes`.
pub(super) fn http_listener_with_routes(
    address: &str,
    port: u16,
    bind: bool,
    routes: String,
) -> Listener {
    let name = listener_name(address, port);
    let hcm = HttpConnectionManager {
        stat_prefix: format!("outbound_{name}"),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: routes,
        })),
        http_filters: vec![
            http_filter(CORS_FILTER, xds_proto::pack(&Cors::default())),
            http_filter(FAULT_FILTER, xds_proto::pack(&HttpFault::default())),
            router_filter(),
        ],
        ..Default::default()
    };
    listener(address, port, bind, hcm_filter(&hcm))
}

pub(super) fn hcm_filter(hcm: &HttpConnectionManager) -> Filter {
    Filter {
        name: HCM_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(xds_proto::pack(hcm))),
    }
}

pub(super) fn tcp_proxy_filter(proxy: &TcpProxy) -> Filter {
    Filter {
        name: TCP_PROXY_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(xds_proto::pack(proxy))),
    }
}

/// A TCP proxy to `cluster`, its stats under the cluster's name.
pub(super) fn tcp_proxy_to(cluster: String) -> TcpProxy {
    TcpProxy {
        stat_prefix: cluster.clone(),
        cluster_specifier: Some(TcpClusterSpecifier::Cluster(cluster)),
        ..Default::default()
    }
}

pub(super) fn router_filter() -> HttpFilter {
    http_filter(ROUTER_FILTER, xds_proto::pack(&Router::default()))
}

pub(super) fn listener(address: &str, port: u16, bind: bool, filter: Filter) -> Listener {
    Listener {
        name: listener_name(address, port),
        address: Some(socket_address(address, port)),
        bind_to_port: (!bind).then_some(BoolValue { value: false }),
        filter_chains: vec![FilterChain {
            filters: vec![filter],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn http_filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

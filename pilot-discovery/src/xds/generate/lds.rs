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
use xds_proto::pb::envoy::config::listener::v3::{FilterChain, Listener};
use xds_proto::protobuf::BoolValue;

use super::common::socket_address;
use super::gateway;
use super::generator::{Cache, Generator, Names, ShapeOf};
use super::inbound;
use super::listener::{
    http_listener_with_routes, listener, tcp_proxy_filter, tcp_proxy_to, ANY_ADDRESS,
};
use super::named::Named;
use super::names::{route_config_name, BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER};
use super::proxy::Proxy;
use super::tcp;
use super::visibility::Visibility;

/// LDS: proxies of one shape share their outbound listeners; a sidecar has
/// its own inbound ones besides.
pub const GENERATOR: Generator = Generator {
    type_url: xds_proto::type_url::LISTENER,
    short_name: "lds",
    wildcard: true,
    endpoint_push: None,
    cache: Cache::List(ShapeOf::Full),
    shared: outbound,
    own: own_inbound,
};

/// What every proxy of one shape gets alike: its outbound listeners.
fn outbound(snap: &MeshSnapshot, proxy: &Proxy, _: Names<'_>) -> Vec<Named> {
    listeners(snap, proxy)
        .iter()
        .map(|l| Named::new(&l.name, xds_proto::pack(l)))
        .collect()
}

/// A sidecar's own: the inbound listeners of its workload's ports.
fn own_inbound(snap: &MeshSnapshot, proxy: &Proxy) -> Vec<Named> {
    if proxy.id.node_type == NodeType::Router {
        return Vec::new();
    }
    inbound::listeners(&inbound::ports(snap, proxy), proxy.is_local_mode())
        .iter()
        .map(|l| Named::new(&l.name, xds_proto::pack(l)))
        .collect()
}

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

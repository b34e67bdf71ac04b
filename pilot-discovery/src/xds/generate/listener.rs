//! The pieces every listener is built of, sidecar, inbound or gateway: the
//! HTTP connection manager and its filters, the TCP proxy, the listener.

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
use super::names::listener_name;

/// Where captured listeners listen: every address of the pod.
pub const ANY_ADDRESS: &str = "0.0.0.0";

const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";
const ROUTER_FILTER: &str = "envoy.filters.http.router";
/// Filters that do nothing unless a route's per-filter config asks, as
/// Istio puts them in every sidecar's HTTP chain.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// An HTTP listener whose routes come from RDS configuration `routes`.
pub fn http_listener_with_routes(address: &str, port: u16, bind: bool, routes: String) -> Listener {
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

pub fn hcm_filter(hcm: &HttpConnectionManager) -> Filter {
    Filter {
        name: HCM_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(xds_proto::pack(hcm))),
    }
}

pub fn tcp_proxy_filter(proxy: &TcpProxy) -> Filter {
    Filter {
        name: TCP_PROXY_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(xds_proto::pack(proxy))),
    }
}

/// A TCP proxy to `cluster`, its stats under the cluster's name.
pub fn tcp_proxy_to(cluster: String) -> TcpProxy {
    TcpProxy {
        stat_prefix: cluster.clone(),
        cluster_specifier: Some(TcpClusterSpecifier::Cluster(cluster)),
        ..Default::default()
    }
}

pub fn router_filter() -> HttpFilter {
    http_filter(ROUTER_FILTER, xds_proto::pack(&Router::default()))
}

pub fn listener(address: &str, port: u16, bind: bool, filter: Filter) -> Listener {
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

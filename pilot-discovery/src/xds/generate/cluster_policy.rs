//! DestinationRule traffic policies on clusters (load balancing, connection
//! pools, outlier detection) and on routes (consistent-hash keys), with
//! Istio's defaults where a rule says nothing.

use mesh_model::istio::destination_rule::{
    ConnectionPoolSettings, ConsistentHashLb, OutlierDetection as IstioOutlier, SimpleLb,
};
use mesh_model::istio::EffectivePolicy;
use mesh_model::{Hostname, MeshSnapshot, ServicePort};
use xds_proto::pb::envoy::config::cluster::v3::{
    circuit_breakers::Thresholds,
    cluster::{
        ring_hash_lb_config::HashFunction, CommonLbConfig, LbConfig, LbPolicy, RingHashLbConfig,
    },
    CircuitBreakers, Cluster, OutlierDetection,
};
use xds_proto::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions as CommonHttpOptions,
};
use xds_proto::pb::envoy::config::route::v3::route_action::{
    hash_policy::{ConnectionProperties, Cookie, Header, PolicySpecifier, QueryParameter},
    HashPolicy,
};
use xds_proto::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
    },
    HttpProtocolOptions,
};
use xds_proto::pb::envoy::r#type::v3::Percent;
use xds_proto::protobuf::{UInt32Value, UInt64Value};

use std::time::Duration;

use super::common::duration;

/// Istio's default `connectTimeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/// Istio's ring size when a rule does not set `minimumRingSize`.
const DEFAULT_RING_SIZE: u64 = 1024;

/// The policy for the cluster of `host`'s `port` (and `subset`, when not
/// empty), from the DestinationRule that applies to `host`.
pub fn effective<'a>(
    snap: &'a MeshSnapshot,
    host: &Hostname,
    subset: &str,
    port: u16,
) -> EffectivePolicy<'a> {
    let Some(rule) = snap.destination_rule(host) else {
        return EffectivePolicy::default();
    };
    let subset_policy = if subset.is_empty() {
        None
    } else {
        rule.spec
            .subsets
            .iter()
            .find(|s| s.name == subset)
            .and_then(|s| s.traffic_policy.as_ref())
    };
    EffectivePolicy::merge(rule.spec.traffic_policy.as_ref(), subset_policy, port)
}

/// Sets load balancing, circuit breakers, timeouts and outlier detection.
/// `port` decides the upstream HTTP version of the cluster.
pub fn apply(c: &mut Cluster, policy: &EffectivePolicy<'_>, port: &ServicePort) {
    let lb = policy.load_balancer;
    if let Some(hash) = lb.and_then(|l| l.consistent_hash.as_ref()) {
        c.lb_policy = LbPolicy::RingHash as i32;
        c.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
            minimum_ring_size: Some(UInt64Value {
                value: hash.minimum_ring_size.unwrap_or(DEFAULT_RING_SIZE),
            }),
            hash_function: HashFunction::XxHash as i32,
            ..Default::default()
        }));
    } else {
        c.lb_policy = simple_lb(lb.and_then(|l| l.simple)) as i32;
    }
    c.circuit_breakers = Some(circuit_breakers(policy.connection_pool));
    if let Some(t) = policy
        .connection_pool
        .and_then(|p| p.tcp.as_ref())
        .and_then(|t| t.connect_timeout)
    {
        c.connect_timeout = Some(duration(t.get()));
    }
    if let Some(od) = policy.outlier_detection {
        c.outlier_detection = Some(outlier_detection(od));
        // Istio turns Envoy's panic mode off unless `minHealthPercent` asks
        // for it: ejected endpoints stay ejected.
        c.common_lb_config = Some(CommonLbConfig {
            healthy_panic_threshold: Some(Percent {
                value: f64::from(od.min_health_percent.unwrap_or(0)),
            }),
            ..Default::default()
        });
    }
    if let Some(options) = http_protocol_options(policy.connection_pool, port) {
        c.typed_extension_protocol_options
            .insert(HTTP_PROTOCOL_OPTIONS.to_string(), xds_proto::pack(&options));
    }
}

/// Istio's default is LEAST_REQUEST.
fn simple_lb(simple: Option<SimpleLb>) -> LbPolicy {
    match simple {
        Some(SimpleLb::RoundRobin) => LbPolicy::RoundRobin,
        Some(SimpleLb::Random) => LbPolicy::Random,
        Some(SimpleLb::Passthrough) => LbPolicy::ClusterProvided,
        Some(SimpleLb::LeastRequest | SimpleLb::LeastConn | SimpleLb::Unspecified) | None => {
            LbPolicy::LeastRequest
        }
    }
}

/// A limit from the rule; 0 or unset means Istio's default, which is no
/// limit (Envoy's own default of 1024 would surprise a busy service).
fn limit(v: Option<i32>) -> Option<UInt32Value> {
    let value = match v {
        Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
        _ => u32::MAX,
    };
    Some(UInt32Value { value })
}

fn circuit_breakers(pool: Option<&ConnectionPoolSettings>) -> CircuitBreakers {
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let http = pool.and_then(|p| p.http.as_ref());
    CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: limit(tcp.and_then(|t| t.max_connections)),
            max_pending_requests: limit(http.and_then(|h| h.http1_max_pending_requests)),
            max_requests: limit(http.and_then(|h| h.http2_max_requests)),
            max_retries: limit(http.and_then(|h| h.max_retries)),
            track_remaining: true,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn outlier_detection(od: &IstioOutlier) -> OutlierDetection {
    // A threshold is enforced only when set and non-zero; success-rate
    // ejection, which Istio does not expose, stays off.
    let enforce = |v: u32| UInt32Value {
        value: if v > 0 { 100 } else { 0 },
    };
    OutlierDetection {
        consecutive_5xx: od.consecutive_5xx_errors.map(|value| UInt32Value { value }),
        enforcing_consecutive_5xx: Some(enforce(od.consecutive_5xx_errors.unwrap_or(0))),
        consecutive_gateway_failure: od
            .consecutive_gateway_errors
            .map(|value| UInt32Value { value }),
        enforcing_consecutive_gateway_failure: Some(enforce(
            od.consecutive_gateway_errors.unwrap_or(0),
        )),
        enforcing_success_rate: Some(UInt32Value { value: 0 }),
        interval: od.interval.map(|d| duration(d.get())),
        base_ejection_time: od.base_ejection_time.map(|d| duration(d.get())),
        max_ejection_percent: od
            .max_ejection_percent
            .filter(|p| *p > 0)
            .map(|p| UInt32Value {
                value: u32::try_from(p).unwrap_or(100),
            }),
        ..Default::default()
    }
}

/// Upstream HTTP options: the protocol for HTTP/2 ports, and the pool's
/// idle timeout and requests per connection. `None` when nothing is set
/// for an HTTP/1 port (Envoy's defaults then apply).
fn http_protocol_options(
    pool: Option<&ConnectionPoolSettings>,
    port: &ServicePort,
) -> Option<HttpProtocolOptions> {
    let http = pool.and_then(|p| p.http.as_ref());
    let idle = http.and_then(|h| h.idle_timeout);
    let per_connection = http
        .and_then(|h| h.max_requests_per_connection)
        .filter(|n| *n > 0);
    let http2 = port.protocol.is_http2();
    if !http2 && idle.is_none() && per_connection.is_none() {
        return None;
    }
    if !port.protocol.is_http() {
        return None;
    }
    let protocol = if http2 {
        ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())
    } else {
        ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions::default())
    };
    let common = (idle.is_some() || per_connection.is_some()).then(|| CommonHttpOptions {
        idle_timeout: idle.map(|d| duration(d.get())),
        max_requests_per_connection: per_connection.map(|n| UInt32Value {
            value: u32::try_from(n).unwrap_or(u32::MAX),
        }),
        ..Default::default()
    });
    Some(HttpProtocolOptions {
        common_http_protocol_options: common,
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(protocol),
            },
        )),
        ..Default::default()
    })
}

/// The route's hash key for a destination whose policy hashes consistently.
pub fn hash_policy(policy: &EffectivePolicy<'_>) -> Vec<HashPolicy> {
    let Some(hash) = policy
        .load_balancer
        .and_then(|l| l.consistent_hash.as_ref())
    else {
        return Vec::new();
    };
    hash_key(hash)
        .map(|p| HashPolicy {
            policy_specifier: Some(p),
            terminal: false,
        })
        .into_iter()
        .collect()
}

fn hash_key(hash: &ConsistentHashLb) -> Option<PolicySpecifier> {
    if let Some(name) = &hash.http_header_name {
        return Some(PolicySpecifier::Header(Header {
            header_name: name.clone(),
            ..Default::default()
        }));
    }
    if let Some(c) = &hash.http_cookie {
        return Some(PolicySpecifier::Cookie(Cookie {
            name: c.name.clone(),
            path: c.path.clone(),
            ttl: c.ttl.map(|d| duration(d.get())),
            ..Default::default()
        }));
    }
    if hash.use_source_ip == Some(true) {
        return Some(PolicySpecifier::ConnectionProperties(
            ConnectionProperties { source_ip: true },
        ));
    }
    hash.http_query_parameter_name
        .as_ref()
        .map(|name| PolicySpecifier::QueryParameter(QueryParameter { name: name.clone() }))
}

pub mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::virtual_service::PortSelector;
use crate::duration::IstioDuration;

/// `DestinationRule.spec`: policies and named subsets for one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRule {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub traffic_policy: Option<TrafficPolicy>,
    #[serde(default)]
    pub subsets: Vec<Subset>,
    #[serde(default)]
    pub export_to: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subset {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub traffic_policy: Option<TrafficPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicy {
    #[serde(default)]
    pub load_balancer: Option<LoadBalancerSettings>,
    #[serde(default)]
    pub connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

/// Settings for one port. As in Istio, they replace the parent's settings
/// for that port as a whole: a field left out here falls back to the
/// default, not to the parent's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortTrafficPolicy {
    #[serde(default)]
    pub port: Option<PortSelector>,
    #[serde(default)]
    pub load_balancer: Option<LoadBalancerSettings>,
    #[serde(default)]
    pub connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSettings {
    #[serde(default)]
    pub simple: Option<SimpleLb>,
    #[serde(default)]
    pub consistent_hash: Option<ConsistentHashLb>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    Unspecified,
    LeastRequest,
    LeastConn,
    RoundRobin,
    Random,
    Passthrough,
}

/// Session affinity: exactly one hash key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsistentHashLb {
    #[serde(default)]
    pub http_header_name: Option<String>,
    #[serde(default)]
    pub http_cookie: Option<HttpCookie>,
    #[serde(default, rename = "useSourceIp")]
    pub use_source_ip: Option<bool>,
    #[serde(default)]
    pub http_query_parameter_name: Option<String>,
    #[serde(default)]
    pub minimum_ring_size: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCookie {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub ttl: Option<IstioDuration>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionPoolSettings {
    #[serde(default)]
    pub tcp: Option<TcpSettings>,
    #[serde(default)]
    pub http: Option<HttpSettings>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSettings {
    #[serde(default)]
    pub max_connections: Option<i32>,
    #[serde(default)]
    pub connect_timeout: Option<IstioDuration>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSettings {
    #[serde(default, rename = "http1MaxPendingRequests")]
    pub http1_max_pending_requests: Option<i32>,
    #[serde(default, rename = "http2MaxRequests")]
    pub http2_max_requests: Option<i32>,
    #[serde(default)]
    pub max_requests_per_connection: Option<i32>,
    #[serde(default)]
    pub max_retries: Option<i32>,
    #[serde(default)]
    pub idle_timeout: Option<IstioDuration>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    #[serde(default, rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<u32>,
    #[serde(default)]
    pub consecutive_gateway_errors: Option<u32>,
    #[serde(default)]
    pub interval: Option<IstioDuration>,
    #[serde(default)]
    pub base_ejection_time: Option<IstioDuration>,
    #[serde(default)]
    pub max_ejection_percent: Option<i32>,
    #[serde(default)]
    pub min_health_percent: Option<i32>,
}

/// The settings that apply to one cluster, after Istio's merge of the
/// top-level policy, its port-level settings, the subset's policy and the
/// subset's port-level settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EffectivePolicy<'a> {
    pub load_balancer: Option<&'a LoadBalancerSettings>,
    pub connection_pool: Option<&'a ConnectionPoolSettings>,
    pub outlier_detection: Option<&'a OutlierDetection>,
}

impl<'a> EffectivePolicy<'a> {
    /// `top` is the rule's policy, `subset` the subset's (if the cluster is
    /// a subset's), `port` the service port of the cluster.
    pub fn merge(
        top: Option<&'a TrafficPolicy>,
        subset: Option<&'a TrafficPolicy>,
        port: u16,
    ) -> EffectivePolicy<'a> {
        let mut out = top.map(|p| Self::for_port(p, port)).unwrap_or_default();
        if let Some(s) = subset {
            let own = Self::own(s);
            out.load_balancer = own.load_balancer.or(out.load_balancer);
            out.connection_pool = own.connection_pool.or(out.connection_pool);
            out.outlier_detection = own.outlier_detection.or(out.outlier_detection);
            if let Some(p) = Self::port_level(s, port) {
                out = p;
            }
        }
        out
    }

    fn own(p: &'a TrafficPolicy) -> EffectivePolicy<'a> {
        EffectivePolicy {
            load_balancer: p.load_balancer.as_ref(),
            connection_pool: p.connection_pool.as_ref(),
            outlier_detection: p.outlier_detection.as_ref(),
        }
    }

    fn for_port(p: &'a TrafficPolicy, port: u16) -> EffectivePolicy<'a> {
        Self::port_level(p, port).unwrap_or_else(|| Self::own(p))
    }

    fn port_level(p: &'a TrafficPolicy, port: u16) -> Option<EffectivePolicy<'a>> {
        p.port_level_settings
            .iter()
            .find(|s| s.port.as_ref().is_some_and(|n| n.number == u32::from(port)))
            .map(|s| EffectivePolicy {
                load_balancer: s.load_balancer.as_ref(),
                connection_pool: s.connection_pool.as_ref(),
                outlier_detection: s.outlier_detection.as_ref(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> TrafficPolicy {
        let v: serde_json::Value = crate::yaml::from_str(yaml).expect("yaml");
        serde_json::from_value(v).expect("policy")
    }

    fn simple(p: &EffectivePolicy<'_>) -> Option<SimpleLb> {
        p.load_balancer.and_then(|lb| lb.simple)
    }

    #[test]
    fn port_and_subset_settings_merge_as_istio_does() {
        let top = policy(
            "
loadBalancer: {simple: RANDOM}
outlierDetection: {consecutive5xxErrors: 3}
portLevelSettings:
- port: {number: 8080}
  loadBalancer: {simple: ROUND_ROBIN}
",
        );
        let sub = policy(
            "
connectionPool: {tcp: {maxConnections: 7}}
portLevelSettings:
- port: {number: 9090}
  connectionPool: {http: {maxRetries: 1}}
",
        );
        let plain = EffectivePolicy::merge(Some(&top), None, 80);
        assert_eq!(simple(&plain), Some(SimpleLb::Random));
        assert!(plain.outlier_detection.is_some());

        // Port-level settings replace the whole policy for their port.
        let on_8080 = EffectivePolicy::merge(Some(&top), None, 8080);
        assert_eq!(simple(&on_8080), Some(SimpleLb::RoundRobin));
        assert!(on_8080.outlier_detection.is_none());

        // A subset overrides field by field and inherits the rest.
        let subset = EffectivePolicy::merge(Some(&top), Some(&sub), 80);
        assert_eq!(simple(&subset), Some(SimpleLb::Random));
        assert_eq!(
            subset
                .connection_pool
                .and_then(|c| c.tcp.as_ref())
                .and_then(|t| t.max_connections),
            Some(7)
        );

        // The subset's own port-level settings win for their port.
        let subset_9090 = EffectivePolicy::merge(Some(&top), Some(&sub), 9090);
        assert_eq!(simple(&subset_9090), None);
        assert!(subset_9090.outlier_detection.is_none());
        assert!(subset_9090
            .connection_pool
            .is_some_and(|c| c.http.is_some() && c.tcp.is_none()));
    }

    #[test]
    fn numbered_field_names_parse() {
        let p = policy(
            "
connectionPool:
  http: {http1MaxPendingRequests: 1, http2MaxRequests: 2, maxRequestsPerConnection: 3, idleTimeout: 1m}
outlierDetection: {consecutive5xxErrors: 1, consecutiveGatewayErrors: 2, baseEjectionTime: 3m}
loadBalancer: {consistentHash: {useSourceIp: true}}
",
        );
        let http = p.connection_pool.and_then(|c| c.http).expect("http");
        assert_eq!(http.http1_max_pending_requests, Some(1));
        assert_eq!(http.http2_max_requests, Some(2));
        let od = p.outlier_detection.expect("outlier");
        assert_eq!(od.consecutive_5xx_errors, Some(1));
        assert_eq!(od.base_ejection_time.map(|d| d.get().as_secs()), Some(180));
    }
}

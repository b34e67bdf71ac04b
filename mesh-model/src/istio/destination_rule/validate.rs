//! What a DestinationRule must satisfy beyond its type.

use std::collections::BTreeSet;

use super::{
    ConnectionPoolSettings, DestinationRule, LoadBalancerSettings, OutlierDetection, TrafficPolicy,
};
use crate::validation::{
    check_at_least_ms, check_non_negative, check_port, Errors, ValidationErrors,
};

pub fn validate_destination_rule(dr: &DestinationRule) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    if dr.host.is_empty() {
        errs.add("spec.host", "host is required");
    }
    if let Some(p) = &dr.traffic_policy {
        check_traffic_policy(&mut errs, "spec.trafficPolicy", p);
    }
    let mut seen = BTreeSet::new();
    for (i, s) in dr.subsets.iter().enumerate() {
        if s.name.is_empty() {
            errs.add(format!("spec.subsets[{i}].name"), "subset name is required");
        } else if !seen.insert(s.name.as_str()) {
            errs.add(
                format!("spec.subsets[{i}].name"),
                format!("duplicate subset name {:?}", s.name),
            );
        }
        if let Some(p) = &s.traffic_policy {
            check_traffic_policy(&mut errs, &format!("spec.subsets[{i}].trafficPolicy"), p);
        }
    }
    errs.finish()
}

fn check_traffic_policy(errs: &mut Errors, at: &str, p: &TrafficPolicy) {
    check_policy_parts(
        errs,
        at,
        p.load_balancer.as_ref(),
        p.connection_pool.as_ref(),
        p.outlier_detection.as_ref(),
    );
    let mut ports = BTreeSet::new();
    for (i, pl) in p.port_level_settings.iter().enumerate() {
        let field = format!("{at}.portLevelSettings[{i}]");
        match &pl.port {
            None => errs.add(format!("{field}.port"), "port is required"),
            Some(n) => {
                check_port(errs, format!("{field}.port.number"), n.number);
                if !ports.insert(n.number) {
                    errs.add(
                        format!("{field}.port.number"),
                        format!("port {} has settings already", n.number),
                    );
                }
            }
        }
        check_policy_parts(
            errs,
            &field,
            pl.load_balancer.as_ref(),
            pl.connection_pool.as_ref(),
            pl.outlier_detection.as_ref(),
        );
    }
}

fn check_policy_parts(
    errs: &mut Errors,
    at: &str,
    lb: Option<&LoadBalancerSettings>,
    pool: Option<&ConnectionPoolSettings>,
    outlier: Option<&OutlierDetection>,
) {
    if let Some(lb) = lb {
        let field = format!("{at}.loadBalancer");
        if lb.simple.is_some() && lb.consistent_hash.is_some() {
            errs.add(&field, "only one of simple or consistentHash may be set");
        }
        if let Some(ch) = &lb.consistent_hash {
            let field = format!("{field}.consistentHash");
            let keys = [
                ch.http_header_name.is_some(),
                ch.http_cookie.is_some(),
                ch.use_source_ip.unwrap_or(false),
                ch.http_query_parameter_name.is_some(),
            ];
            if keys.iter().filter(|k| **k).count() != 1 {
                errs.add(
                    &field,
                    "exactly one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName is required",
                );
            }
            if ch.http_header_name.as_deref() == Some("") {
                errs.add(format!("{field}.httpHeaderName"), "must not be empty");
            }
            if ch.http_query_parameter_name.as_deref() == Some("") {
                errs.add(
                    format!("{field}.httpQueryParameterName"),
                    "must not be empty",
                );
            }
            if let Some(c) = &ch.http_cookie {
                if c.name.is_empty() {
                    errs.add(format!("{field}.httpCookie.name"), "is required");
                }
            }
            if ch.minimum_ring_size == Some(0) {
                errs.add(format!("{field}.minimumRingSize"), "must be positive");
            }
        }
    }
    if let Some(pool) = pool {
        let field = format!("{at}.connectionPool");
        if let Some(tcp) = &pool.tcp {
            check_non_negative(
                errs,
                &format!("{field}.tcp.maxConnections"),
                tcp.max_connections,
            );
            if let Some(t) = tcp.connect_timeout {
                check_at_least_ms(errs, &format!("{field}.tcp.connectTimeout"), t);
            }
        }
        if let Some(http) = &pool.http {
            for (name, v) in [
                ("http1MaxPendingRequests", http.http1_max_pending_requests),
                ("http2MaxRequests", http.http2_max_requests),
                ("maxRequestsPerConnection", http.max_requests_per_connection),
                ("maxRetries", http.max_retries),
            ] {
                check_non_negative(errs, &format!("{field}.http.{name}"), v);
            }
            if let Some(t) = http.idle_timeout {
                check_at_least_ms(errs, &format!("{field}.http.idleTimeout"), t);
            }
        }
    }
    if let Some(od) = outlier {
        let field = format!("{at}.outlierDetection");
        for (name, v) in [
            ("maxEjectionPercent", od.max_ejection_percent),
            ("minHealthPercent", od.min_health_percent),
        ] {
            if let Some(v) = v {
                if !(0..=100).contains(&v) {
                    errs.add(format!("{field}.{name}"), format!("{v} is not in 0-100"));
                }
            }
        }
        for (name, d) in [
            ("interval", od.interval),
            ("baseEjectionTime", od.base_ejection_time),
        ] {
            if let Some(d) = d {
                check_at_least_ms(errs, &format!("{field}.{name}"), d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::{fields, from_yaml};

    #[test]
    fn destination_rule_subsets() {
        let yaml = "host: reviews\nsubsets:\n- {name: v1, labels: {version: v1}}\n- {name: v1}\n- {labels: {a: b}}\n";
        let dr: DestinationRule = crate::yaml::from_str(yaml).expect("parses");
        let err = validate_destination_rule(&dr).expect_err("dup and missing");
        assert_eq!(err.0.len(), 2);
        assert_eq!(err.0[0].field, "spec.subsets[1].name");
        assert_eq!(err.0[1].field, "spec.subsets[2].name");
    }

    #[test]
    fn every_traffic_policy_field_is_checked_and_named() {
        let dr: DestinationRule = from_yaml(
            r#"
host: reviews
trafficPolicy:
  loadBalancer:
    simple: RANDOM
    consistentHash: {httpHeaderName: x, useSourceIp: true}
  connectionPool:
    tcp: {maxConnections: -1, connectTimeout: 0s}
    http: {http1MaxPendingRequests: -2}
  outlierDetection: {maxEjectionPercent: 150, interval: 0s}
  portLevelSettings:
  - port: {number: 80}
  - port: {number: 80}
    loadBalancer: {consistentHash: {httpCookie: {path: /}}}
  - loadBalancer: {simple: ROUND_ROBIN}
subsets:
- name: v1
  trafficPolicy: {connectionPool: {http: {idleTimeout: 0s}}}
"#,
        );
        let err = validate_destination_rule(&dr).expect_err("everything is wrong");
        assert_eq!(
            fields(&err),
            vec![
                "spec.trafficPolicy.loadBalancer",
                "spec.trafficPolicy.loadBalancer.consistentHash",
                "spec.trafficPolicy.connectionPool.tcp.maxConnections",
                "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
                "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests",
                "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
                "spec.trafficPolicy.outlierDetection.interval",
                "spec.trafficPolicy.portLevelSettings[1].port.number",
                "spec.trafficPolicy.portLevelSettings[1].loadBalancer.consistentHash.httpCookie.name",
                "spec.trafficPolicy.portLevelSettings[2].port",
                "spec.subsets[0].trafficPolicy.connectionPool.http.idleTimeout",
            ],
            "{err}"
        );
    }

    #[test]
    fn valid_policies_pass() {
        let dr: DestinationRule = from_yaml(
            r#"
host: reviews
trafficPolicy:
  loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 0s}}}
  connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 0, idleTimeout: 1m}}
  outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100}
"#,
        );
        validate_destination_rule(&dr).expect("valid");
    }
}

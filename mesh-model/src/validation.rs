//! Semantic checks on Istio resources, beyond what their types enforce.
//!
//! Each check reports every problem it finds, each naming its field as a path
//! into the resource (`spec.http[0].route[1].weight`), so one pass over a bad
//! file tells the operator everything that is wrong with it.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use crate::duration::IstioDuration;
use crate::istio::destination_rule::{
    ConnectionPoolSettings, LoadBalancerSettings, OutlierDetection,
};
use crate::istio::sidecar::ImportedHost;
use crate::istio::virtual_service::{Headers, Percent};
use crate::istio::{
    Destination, DestinationRule, Gateway, HttpMatchRequest, HttpRoute, ServiceEntry,
    ServiceEntryResolution, Sidecar, StringMatch, TrafficPolicy, VirtualService, WorkloadEntry,
};
use crate::service::Protocol;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}

fn check_string_match(errs: &mut Errors, field: &str, m: &StringMatch) {
    if let StringMatch::Regex(re) = m {
        check_regex(errs, field, re);
    }
}

fn check_regex(errs: &mut Errors, field: &str, re: &str) {
    if let Err(e) = regex::Regex::new(re) {
        // The regex crate's message spans several lines; keep the last,
        // which says what is wrong.
        let text = e.to_string();
        let last = text.lines().last().unwrap_or_default().trim().to_string();
        errs.add(field, format!("invalid regex {re:?}: {last}"));
    }
}

fn check_port(errs: &mut Errors, field: impl Into<String>, port: u32) {
    if port == 0 || port > u32::from(u16::MAX) {
        errs.add(field, format!("port {port} is out of range 1-65535"));
    }
}

pub fn validate_virtual_service(vs: &VirtualService) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    if vs.hosts.is_empty() {
        errs.add("spec.hosts", "at least one host is required");
    }
    for (i, h) in vs.hosts.iter().enumerate() {
        if h.is_empty() {
            errs.add(format!("spec.hosts[{i}]"), "host must not be empty");
        }
    }
    if vs.http.is_empty() && vs.tcp.is_empty() {
        errs.add("spec.http", "at least one http or tcp rule is required");
    }
    for (r, route) in vs.http.iter().enumerate() {
        check_http_route(&mut errs, &format!("spec.http[{r}]"), route);
    }
    for (r, route) in vs.tcp.iter().enumerate() {
        let at = format!("spec.tcp[{r}]");
        for (m, mat) in route.matches.iter().enumerate() {
            if let Some(p) = mat.port {
                check_port(&mut errs, format!("{at}.match[{m}].port"), p);
            }
        }
        let dests: Vec<(&Destination, u32)> = route
            .route
            .iter()
            .map(|d| (&d.destination, d.weight))
            .collect();
        check_destinations(&mut errs, &at, &dests);
    }
    errs.finish()
}

fn check_http_route(errs: &mut Errors, at: &str, route: &HttpRoute) {
    for (m, mat) in route.matches.iter().enumerate() {
        check_http_match(errs, &format!("{at}.match[{m}]"), mat);
    }
    let actions = [
        ("route", !route.route.is_empty()),
        ("redirect", route.redirect.is_some()),
        ("directResponse", route.direct_response.is_some()),
    ];
    let set: Vec<&str> = actions.iter().filter(|a| a.1).map(|a| a.0).collect();
    match set.as_slice() {
        [] => errs.add(
            format!("{at}.route"),
            "one of route, redirect or directResponse is required",
        ),
        [_] => {}
        many => errs.add(at, format!("only one of {} may be set", many.join(", "))),
    }
    let dests: Vec<(&Destination, u32)> = route
        .route
        .iter()
        .map(|d| (&d.destination, d.weight))
        .collect();
    check_destinations(errs, at, &dests);
    for (d, dest) in route.route.iter().enumerate() {
        if let Some(h) = &dest.headers {
            check_headers(errs, &format!("{at}.route[{d}].headers"), h);
        }
    }
    if let Some(rw) = &route.rewrite {
        if route.redirect.is_some() {
            errs.add(
                format!("{at}.rewrite"),
                "cannot be used together with redirect",
            );
        }
        if let Some(rr) = &rw.uri_regex_rewrite {
            if !rw.uri.is_empty() {
                errs.add(
                    format!("{at}.rewrite.uriRegexRewrite"),
                    "cannot be used together with rewrite.uri",
                );
            }
            check_regex(
                errs,
                &format!("{at}.rewrite.uriRegexRewrite.match"),
                &rr.pattern,
            );
        }
    }
    if let Some(rd) = &route.redirect {
        if let Some(code) = rd.redirect_code {
            if ![301, 302, 303, 307, 308].contains(&code) {
                errs.add(
                    format!("{at}.redirect.redirectCode"),
                    format!("{code} is not a redirect code (301, 302, 303, 307 or 308)"),
                );
            }
        }
        if let Some(p) = rd.port {
            check_port(errs, format!("{at}.redirect.port"), p);
        }
        if !rd.scheme.is_empty() && rd.scheme != "http" && rd.scheme != "https" {
            errs.add(
                format!("{at}.redirect.scheme"),
                format!("{:?} is not http or https", rd.scheme),
            );
        }
    }
    if let Some(dr) = &route.direct_response {
        if !(200..=599).contains(&dr.status) {
            errs.add(
                format!("{at}.directResponse.status"),
                format!("{} is not an HTTP status in 200-599", dr.status),
            );
        }
    }
    if let Some(r) = &route.retries {
        if r.attempts < 0 {
            errs.add(format!("{at}.retries.attempts"), "must not be negative");
        }
        if let Some(t) = r.per_try_timeout {
            check_at_least_ms(errs, &format!("{at}.retries.perTryTimeout"), t);
        }
        check_retry_on(errs, &format!("{at}.retries.retryOn"), &r.retry_on);
    }
    if let Some(f) = &route.fault {
        if f.delay.is_none() && f.abort.is_none() {
            errs.add(format!("{at}.fault"), "one of delay or abort is required");
        }
        if let Some(d) = &f.delay {
            match d.fixed_delay {
                None => errs.add(format!("{at}.fault.delay.fixedDelay"), "is required"),
                Some(t) => check_at_least_ms(errs, &format!("{at}.fault.delay.fixedDelay"), t),
            }
            check_percent(errs, &format!("{at}.fault.delay.percentage"), d.percentage);
        }
        if let Some(a) = &f.abort {
            if !(200..=599).contains(&a.http_status) {
                errs.add(
                    format!("{at}.fault.abort.httpStatus"),
                    format!("{} is not an HTTP status in 200-599", a.http_status),
                );
            }
            check_percent(errs, &format!("{at}.fault.abort.percentage"), a.percentage);
        }
    }
    if let Some(m) = &route.mirror {
        check_destination(errs, &format!("{at}.mirror"), m);
    }
    check_percent(
        errs,
        &format!("{at}.mirrorPercentage"),
        route.mirror_percentage,
    );
    if let Some(c) = &route.cors_policy {
        for (i, o) in c.allow_origins.iter().enumerate() {
            check_string_match(errs, &format!("{at}.corsPolicy.allowOrigins[{i}]"), o);
        }
        if let Some(age) = c.max_age {
            if age.get().subsec_nanos() != 0 {
                errs.add(
                    format!("{at}.corsPolicy.maxAge"),
                    format!("{age} is not a whole number of seconds"),
                );
            }
        }
    }
    if let Some(h) = &route.headers {
        check_headers(errs, &format!("{at}.headers"), h);
    }
}

fn check_http_match(errs: &mut Errors, at: &str, mat: &HttpMatchRequest) {
    for (name, m) in [
        ("uri", &mat.uri),
        ("scheme", &mat.scheme),
        ("method", &mat.method),
        ("authority", &mat.authority),
    ] {
        if let Some(m) = m {
            check_string_match(errs, &format!("{at}.{name}"), m);
        }
    }
    for (what, map) in [
        ("headers", &mat.headers),
        ("withoutHeaders", &mat.without_headers),
        ("queryParams", &mat.query_params),
    ] {
        for (name, m) in map {
            let field = format!("{at}.{what}.{name}");
            if name.is_empty() {
                errs.add(&field, "name must not be empty");
            }
            if let Some(v) = m.value() {
                check_string_match(errs, &field, v);
            }
        }
    }
    if let Some(p) = mat.port {
        check_port(errs, format!("{at}.port"), p);
    }
}

fn check_destination(errs: &mut Errors, at: &str, d: &Destination) {
    if d.host.is_empty() {
        errs.add(format!("{at}.host"), "destination host is required");
    }
    if let Some(p) = &d.port {
        check_port(errs, format!("{at}.port.number"), p.number);
    }
}

/// Destinations of one rule, as (destination, weight): each well formed,
/// and weights that add up to 100 when there are several.
fn check_destinations(errs: &mut Errors, at: &str, dests: &[(&Destination, u32)]) {
    for (d, (dest, _)) in dests.iter().enumerate() {
        check_destination(errs, &format!("{at}.route[{d}].destination"), dest);
    }
    if dests.len() > 1 {
        let total: u64 = dests.iter().map(|(_, w)| u64::from(*w)).sum();
        if total != 100 {
            errs.add(
                format!("{at}.route"),
                format!("destination weights must add up to 100, they add up to {total}"),
            );
        }
    } else if let Some((_, weight)) = dests.first() {
        if *weight != 0 && *weight != 100 {
            errs.add(
                format!("{at}.route[0].weight"),
                format!(
                    "a single destination takes all traffic; weight {weight} must be 100 or unset"
                ),
            );
        }
    }
}

fn check_headers(errs: &mut Errors, at: &str, h: &Headers) {
    for (side, ops) in [("request", &h.request), ("response", &h.response)] {
        let Some(ops) = ops else { continue };
        let names = ops
            .set
            .keys()
            .map(|n| ("set", n))
            .chain(ops.add.keys().map(|n| ("add", n)))
            .chain(ops.remove.iter().map(|n| ("remove", n)));
        for (op, name) in names {
            let field = format!("{at}.{side}.{op}.{name}");
            if name.is_empty() {
                errs.add(field, "header name must not be empty");
            } else if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                // Envoy refuses to rewrite these, and would reject the whole
                // route configuration with them.
                errs.add(
                    field,
                    format!("{name:?} cannot be changed (a pseudo-header or host)"),
                );
            } else if !name.bytes().all(is_token_byte) {
                errs.add(field, format!("{name:?} is not a valid header name"));
            }
        }
    }
}

/// RFC 7230 token characters, the bytes a header name may hold.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Envoy's `x-envoy-retry-on` conditions (HTTP and gRPC).
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

fn check_retry_on(errs: &mut Errors, at: &str, retry_on: &str) {
    if retry_on.is_empty() {
        return;
    }
    for part in retry_on.split(',').map(str::trim) {
        let is_code = part.parse::<u32>().is_ok_and(|c| (100..=599).contains(&c));
        if !is_code && !RETRY_ON.contains(&part) {
            errs.add(
                at,
                format!("{part:?} is neither a retry condition Envoy knows nor an HTTP status"),
            );
        }
    }
}

fn check_percent(errs: &mut Errors, at: &str, p: Option<Percent>) {
    if let Some(p) = p {
        if !(0.0..=100.0).contains(&p.value) {
            errs.add(
                format!("{at}.value"),
                format!("{} is not in 0-100", p.value),
            );
        }
    }
}

fn check_at_least_ms(errs: &mut Errors, at: &str, d: IstioDuration) {
    if d.get() < std::time::Duration::from_millis(1) {
        errs.add(at, format!("{d} is shorter than 1ms"));
    }
}

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

fn check_non_negative(errs: &mut Errors, at: &str, v: Option<i32>) {
    if let Some(v) = v {
        if v < 0 {
            errs.add(at, format!("{v} must not be negative"));
        }
    }
}

fn check_workload(errs: &mut Errors, at: &str, we: &WorkloadEntry, need_ip: bool) {
    if we.address.is_empty() {
        errs.add(format!("{at}.address"), "address is required");
    } else if need_ip && we.address.parse::<IpAddr>().is_err() {
        errs.add(
            format!("{at}.address"),
            format!(
                "{:?} is not an IP address (STATIC resolution needs IPs)",
                we.address
            ),
        );
    }
    for (name, port) in &we.ports {
        check_port(errs, format!("{at}.ports.{name}"), *port);
    }
}

pub fn validate_workload_entry(we: &WorkloadEntry) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    check_workload(&mut errs, "spec", we, false);
    errs.finish()
}

pub fn validate_service_entry(se: &ServiceEntry) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    if se.hosts.is_empty() {
        errs.add("spec.hosts", "at least one host is required");
    }
    for (i, h) in se.hosts.iter().enumerate() {
        if h.is_empty() || h == "*" {
            errs.add(
                format!("spec.hosts[{i}]"),
                format!("{h:?} is not a valid host"),
            );
        }
    }
    if se.ports.is_empty() {
        errs.add("spec.ports", "at least one port is required");
    }
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, p) in se.ports.iter().enumerate() {
        check_port(&mut errs, format!("spec.ports[{i}].number"), p.number);
        if let Some(t) = p.target_port {
            check_port(&mut errs, format!("spec.ports[{i}].targetPort"), t);
        }
        if p.name.is_empty() {
            errs.add(format!("spec.ports[{i}].name"), "port name is required");
        } else if !names.insert(p.name.as_str()) {
            errs.add(
                format!("spec.ports[{i}].name"),
                format!("duplicate port name {:?}", p.name),
            );
        }
        if !numbers.insert(p.number) {
            errs.add(
                format!("spec.ports[{i}].number"),
                format!("duplicate port {}", p.number),
            );
        }
    }
    if !se.endpoints.is_empty() && se.workload_selector.is_some() {
        errs.add(
            "spec.workloadSelector",
            "cannot be used together with spec.endpoints",
        );
    }
    let need_ip = se.resolution == ServiceEntryResolution::Static;
    for (i, ep) in se.endpoints.iter().enumerate() {
        check_workload(&mut errs, &format!("spec.endpoints[{i}]"), ep, need_ip);
        for name in ep.ports.keys() {
            if !names.contains(name.as_str()) {
                errs.add(
                    format!("spec.endpoints[{i}].ports.{name}"),
                    format!("no service port is named {name:?}"),
                );
            }
        }
    }
    errs.finish()
}

fn check_wildcard_host(errs: &mut Errors, at: &str, host: &str) {
    let valid = host == "*"
        || host
            .strip_prefix("*.")
            .unwrap_or(host)
            .chars()
            .all(|c| c != '*');
    if !valid || host == "*." || host.is_empty() {
        errs.add(
            at,
            format!("{host:?}: a wildcard may only be a leading \"*\" or \"*.\""),
        );
    }
}

pub fn validate_gateway(gw: &Gateway) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    if gw.servers.is_empty() {
        errs.add("spec.servers", "at least one server is required");
    }
    let mut bound = BTreeSet::new();
    for (s, server) in gw.servers.iter().enumerate() {
        let at = format!("spec.servers[{s}]");
        check_port(&mut errs, format!("{at}.port.number"), server.port.number);
        if !Protocol::parse(&server.port.protocol).is_http() {
            errs.add(
                format!("{at}.port.protocol"),
                format!(
                    "{:?} is not supported (HTTP, HTTP2 or GRPC; TLS servers are not implemented)",
                    server.port.protocol
                ),
            );
        }
        if !server.bind.is_empty() && server.bind.parse::<IpAddr>().is_err() {
            errs.add(
                format!("{at}.bind"),
                format!("{:?} is not an IP address", server.bind),
            );
        }
        if !bound.insert((server.bind.as_str(), server.port.number)) {
            errs.add(
                format!("{at}.port.number"),
                format!(
                    "port {} is already used by another server",
                    server.port.number
                ),
            );
        }
        if server.hosts.is_empty() {
            errs.add(format!("{at}.hosts"), "at least one host is required");
        }
        for (h, entry) in server.hosts.iter().enumerate() {
            let host = match entry.split_once('/') {
                Some((ns, host)) if !ns.is_empty() => host,
                Some(_) => "",
                None => entry.as_str(),
            };
            check_wildcard_host(&mut errs, &format!("{at}.hosts[{h}]"), host);
        }
    }
    errs.finish()
}

pub fn validate_sidecar(sc: &Sidecar) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    if sc.egress.is_empty() {
        errs.add("spec.egress", "at least one egress listener is required");
    }
    if sc.egress.len() > 1 {
        errs.add(
            "spec.egress",
            "only one egress listener is supported (per-port listeners are not implemented)",
        );
    }
    for (e, egress) in sc.egress.iter().enumerate() {
        if egress.hosts.is_empty() {
            errs.add(
                format!("spec.egress[{e}].hosts"),
                "at least one namespace/host is required",
            );
        }
        for (h, entry) in egress.hosts.iter().enumerate() {
            let at = format!("spec.egress[{e}].hosts[{h}]");
            let Some(imported) = ImportedHost::parse(entry) else {
                errs.add(
                    at,
                    format!("{entry:?} must be namespace/host (\"./*\", \"*/api.example.com\")"),
                );
                continue;
            };
            check_wildcard_host(&mut errs, &at, imported.host);
        }
    }
    if let Some(selector) = &sc.workload_selector {
        if selector.labels.is_empty() {
            errs.add(
                "spec.workloadSelector.labels",
                "at least one label is required (omit workloadSelector to select the namespace)",
            );
        }
    }
    errs.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::virtual_service::{
        Destination, HttpMatchRequest, HttpRoute, HttpRouteDestination,
    };

    fn dest(host: &str, weight: u32) -> HttpRouteDestination {
        HttpRouteDestination {
            destination: Destination {
                host: host.into(),
                ..Default::default()
            },
            weight,
            headers: None,
        }
    }

    fn vs(routes: Vec<HttpRouteDestination>) -> VirtualService {
        VirtualService {
            hosts: vec!["reviews".into()],
            http: vec![HttpRoute {
                route: routes,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn weights_must_add_up() {
        assert!(validate_virtual_service(&vs(vec![dest("a", 80), dest("a", 20)])).is_ok());
        let err = validate_virtual_service(&vs(vec![dest("a", 80), dest("a", 30)]))
            .expect_err("110 is not 100");
        assert_eq!(err.0[0].field, "spec.http[0].route");
        assert!(err.to_string().contains("add up to 110"), "{err}");
        assert!(validate_virtual_service(&vs(vec![dest("a", 0)])).is_ok());
        assert!(validate_virtual_service(&vs(vec![dest("a", 50)])).is_err());
    }

    #[test]
    fn bad_regex_names_the_field() {
        let mut v = vs(vec![dest("a", 0)]);
        v.http[0].matches.push(HttpMatchRequest {
            uri: Some(StringMatch::Regex("/api/(".into())),
            ..Default::default()
        });
        let err = validate_virtual_service(&v).expect_err("unclosed group");
        assert_eq!(err.0[0].field, "spec.http[0].match[0].uri");
        assert!(err.0[0].message.contains("invalid regex"), "{err}");
    }

    #[test]
    fn missing_hosts_and_destinations() {
        let err = validate_virtual_service(&VirtualService {
            http: vec![HttpRoute::default()],
            ..Default::default()
        })
        .expect_err("empty");
        let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.hosts", "spec.http[0].route"]);
    }

    #[test]
    fn service_entry_checks() {
        let yaml = r#"
hosts: [api.example.com]
ports:
- {number: 80, name: http, protocol: HTTP}
- {number: 80, name: http, protocol: HTTP}
resolution: STATIC
endpoints:
- address: not-an-ip
  ports: {grpc: 70000}
"#;
        let se: ServiceEntry = serde_yaml::from_str(yaml).expect("parses");
        let err = validate_service_entry(&se).expect_err("several problems");
        let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.ports[1].name",
                "spec.ports[1].number",
                "spec.endpoints[0].address",
                "spec.endpoints[0].ports.grpc",
                "spec.endpoints[0].ports.grpc",
            ]
        );
    }

    #[test]
    fn destination_rule_subsets() {
        let yaml = "host: reviews\nsubsets:\n- {name: v1, labels: {version: v1}}\n- {name: v1}\n- {labels: {a: b}}\n";
        let dr: DestinationRule = serde_yaml::from_str(yaml).expect("parses");
        let err = validate_destination_rule(&dr).expect_err("dup and missing");
        assert_eq!(err.0.len(), 2);
        assert_eq!(err.0[0].field, "spec.subsets[1].name");
        assert_eq!(err.0[1].field, "spec.subsets[2].name");
    }

    fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        let v: serde_json::Value = serde_yaml::from_str(yaml).expect("yaml");
        serde_json::from_value(v).expect("parses")
    }

    fn fields(err: &ValidationErrors) -> Vec<&str> {
        err.0.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn every_http_policy_field_is_checked_and_named() {
        let vs: VirtualService = from_yaml(
            r#"
hosts: [reviews]
http:
- match:
  - headers: {":bad[": {regex: "("}}
    queryParams: {q: {regex: "["}}
    port: 0
  route: [{destination: {host: reviews}}]
  redirect: {uri: /x, redirectCode: 200}
  rewrite: {uri: /y}
  retries: {attempts: -1, perTryTimeout: 0s, retryOn: "5xx,bogus,503"}
  fault:
    delay: {percentage: {value: 101}}
    abort: {httpStatus: 99}
  mirror: {host: ""}
  mirrorPercentage: {value: -1}
  corsPolicy: {allowOrigins: [{regex: "("}], maxAge: 1500ms}
  headers:
    request: {set: {":path": /x}, remove: [host]}
    response: {add: {"bad header": v}}
- directResponse: {status: 700}
- {}
"#,
        );
        let err = validate_virtual_service(&vs).expect_err("everything is wrong");
        assert_eq!(
            fields(&err),
            vec![
                "spec.http[0].match[0].headers.:bad[",
                "spec.http[0].match[0].queryParams.q",
                "spec.http[0].match[0].port",
                "spec.http[0]",
                "spec.http[0].rewrite",
                "spec.http[0].redirect.redirectCode",
                "spec.http[0].retries.attempts",
                "spec.http[0].retries.perTryTimeout",
                "spec.http[0].retries.retryOn",
                "spec.http[0].fault.delay.fixedDelay",
                "spec.http[0].fault.delay.percentage.value",
                "spec.http[0].fault.abort.httpStatus",
                "spec.http[0].mirror.host",
                "spec.http[0].mirrorPercentage.value",
                "spec.http[0].corsPolicy.allowOrigins[0]",
                "spec.http[0].corsPolicy.maxAge",
                "spec.http[0].headers.request.set.:path",
                "spec.http[0].headers.request.remove.host",
                "spec.http[0].headers.response.add.bad header",
                "spec.http[1].directResponse.status",
                "spec.http[2].route",
            ],
            "{err}"
        );
        assert!(err.to_string().contains("\"bogus\" is neither"), "{err}");
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
        let vs: VirtualService = from_yaml(
            r#"
hosts: [reviews]
http:
- match: [{headers: {x-canary: {}}, withoutHeaders: {x-debug: {exact: "1"}}, ignoreUriCase: true}]
  route: [{destination: {host: reviews, subset: v2}, headers: {request: {set: {x-a: b}}}}]
  retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,503"}
  fault: {delay: {fixedDelay: 5s, percentage: {value: 0.1}}}
  timeout: 10s
  mirror: {host: shadow}
  mirrorPercentage: {value: 50}
- redirect: {uri: /new, authority: example.com, redirectCode: 302}
- directResponse: {status: 418, body: {string: teapot}}
tcp:
- match: [{port: 3306}]
  route: [{destination: {host: db, subset: a}, weight: 60}, {destination: {host: db, subset: b}, weight: 40}]
"#,
        );
        validate_virtual_service(&vs).expect("valid");
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

    #[test]
    fn string_match_yaml_shape() {
        // Istio kinds are read as YAML into a JSON value first: serde_yaml
        // alone expects YAML tags for enums.
        let v: serde_json::Value = serde_yaml::from_str("prefix: /api").expect("yaml");
        let m: StringMatch = serde_json::from_value(v).expect("parses");
        assert_eq!(m, StringMatch::Prefix("/api".into()));
    }

    #[test]
    fn every_sidecar_field_is_checked_and_named() {
        let sc: Sidecar = from_yaml(
            r#"
workloadSelector: {labels: {}}
egress:
- hosts: ["./*", "no-slash", "*/a.*.com", "*/*foo", "shop/*.example.com", "*/*."]
- hosts: []
"#,
        );
        let err = validate_sidecar(&sc).expect_err("invalid");
        assert_eq!(
            fields(&err),
            vec![
                "spec.egress",
                "spec.egress[0].hosts[1]",
                "spec.egress[0].hosts[2]",
                "spec.egress[0].hosts[3]",
                "spec.egress[0].hosts[5]",
                "spec.egress[1].hosts",
                "spec.workloadSelector.labels",
            ],
            "{err}"
        );
        let none: Sidecar = from_yaml("outboundTrafficPolicy: {mode: REGISTRY_ONLY}");
        assert_eq!(
            fields(&validate_sidecar(&none).expect_err("no egress")),
            vec!["spec.egress"]
        );
        let good: Sidecar = from_yaml(
            r#"
workloadSelector: {labels: {app: web}}
egress: [{hosts: ["./*", "istio-system/*", "*/api.example.com", "~/*"]}]
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"#,
        );
        assert_eq!(validate_sidecar(&good), Ok(()));
    }

    #[test]
    fn every_gateway_field_is_checked_and_named() {
        let gw: Gateway = from_yaml(
            r#"
servers:
- port: {number: 0, protocol: TLS}
  hosts: ["*.a.*"]
  bind: localhost
- port: {number: 80, protocol: HTTP}
  hosts: []
- port: {number: 80, protocol: http}
  hosts: ["/x", "ns/*"]
"#,
        );
        let err = validate_gateway(&gw).expect_err("invalid");
        assert_eq!(
            fields(&err),
            vec![
                "spec.servers[0].port.number",
                "spec.servers[0].port.protocol",
                "spec.servers[0].bind",
                "spec.servers[0].hosts[0]",
                "spec.servers[1].hosts",
                "spec.servers[2].port.number",
                "spec.servers[2].hosts[0]",
            ],
            "{err}"
        );
        let empty: Gateway = from_yaml("selector: {istio: ingressgateway}");
        assert_eq!(
            fields(&validate_gateway(&empty).expect_err("no servers")),
            vec!["spec.servers"]
        );
        let good: Gateway = from_yaml(
            r#"
selector: {istio: ingressgateway}
servers:
- port: {number: 8080, name: http, protocol: HTTP}
  hosts: ["*", "shop/*.example.com"]
  bind: 127.0.0.1
- port: {number: 8081, name: grpc, protocol: GRPC}
  hosts: [api.example.com]
"#,
        );
        assert_eq!(validate_gateway(&good), Ok(()));
    }
}

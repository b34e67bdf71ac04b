//! What a VirtualService must satisfy beyond its type.

use super::{Destination, Headers, HttpMatchRequest, HttpRoute, Percent, VirtualService};
use crate::validation::{
    check_at_least_ms, check_port, check_regex, check_string_match, Errors, ValidationErrors,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::virtual_service::HttpRouteDestination;
    use crate::istio::StringMatch;
    use crate::validation::testing::{fields, from_yaml};
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
    }
}

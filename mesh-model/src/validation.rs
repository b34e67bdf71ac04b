//! Semantic checks on Istio resources, beyond what their types enforce.
//!
//! Each check reports every problem it finds, each naming its field as a path
//! into the resource (`spec.http[0].route[1].weight`), so one pass over a bad
//! file tells the operator everything that is wrong with it.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use crate::istio::{
    DestinationRule, ServiceEntry, ServiceEntryResolution, StringMatch, VirtualService,
    WorkloadEntry,
};

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
        if let Err(e) = regex::Regex::new(re) {
            // The regex crate's message spans several lines; keep the first.
            let first = e.to_string();
            let first = first.lines().last().unwrap_or_default().trim().to_string();
            errs.add(field, format!("invalid regex {re:?}: {first}"));
        }
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
    for (r, route) in vs.http.iter().enumerate() {
        let at = format!("spec.http[{r}]");
        for (m, mat) in route.matches.iter().enumerate() {
            if let Some(uri) = &mat.uri {
                check_string_match(&mut errs, &format!("{at}.match[{m}].uri"), uri);
            }
            for (name, hm) in &mat.headers {
                let field = format!("{at}.match[{m}].headers.{name}");
                if name.is_empty() {
                    errs.add(&field, "header name must not be empty");
                }
                check_string_match(&mut errs, &field, hm);
            }
        }
        if route.route.is_empty() {
            errs.add(
                format!("{at}.route"),
                "at least one destination is required",
            );
        }
        for (d, dest) in route.route.iter().enumerate() {
            let field = format!("{at}.route[{d}].destination");
            if dest.destination.host.is_empty() {
                errs.add(format!("{field}.host"), "destination host is required");
            }
            if let Some(p) = &dest.destination.port {
                check_port(&mut errs, format!("{field}.port.number"), p.number);
            }
        }
        if route.route.len() > 1 {
            let total: u64 = route.route.iter().map(|d| u64::from(d.weight)).sum();
            if total != 100 {
                errs.add(
                    format!("{at}.route"),
                    format!("destination weights must add up to 100, they add up to {total}"),
                );
            }
        } else if let Some(only) = route.route.first() {
            if only.weight != 0 && only.weight != 100 {
                errs.add(
                    format!("{at}.route[0].weight"),
                    format!(
                        "a single destination takes all traffic; weight {} must be 100 or unset",
                        only.weight
                    ),
                );
            }
        }
    }
    errs.finish()
}

pub fn validate_destination_rule(dr: &DestinationRule) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    if dr.host.is_empty() {
        errs.add("spec.host", "host is required");
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
    }
    errs.finish()
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

    #[test]
    fn string_match_yaml_shape() {
        // Istio kinds are read as YAML into a JSON value first: serde_yaml
        // alone expects YAML tags for enums.
        let v: serde_json::Value = serde_yaml::from_str("prefix: /api").expect("yaml");
        let m: StringMatch = serde_json::from_value(v).expect("parses");
        assert_eq!(m, StringMatch::Prefix("/api".into()));
    }
}

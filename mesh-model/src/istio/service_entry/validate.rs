//! What a ServiceEntry must satisfy beyond its type.

use std::collections::BTreeSet;

use super::{ServiceEntry, ServiceEntryResolution};
use crate::istio::workload_entry::validate::check_workload;
use crate::validation::{check_port, Errors, ValidationErrors};

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
        let se: ServiceEntry = crate::yaml::from_str(yaml).expect("parses");
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
}

//! What a Sidecar must satisfy beyond its type.

use super::{ImportedHost, Sidecar};
use crate::validation::{check_wildcard_host, Errors, ValidationErrors};

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
    use crate::validation::testing::{fields, from_yaml};

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
}

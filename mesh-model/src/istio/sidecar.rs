pub mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::service_entry::WorkloadSelector;
use crate::host::Hostname;

/// Istio's root namespace: a Sidecar there without a selector is the
/// mesh-wide default.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// `Sidecar.spec`: what a proxy imports from the mesh, and what it does with
/// traffic to hosts the mesh does not know.
///
/// Egress listeners bound to one port (`port`, `bind`, `captureMode`) and
/// `ingress` are not implemented; they are unknown fields, so a resource
/// using them is rejected with the field named rather than half applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sidecar {
    #[serde(default)]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub egress: Vec<EgressListener>,
    #[serde(default)]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressListener {
    /// `namespace/dnsName` entries: the services this proxy imports.
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    #[serde(default)]
    pub mode: OutboundMode,
}

/// What happens to traffic for a host the proxy does not import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboundMode {
    /// Forwarded to where the client sent it (`PassthroughCluster`).
    #[default]
    #[serde(rename = "ALLOW_ANY")]
    AllowAny,
    /// Refused (`BlackHoleCluster`, or a 502 for HTTP).
    #[serde(rename = "REGISTRY_ONLY")]
    RegistryOnly,
}

/// One parsed `namespace/dnsName` egress host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedHost<'a> {
    pub namespace: &'a str,
    pub host: &'a str,
}

impl<'a> ImportedHost<'a> {
    /// Splits `ns/host`; `None` when there is no `/` or either side is empty.
    pub fn parse(entry: &'a str) -> Option<ImportedHost<'a>> {
        let (namespace, host) = entry.split_once('/')?;
        (!namespace.is_empty() && !host.is_empty()).then_some(ImportedHost { namespace, host })
    }

    /// Whether this entry, written in a Sidecar of `sidecar_namespace`,
    /// imports `host` from `namespace`. `*` is any namespace, `.` the
    /// Sidecar's own and `~` none; the host is `*`, `*.suffix` or exact.
    pub fn imports(&self, sidecar_namespace: &str, namespace: &str, host: &Hostname) -> bool {
        let namespace_matches = match self.namespace {
            "*" => true,
            "." => namespace == sidecar_namespace,
            "~" => false,
            ns => ns == namespace,
        };
        namespace_matches && host_matches(self.host, host.as_str())
    }
}

/// Istio's wildcard host match: `*` matches all, `*.example.com` any name
/// ending in `.example.com`, anything else only itself.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
        None => pattern == host,
    }
}

impl Sidecar {
    /// Whether a proxy with `labels` is selected by this Sidecar's
    /// `workloadSelector` (a Sidecar without one selects every proxy of its
    /// namespace).
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.workload_selector
            .as_ref()
            .is_none_or(|s| crate::labels::selects(&s.labels, labels))
    }

    /// Whether a proxy under this Sidecar (which lives in
    /// `sidecar_namespace`) imports service `host` of `namespace`.
    pub fn imports(&self, sidecar_namespace: &str, namespace: &str, host: &Hostname) -> bool {
        self.egress
            .iter()
            .flat_map(|e| e.hosts.iter())
            .filter_map(|h| ImportedHost::parse(h))
            .any(|h| h.imports(sidecar_namespace, namespace, host))
    }

    pub fn outbound_mode(&self) -> OutboundMode {
        self.outbound_traffic_policy
            .map(|p| p.mode)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sidecar(hosts: &[&str]) -> Sidecar {
        Sidecar {
            egress: vec![EgressListener {
                hosts: hosts.iter().map(ToString::to_string).collect(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn egress_hosts_follow_istio() {
        let a = Hostname::new("a.shop.svc.cluster.local");
        let ext = Hostname::new("api.example.com");
        let s = sidecar(&["./*", "istio-system/*", "*/api.example.com"]);
        assert!(s.imports("shop", "shop", &a), "own namespace");
        assert!(
            !s.imports("web", "shop", &a),
            "`.` is the Sidecar's namespace"
        );
        assert!(s.imports("web", "istio-system", &a));
        assert!(s.imports("web", "other", &ext), "any namespace, exact host");
        assert!(!s.imports("web", "other", &Hostname::new("b.example.com")));

        let s = sidecar(&["shop/*.example.com"]);
        assert!(s.imports("web", "shop", &ext));
        assert!(!s.imports("web", "shop", &Hostname::new("example.com")));
        assert!(!sidecar(&["~/*"]).imports("shop", "shop", &a));
        assert!(!sidecar(&["no-slash"]).imports("shop", "shop", &a));
        assert!(!Sidecar::default().imports("shop", "shop", &a));
    }

    #[test]
    fn selection_and_mode() {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        assert!(Sidecar::default().selects(&labels));
        let picky = Sidecar {
            workload_selector: Some(WorkloadSelector {
                labels: BTreeMap::from([("app".to_string(), "api".to_string())]),
            }),
            ..Default::default()
        };
        assert!(!picky.selects(&labels));
        assert_eq!(Sidecar::default().outbound_mode(), OutboundMode::AllowAny);
        let s: Sidecar = serde_json::from_value(serde_json::json!({
            "egress": [{"hosts": ["./*"]}],
            "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}
        }))
        .expect("parses");
        assert_eq!(s.outbound_mode(), OutboundMode::RegistryOnly);
        let err = serde_json::from_value::<Sidecar>(serde_json::json!({
            "egress": [{"port": {"number": 80}, "hosts": ["./*"]}]
        }))
        .expect_err("per-port egress is not implemented");
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
    }
}

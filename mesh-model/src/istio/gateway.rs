pub mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::service_entry::ServiceEntryPort;
use super::sidecar::ImportedHost;
use crate::host::Hostname;

/// `Gateway.spec`: the ports a standalone proxy (a `router`) listens on,
/// and the hosts it accepts there. VirtualServices bind to it through their
/// `gateways` field.
///
/// Only plain-text HTTP servers are implemented: `tls` and
/// `defaultEndpoint` are unknown fields, and other protocols are rejected
/// by validation, so nothing is half applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gateway {
    /// Labels of the gateway proxies this configures.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Server {
    pub port: ServerPort,
    /// `host` or `namespace/host`: which VirtualServices may bind.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The address to listen on; all addresses when empty.
    #[serde(default)]
    pub bind: String,
    #[serde(default)]
    pub name: String,
}

/// Istio's `Port` message, the same for a Gateway server as for a
/// ServiceEntry.
pub type ServerPort = ServiceEntryPort;

impl Gateway {
    /// Whether a gateway proxy with `labels` runs this Gateway; as in
    /// Istio, an empty selector selects every gateway proxy.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        crate::labels::selects(&self.selector, labels)
    }
}

impl Server {
    /// Whether this server, of a Gateway in `gateway_namespace`, admits
    /// `host` from a VirtualService in `vs_namespace`.
    pub fn admits(&self, gateway_namespace: &str, vs_namespace: &str, host: &Hostname) -> bool {
        self.hosts
            .iter()
            .any(|entry| match ImportedHost::parse(entry) {
                Some(h) => h.imports(gateway_namespace, vs_namespace, host),
                None => super::sidecar::host_matches(entry, host.as_str()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_and_hosts() {
        let labels = BTreeMap::from([("istio".to_string(), "ingressgateway".to_string())]);
        let gw = Gateway {
            selector: labels.clone(),
            ..Default::default()
        };
        assert!(gw.selects(&labels));
        assert!(!gw.selects(&BTreeMap::new()));
        assert!(Gateway::default().selects(&labels), "an empty selector");

        let server = Server {
            hosts: vec!["*.example.com".into(), "shop/api.shop.test".into()],
            ..Default::default()
        };
        let h = Hostname::new;
        assert!(server.admits("gw", "any", &h("www.example.com")));
        assert!(server.admits("gw", "shop", &h("api.shop.test")));
        assert!(!server.admits("gw", "web", &h("api.shop.test")));
        assert!(!server.admits("gw", "any", &h("example.org")));
    }
}

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::host::Hostname;

/// One instance of one port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub service: Hostname,
    /// The service port this endpoint serves, by name.
    pub service_port_name: String,
    /// An IP address, or a DNS name for DNS-resolved services.
    pub address: String,
    pub port: u16,
    pub labels: BTreeMap<String, String>,
    pub locality: Locality,
    pub health: HealthStatus,
    pub service_account: String,
    /// Load-balancing weight; 0 means the default.
    pub weight: u32,
}

impl Endpoint {
    /// True when every label of `selector` is on this endpoint, as a
    /// DestinationRule subset or a workload selector matches.
    pub fn matches(&self, selector: &BTreeMap<String, String>) -> bool {
        crate::labels::selects(selector, &self.labels)
    }
}

/// Where an endpoint runs: `region/zone/subzone`, any part may be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Locality {
    pub region: String,
    pub zone: String,
    pub subzone: String,
}

impl Locality {
    /// Parses Istio's `region/zone/subzone` form.
    pub fn parse(s: &str) -> Locality {
        let mut parts = s.splitn(3, '/');
        Locality {
            region: parts.next().unwrap_or_default().to_string(),
            zone: parts.next().unwrap_or_default().to_string(),
            subzone: parts.next().unwrap_or_default().to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthStatus {
    #[default]
    Healthy,
    Unhealthy,
    Draining,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locality_parse() {
        let l = Locality::parse("us-east1/us-east1-b");
        assert_eq!(l.region, "us-east1");
        assert_eq!(l.zone, "us-east1-b");
        assert_eq!(l.subzone, "");
        assert_eq!(Locality::parse(""), Locality::default());
    }

    #[test]
    fn selector_matching() {
        let ep = Endpoint {
            service: Hostname::new("a"),
            service_port_name: "http".into(),
            address: "10.0.0.1".into(),
            port: 80,
            labels: [
                ("app".to_string(), "a".to_string()),
                ("version".into(), "v1".into()),
            ]
            .into_iter()
            .collect(),
            locality: Locality::default(),
            health: HealthStatus::Healthy,
            service_account: String::new(),
            weight: 0,
        };
        let mut sel = BTreeMap::new();
        assert!(ep.matches(&sel));
        sel.insert("version".to_string(), "v1".to_string());
        assert!(ep.matches(&sel));
        sel.insert("version".to_string(), "v2".to_string());
        assert!(!ep.matches(&sel));
    }
}

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What kind of proxy is asking for configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeType {
    /// An application's sidecar.
    Sidecar,
    /// A standalone gateway.
    Router,
}

impl NodeType {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Sidecar => "sidecar",
            NodeType::Router => "router",
        }
    }
}

impl fmt::Display for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyIdError {
    #[error("node id {0:?} must have 4 parts separated by '~' (type~ip~pod.namespace~namespace.svc.domain)")]
    Parts(String),
    #[error("node id {id:?}: invalid node type {node_type:?} (valid: sidecar, router)")]
    NodeType { id: String, node_type: String },
    #[error("node id {id:?}: {ip:?} is not an IP address")]
    Ip { id: String, ip: String },
    #[error("node id {0:?}: the pod part (pod.namespace) is empty")]
    EmptyId(String),
}

/// A proxy's identity, parsed from Istio's node id
/// `sidecar~10.1.2.3~pod.ns~ns.svc.cluster.local`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyId {
    pub node_type: NodeType,
    pub ip_addresses: Vec<IpAddr>,
    /// `pod.namespace`
    pub id: String,
    /// `namespace.svc.cluster.local`
    pub dns_domain: String,
}

impl ProxyId {
    /// The workload's namespace: the part of the id after the first dot, or
    /// failing that the first label of the DNS domain.
    pub fn namespace(&self) -> &str {
        match self.id.split_once('.') {
            Some((_, ns)) if !ns.is_empty() => ns,
            _ => self.dns_domain.split('.').next().unwrap_or_default(),
        }
    }

    pub fn pod_name(&self) -> &str {
        self.id.split('.').next().unwrap_or_default()
    }

    /// The node id string this identity was parsed from.
    pub fn node_id(&self) -> String {
        let ips: Vec<String> = self.ip_addresses.iter().map(|ip| ip.to_string()).collect();
        format!(
            "{}~{}~{}~{}",
            self.node_type,
            ips.join(","),
            self.id,
            self.dns_domain
        )
    }
}

impl FromStr for ProxyId {
    type Err = ProxyIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('~').collect();
        let [node_type, ip, id, dns_domain] = parts.as_slice() else {
            return Err(ProxyIdError::Parts(s.to_string()));
        };
        let node_type = match *node_type {
            "sidecar" => NodeType::Sidecar,
            "router" => NodeType::Router,
            other => {
                return Err(ProxyIdError::NodeType {
                    id: s.to_string(),
                    node_type: other.to_string(),
                })
            }
        };
        let ip_addresses = ip
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpAddr>().map_err(|_| ProxyIdError::Ip {
                    id: s.to_string(),
                    ip: p.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if id.is_empty() {
            return Err(ProxyIdError::EmptyId(s.to_string()));
        }
        Ok(ProxyId {
            node_type,
            ip_addresses,
            id: id.to_string(),
            dns_domain: dns_domain.to_string(),
        })
    }
}

/// How traffic reaches the proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InterceptionMode {
    /// iptables REDIRECT to the virtual listeners (Kubernetes default).
    #[default]
    Redirect,
    /// iptables TPROXY.
    Tproxy,
    /// No interception: listeners bind the service ports on loopback.
    None,
}

impl InterceptionMode {
    pub fn parse(s: &str) -> Option<InterceptionMode> {
        match s {
            "REDIRECT" => Some(InterceptionMode::Redirect),
            "TPROXY" => Some(InterceptionMode::Tproxy),
            "NONE" => Some(InterceptionMode::None),
            _ => None,
        }
    }
}

/// The node metadata fields the control plane reads, plus every string
/// field as it came, for debugging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyMetadata {
    pub interception_mode: InterceptionMode,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub raw: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_istio_node_id() {
        let p: ProxyId = "sidecar~10.1.2.3~reviews-v1-abc.default~default.svc.cluster.local"
            .parse()
            .expect("valid id");
        assert_eq!(p.node_type, NodeType::Sidecar);
        assert_eq!(
            p.ip_addresses,
            vec!["10.1.2.3".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(p.pod_name(), "reviews-v1-abc");
        assert_eq!(p.namespace(), "default");
        assert_eq!(p.dns_domain, "default.svc.cluster.local");
        assert_eq!(
            p.node_id(),
            "sidecar~10.1.2.3~reviews-v1-abc.default~default.svc.cluster.local"
        );
    }

    #[test]
    fn namespace_falls_back_to_domain() {
        let p: ProxyId = "router~::1~gw~istio-system.svc.cluster.local"
            .parse()
            .expect("valid");
        assert_eq!(p.node_type, NodeType::Router);
        assert_eq!(p.namespace(), "istio-system");
    }

    #[test]
    fn rejects_bad_ids() {
        assert!(matches!(
            "sidecar~1.2.3.4~a".parse::<ProxyId>(),
            Err(ProxyIdError::Parts(_))
        ));
        assert!(matches!(
            "gateway~1.2.3.4~a.b~b.svc".parse::<ProxyId>(),
            Err(ProxyIdError::NodeType { .. })
        ));
        assert!(matches!(
            "sidecar~not-an-ip~a.b~b.svc".parse::<ProxyId>(),
            Err(ProxyIdError::Ip { .. })
        ));
        assert!(matches!(
            "sidecar~1.2.3.4~~b.svc".parse::<ProxyId>(),
            Err(ProxyIdError::EmptyId(_))
        ));
    }
}

use serde::{Deserialize, Serialize};

use crate::config::ConfigKey;
use crate::host::Hostname;

/// A service in the mesh, whichever platform it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub hostname: Hostname,
    pub namespace: String,
    pub ports: Vec<ServicePort>,
    pub resolution: Resolution,
    /// Outside the mesh (a `MESH_EXTERNAL` ServiceEntry).
    pub mesh_external: bool,
    /// Virtual IPs, if any.
    pub addresses: Vec<String>,
    /// The resource this service was built from, for debugging.
    pub origin: ConfigKey,
}

impl Service {
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.port == number)
    }

    pub fn port_by_name(&self, name: &str) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
}

/// How a client finds the instances of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolution {
    /// The control plane sends the endpoints (EDS).
    ClientSideLb,
    /// The proxy resolves the endpoint addresses through DNS.
    DnsLb,
    /// Traffic goes to the address the client asked for.
    Passthrough,
}

/// Application protocol of a port, as Istio names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
    Https,
    Tls,
    Tcp,
    Mongo,
    Redis,
    Mysql,
    Unsupported,
}

impl Protocol {
    /// Parses Istio's protocol names, case-insensitively. Unknown names are
    /// `Unsupported`, which Istio treats as opaque TCP.
    pub fn parse(name: &str) -> Protocol {
        match name.to_ascii_lowercase().as_str() {
            "http" => Protocol::Http,
            "http2" => Protocol::Http2,
            "grpc" | "grpc-web" => Protocol::Grpc,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "tcp" => Protocol::Tcp,
            "mongo" => Protocol::Mongo,
            "redis" => Protocol::Redis,
            "mysql" => Protocol::Mysql,
            _ => Protocol::Unsupported,
        }
    }

    /// Istio's port-naming convention: `http`, `http-web`, `grpc-api`, ...
    pub fn from_port_name(port_name: &str) -> Protocol {
        let prefix = port_name.split('-').next().unwrap_or_default();
        Protocol::parse(prefix)
    }

    /// Protocols routed by the HTTP connection manager.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }

    /// Protocols that need HTTP/2 to the upstream.
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_from_port_name() {
        assert_eq!(Protocol::from_port_name("http"), Protocol::Http);
        assert_eq!(Protocol::from_port_name("http-web"), Protocol::Http);
        assert_eq!(Protocol::from_port_name("GRPC-api"), Protocol::Grpc);
        assert_eq!(Protocol::from_port_name("web"), Protocol::Unsupported);
        assert_eq!(Protocol::from_port_name(""), Protocol::Unsupported);
        assert!(Protocol::Grpc.is_http2());
        assert!(!Protocol::Tcp.is_http());
    }
}

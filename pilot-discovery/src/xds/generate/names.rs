//! Istio's names for Envoy resources, so tools and habits carry over.

use std::fmt;

use mesh_model::Hostname;

pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";

/// Which way traffic flows through a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

/// A cluster name `outbound|9080|v1|reviews.default.svc.cluster.local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterName {
    pub direction: Direction,
    pub port: u16,
    pub subset: String,
    pub host: Hostname,
}

impl ClusterName {
    pub fn outbound(port: u16, subset: &str, host: &Hostname) -> Self {
        ClusterName {
            direction: Direction::Outbound,
            port,
            subset: subset.to_string(),
            host: host.clone(),
        }
    }

    /// The cluster to a local-mode sidecar's own application:
    /// `inbound|9080||`.
    pub fn inbound(port: u16) -> Self {
        ClusterName {
            direction: Direction::Inbound,
            port,
            subset: String::new(),
            host: Hostname::new(""),
        }
    }

    /// Parses a name this module produced; `None` for any other name.
    pub fn parse(name: &str) -> Option<ClusterName> {
        let mut parts = name.splitn(4, '|');
        let direction = match parts.next()? {
            "outbound" => Direction::Outbound,
            "inbound" => Direction::Inbound,
            _ => return None,
        };
        let port = parts.next()?.parse().ok()?;
        let subset = parts.next()?.to_string();
        let host = Hostname::new(parts.next()?);
        Some(ClusterName {
            direction,
            port,
            subset,
            host,
        })
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match self.direction {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        };
        write!(f, "{dir}|{}|{}|{}", self.port, self.subset, self.host)
    }
}

/// `outbound|port|subset|host`, as [`ClusterName`] displays it, written
/// into one exact allocation: route configurations and endpoint pushes make
/// one or more for every service.
pub fn outbound_cluster_name(port: u16, subset: &str, host: &Hostname) -> String {
    let mut digits = [0u8; 5];
    let parts = outbound_cluster_name_parts(decimal(port, &mut digits), subset, host.as_str());
    let mut name = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        name.push_str(p);
    }
    name
}

/// The pieces of `outbound|port|subset|host`, `port` in decimal, for a
/// name written in place inside a larger message.
pub fn outbound_cluster_name_parts<'a>(
    port: &'a str,
    subset: &'a str,
    host: &'a str,
) -> [&'a str; 6] {
    ["outbound|", port, "|", subset, "|", host]
}

/// `port` in decimal, without the formatting machinery.
fn decimal(port: u16, digits: &mut [u8; 5]) -> &str {
    let mut start = digits.len();
    let mut rest = port;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // ASCII digits are always UTF-8.
    std::str::from_utf8(&digits[start..]).unwrap_or_default()
}

/// Route configurations are named by port, as Istio names them for sidecars.
pub fn route_config_name(port: u16) -> String {
    port.to_string()
}

/// A listener bound to `address:port`, named `address_port`.
pub fn listener_name(address: &str, port: u16) -> String {
    format!("{address}_{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_names_are_written_as_cluster_names_display() {
        let host = Hostname::new("reviews.shop.svc.cluster.local");
        for port in [0, 7, 80, 9080, 65535] {
            for subset in ["", "v1"] {
                assert_eq!(
                    outbound_cluster_name(port, subset, &host),
                    ClusterName::outbound(port, subset, &host).to_string()
                );
            }
        }
    }

    #[test]
    fn cluster_names_round_trip() {
        let n = ClusterName::outbound(
            9080,
            "v1",
            &Hostname::new("reviews.default.svc.cluster.local"),
        );
        assert_eq!(
            n.to_string(),
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        );
        assert_eq!(ClusterName::parse(&n.to_string()), Some(n));
        let plain = ClusterName::parse("outbound|80||a.b").expect("parses");
        assert_eq!(plain.subset, "");
        assert_eq!(ClusterName::parse(BLACKHOLE_CLUSTER), None);
        let inbound = ClusterName::inbound(9080);
        assert_eq!(inbound.to_string(), "inbound|9080||");
        assert_eq!(ClusterName::parse("inbound|9080||"), Some(inbound));
        assert_eq!(ClusterName::parse("outbound|x||a"), None);
    }
}

//! The route of a service no VirtualService rules, as a message and written
//! straight to the wire.
//!
//! It is the most common route in a mesh: every such service has one in
//! every route configuration that shows it. Built as prost messages, each
//! carried its own copy of Istio's default retry policy, to be measured,
//! encoded and freed again: most of the cost of a 1,000-service route
//! configuration. Written in place, only the cluster name and the hash
//! policy differ from one to the next; the rest is encoded once.

use std::sync::OnceLock;

use mesh_model::{Hostname, MeshSnapshot};
use prost::Message;
use xds_proto::pb::envoy::config::route::v3::{
    route, route_action::HashPolicy, Route, RouteAction,
};

use super::action::default_action;
use super::matching::prefix_match;
use crate::xds::generate::cluster_policy;
use crate::xds::generate::names::{outbound_cluster_name, outbound_cluster_name_parts};
use crate::xds::wire::{nested_len, put_nested};

// Field numbers, from envoy/config/route/v3/route_components.proto.
/// `Route.route`, the forwarding action.
const ROUTE_ACTION: u32 = 2;
/// `RouteAction.cluster`.
const ACTION_CLUSTER: u32 = 1;
/// `RouteAction.hash_policy`.
const ACTION_HASH_POLICY: u32 = 15;

/// The hash policy of `host`'s default route on `port`: its
/// DestinationRule's consistent hash key, if it has one.
pub fn default_hash_policy(snap: &MeshSnapshot, host: &Hostname, port: u16) -> Vec<HashPolicy> {
    cluster_policy::hash_policy(&cluster_policy::effective(snap, host, "", port))
}

/// The default route of `host` on `port`: its own cluster with Istio's
/// defaults, hashing by `hash_policy`.
pub fn hashing(host: &Hostname, port: u16, hash_policy: Vec<HashPolicy>) -> Route {
    let mut action = default_action(outbound_cluster_name(port, "", host));
    action.hash_policy = hash_policy;
    Route {
        name: "default".to_string(),
        r#match: Some(prefix_match("/")),
        action: Some(route::Action::Route(action)),
        ..Default::default()
    }
}

/// A default route to be written to the wire: decodes to
/// [`hashing`]`(host, port, hash_policy)`.
pub struct EncodedDefaultRoute<'a> {
    pub host: &'a str,
    /// In decimal, as a route configuration is named.
    pub port: &'a str,
    pub hash_policy: &'a [HashPolicy],
}

impl EncodedDefaultRoute<'_> {
    pub fn encoded_len(&self) -> usize {
        constant_parts().route.len() + nested_len(ROUTE_ACTION, self.action_len())
    }

    /// Appends the route's fields (without a key or length of its own).
    pub fn encode_raw(&self, buf: &mut Vec<u8>) {
        let constant = constant_parts();
        // A message's encoding may be split anywhere between fields and
        // the pieces concatenated: the decoder merges them. So the
        // route's constant fields, then its action, whose own constant
        // fields come last.
        buf.extend_from_slice(&constant.route);
        put_nested(buf, ROUTE_ACTION, self.action_len());
        put_nested(buf, ACTION_CLUSTER, self.cluster_len());
        for part in self.cluster_parts() {
            buf.extend_from_slice(part.as_bytes());
        }
        for h in self.hash_policy {
            put_nested(buf, ACTION_HASH_POLICY, h.encoded_len());
            h.encode_raw(buf);
        }
        buf.extend_from_slice(&constant.action);
    }

    fn cluster_parts(&self) -> [&str; 6] {
        outbound_cluster_name_parts(self.port, "", self.host)
    }

    fn cluster_len(&self) -> usize {
        self.cluster_parts().iter().map(|p| p.len()).sum()
    }

    fn action_len(&self) -> usize {
        nested_len(ACTION_CLUSTER, self.cluster_len())
            + self
                .hash_policy
                .iter()
                .map(|h| nested_len(ACTION_HASH_POLICY, h.encoded_len()))
                .sum::<usize>()
            + constant_parts().action.len()
    }
}

/// The fields every default route has alike, encoded once: the route's
/// without its action, and the action's without its cluster and hash
/// policy. Taken from [`hashing`] itself, so the two cannot drift apart.
struct ConstantParts {
    route: Vec<u8>,
    action: Vec<u8>,
}

fn constant_parts() -> &'static ConstantParts {
    static PARTS: OnceLock<ConstantParts> = OnceLock::new();
    PARTS.get_or_init(|| {
        let mut route = hashing(&Hostname::new(""), 0, Vec::new());
        let mut action = match route.action.take() {
            Some(route::Action::Route(a)) => a,
            _ => RouteAction::default(),
        };
        action.cluster_specifier = None;
        action.hash_policy.clear();
        ConstantParts {
            route: route.encode_to_vec(),
            action: action.encode_to_vec(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xds_proto::pb::envoy::config::route::v3::route_action::hash_policy::{
        Header, PolicySpecifier,
    };

    fn header_hash(name: &str) -> HashPolicy {
        HashPolicy {
            policy_specifier: Some(PolicySpecifier::Header(Header {
                header_name: name.to_string(),
                ..Default::default()
            })),
            terminal: false,
        }
    }

    #[test]
    fn the_written_route_decodes_to_the_built_one() {
        let long_host = format!("{}.shop.svc.cluster.local", "x".repeat(200));
        for host in ["reviews.shop.svc.cluster.local", "a", long_host.as_str()] {
            for port in [0u16, 80, 9080, 65535] {
                for hash in [
                    vec![],
                    vec![header_hash("x-user")],
                    vec![header_hash("a"), header_hash("b")],
                ] {
                    let port_name = port.to_string();
                    let written = EncodedDefaultRoute {
                        host,
                        port: &port_name,
                        hash_policy: &hash,
                    };
                    let mut buf = Vec::new();
                    written.encode_raw(&mut buf);
                    assert_eq!(buf.len(), written.encoded_len(), "{host} {port}");
                    let decoded = Route::decode(buf.as_slice()).expect("decodes");
                    assert_eq!(
                        decoded,
                        hashing(&Hostname::new(host), port, hash),
                        "{host} {port}"
                    );
                }
            }
        }
    }
}

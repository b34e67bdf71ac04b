//! Dispatches a request for one resource type to its generator.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::sync::Arc;

use mesh_model::MeshSnapshot;
use xds_proto::protobuf::Any;
use xds_proto::type_url;

use mesh_model::{Hostname, NodeType};

use super::intern::intern;
use super::names::outbound_cluster_name;
use super::proxy::Proxy;
use super::{cds, eds, inbound, lds, rds};

/// One generated resource with the name the proxy knows it by.
#[derive(Debug, Clone)]
pub struct Named {
    /// Shared with every delta stream that records holding the resource.
    pub name: Arc<str>,
    pub resource: Any,
    /// Changes exactly when the encoded resource does; computed once, since
    /// one resource is often sent to many proxies.
    pub digest: u64,
}

impl Named {
    pub fn new(name: &str, resource: Any) -> Self {
        let digest = digest(&resource.value);
        Named {
            name: intern(name),
            resource,
            digest,
        }
    }

    /// The resource's version: a proxy reconnecting to another replica (or
    /// after a restart) is not sent what it already has.
    pub fn version(&self) -> String {
        format!("{:016x}", self.digest)
    }
}

/// A 64-bit digest, eight bytes at a time: stable across processes and
/// builds (unlike std's hasher), and cheap on megabytes of config.
pub fn digest(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    for b in words.remainder() {
        h = (h.rotate_left(23) ^ u64::from(*b)).wrapping_mul(K);
    }
    h ^ (h >> 31)
}

/// Types served as wildcards: the proxy always receives all of them.
pub fn is_wildcard_type(type_url: &str) -> bool {
    matches!(type_url, type_url::CLUSTER | type_url::LISTENER)
}

pub fn is_known_type(t: &str) -> bool {
    matches!(
        t,
        type_url::CLUSTER | type_url::ENDPOINT | type_url::LISTENER | type_url::ROUTE
    )
}

/// The EDS cluster names of `hosts` in `snap`: every port, with and without
/// each subset. An endpoint-only push touches exactly these, so each stream
/// looks up a handful of names instead of scanning its whole subscription.
pub fn endpoint_clusters(snap: &MeshSnapshot, hosts: &BTreeSet<Hostname>) -> Vec<String> {
    let mut out = Vec::new();
    for host in hosts {
        let Some(svc) = snap.service(host) else {
            continue;
        };
        let subsets = snap
            .destination_rule(host)
            .map(|r| r.spec.subsets.as_slice())
            .unwrap_or_default();
        for port in &svc.ports {
            out.push(outbound_cluster_name(port.port, "", host));
            for s in subsets {
                out.push(outbound_cluster_name(port.port, &s.name, host));
            }
        }
    }
    out
}

/// Whether a push, full or of endpoints only, touches type `t` at all.
pub fn type_in_scope(full: bool, t: &str) -> bool {
    full || t == type_url::ENDPOINT
}

/// The resources of `type_url` for `proxy`. `names` restricts EDS and RDS to
/// the resources the proxy subscribed to; wildcard types ignore it.
pub fn generate<N: Borrow<str> + Ord>(
    snap: &MeshSnapshot,
    proxy: &Proxy,
    type_url: &str,
    names: &BTreeSet<N>,
) -> Vec<Named> {
    let mut out = generate_shared(snap, proxy, type_url, names);
    out.extend(generate_own(snap, proxy, type_url));
    out
}

/// What only this proxy gets: the inbound clusters and listeners of its
/// own workload.
pub fn generate_own(snap: &MeshSnapshot, proxy: &Proxy, type_url: &str) -> Vec<Named> {
    if proxy.id.node_type == NodeType::Router {
        return Vec::new();
    }
    match type_url {
        type_url::CLUSTER => inbound::clusters(&inbound::ports(snap, proxy), proxy.is_local_mode())
            .iter()
            .map(|c| Named::new(&c.name, xds_proto::pack(c)))
            .collect(),
        type_url::LISTENER => {
            inbound::listeners(&inbound::ports(snap, proxy), proxy.is_local_mode())
                .iter()
                .map(|l| Named::new(&l.name, xds_proto::pack(l)))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// What every proxy of the same shape (interception mode, namespace,
/// Sidecar) gets alike.
pub fn generate_shared<N: Borrow<str> + Ord>(
    snap: &MeshSnapshot,
    proxy: &Proxy,
    type_url: &str,
    names: &BTreeSet<N>,
) -> Vec<Named> {
    match type_url {
        type_url::CLUSTER => {
            let mut out = Vec::new();
            cds::for_each_cluster(snap, proxy, |c| {
                out.push(Named::new(&c.name, xds_proto::pack(c)))
            });
            out
        }
        type_url::LISTENER => lds::listeners(snap, proxy)
            .iter()
            .map(|l| Named::new(&l.name, xds_proto::pack(l)))
            .collect(),
        type_url::ENDPOINT => names
            .iter()
            .map(|n| {
                let n = n.borrow();
                Named::new(n, xds_proto::pack(&eds::load_assignment(snap, n)))
            })
            .collect(),
        type_url::ROUTE => names
            .iter()
            .map(|n| {
                let n = n.borrow();
                Named::new(
                    n,
                    Any {
                        type_url: type_url::ROUTE.to_string(),
                        value: rds::encoded_route_configuration(snap, proxy, n),
                    },
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_content() {
        let any = |value: Vec<u8>| Any {
            type_url: "t".into(),
            value,
        };
        let a = Named::new("x", any(vec![1, 2, 3]));
        let b = Named::new("x", any(vec![1, 2, 3]));
        assert_eq!(a.version(), b.version());
        let c = Named::new("x", any(vec![1, 2, 3, 4]));
        assert_ne!(a.version(), c.version());
        assert_eq!(a.version().len(), 16);
    }

    #[test]
    fn endpoint_scope_names_every_port_and_subset_of_changed_services() {
        let snap = crate::registry::tests::snapshot_of(
            r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: http2, protocol: HTTP2}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a, namespace: default}
spec:
  host: a
  subsets: [{name: v1, labels: {version: v1}}]
"#,
        );
        let hosts = BTreeSet::from([
            Hostname::new("a.default.svc.cluster.local"),
            Hostname::new("gone.default.svc.cluster.local"),
        ]);
        assert_eq!(
            endpoint_clusters(&snap, &hosts),
            [
                "outbound|80||a.default.svc.cluster.local",
                "outbound|80|v1|a.default.svc.cluster.local",
                "outbound|81||a.default.svc.cluster.local",
                "outbound|81|v1|a.default.svc.cluster.local",
            ]
        );
        assert!(!type_in_scope(false, type_url::LISTENER));
        assert!(type_in_scope(false, type_url::ENDPOINT));
        assert!(type_in_scope(true, type_url::LISTENER));
    }
}

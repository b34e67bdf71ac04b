//! Dispatches a request for one resource type to its generator.

use std::collections::BTreeSet;

use mesh_model::MeshSnapshot;
use xds_proto::protobuf::Any;
use xds_proto::type_url;

use super::names::ClusterName;
use super::proxy::Proxy;
use super::{cds, eds, lds, rds};
use crate::push::PushScope;

/// One generated resource with the name the proxy knows it by.
#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    pub resource: Any,
    /// Changes exactly when the encoded resource does; computed once, since
    /// one resource is often sent to many proxies.
    pub digest: u64,
}

impl Named {
    pub fn new(name: String, resource: Any) -> Self {
        let digest = fnv1a(&resource.value);
        Named {
            name,
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

/// FNV-1a: stable across processes and builds, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
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

/// Whether a push of `scope` touches resource `name` of type `t`.
pub fn in_scope(scope: &PushScope, t: &str, name: &str) -> bool {
    match scope {
        PushScope::Full => true,
        PushScope::Endpoints(hosts) => {
            t == type_url::ENDPOINT
                && ClusterName::parse(name).is_some_and(|c| hosts.contains(&c.host))
        }
    }
}

/// Whether a push of `scope` touches type `t` at all.
pub fn type_in_scope(scope: &PushScope, t: &str) -> bool {
    scope.is_full() || t == type_url::ENDPOINT
}

/// The resources of `type_url` for `proxy`. `names` restricts EDS and RDS to
/// the resources the proxy subscribed to; wildcard types ignore it.
pub fn generate(
    snap: &MeshSnapshot,
    proxy: &Proxy,
    type_url: &str,
    names: &BTreeSet<String>,
) -> Vec<Named> {
    match type_url {
        type_url::CLUSTER => cds::clusters(snap, proxy)
            .iter()
            .map(|c| Named::new(c.name.clone(), xds_proto::pack(c)))
            .collect(),
        type_url::LISTENER => lds::listeners(snap, proxy)
            .iter()
            .map(|l| Named::new(l.name.clone(), xds_proto::pack(l)))
            .collect(),
        type_url::ENDPOINT => names
            .iter()
            .map(|n| Named::new(n.clone(), xds_proto::pack(&eds::load_assignment(snap, n))))
            .collect(),
        type_url::ROUTE => names
            .iter()
            .map(|n| {
                Named::new(
                    n.clone(),
                    xds_proto::pack(&rds::route_configuration(snap, proxy, n)),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_model::Hostname;

    #[test]
    fn versions_follow_content() {
        let any = |value: Vec<u8>| Any {
            type_url: "t".into(),
            value,
        };
        let a = Named::new("x".into(), any(vec![1, 2, 3]));
        let b = Named::new("x".into(), any(vec![1, 2, 3]));
        assert_eq!(a.version(), b.version());
        let c = Named::new("x".into(), any(vec![1, 2, 3, 4]));
        assert_ne!(a.version(), c.version());
        assert_eq!(a.version().len(), 16);
    }

    #[test]
    fn endpoint_scope_selects_clusters_of_changed_services() {
        let scope = PushScope::Endpoints(BTreeSet::from([Hostname::new(
            "a.default.svc.cluster.local",
        )]));
        assert!(in_scope(
            &scope,
            type_url::ENDPOINT,
            "outbound|80|v1|a.default.svc.cluster.local"
        ));
        assert!(!in_scope(
            &scope,
            type_url::ENDPOINT,
            "outbound|80||b.default.svc.cluster.local"
        ));
        assert!(!in_scope(&scope, type_url::CLUSTER, "anything"));
        assert!(!type_in_scope(&scope, type_url::LISTENER));
        assert!(in_scope(&PushScope::Full, type_url::LISTENER, "x"));
    }
}

//! Dispatches a request for one resource type to its generator.

use std::borrow::Borrow;
use std::collections::BTreeSet;

use mesh_model::{Hostname, MeshSnapshot, NodeType};
use xds_proto::protobuf::Any;
use xds_proto::type_url;

use super::named::Named;
use super::names::outbound_cluster_name;
use super::proxy::Proxy;
use super::{cds, eds, inbound, lds, rds};

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
    fn endpoint_scope_names_every_port_and_subset_of_changed_services() {
        let snap = crate::snapshot::testing::snapshot_of(
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

    use xds_proto::pb::envoy::config::cluster::v3::Cluster;
    use xds_proto::pb::envoy::config::listener::v3::Listener;
    use xds_proto::pb::envoy::config::route::v3::RouteConfiguration;

    use crate::snapshot::testing::snapshot_of;
    use crate::xds::generate::proxy::tests::local_proxy;

    const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: shop}
spec:
  hosts: [a.shop.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: web}
spec:
  hosts: [b.web.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 5432, name: db, protocol: TCP}]
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"#;

    fn proxy(ns: &str) -> Proxy {
        local_proxy("127.0.0.1", ns)
    }

    fn names<T: prost::Message + Default>(
        snap: &mesh_model::MeshSnapshot,
        p: &Proxy,
        t: &str,
        name: fn(&T) -> String,
    ) -> Vec<String> {
        generate(snap, p, t, &BTreeSet::from(["80".to_string()]))
            .iter()
            .map(|n| name(&T::decode(n.resource.value.as_slice()).expect("decodes")))
            .collect()
    }

    #[test]
    fn a_sidecar_scopes_what_its_proxies_receive() {
        let snap = snapshot_of(MESH);
        let clusters = |ns| {
            names(&snap, &proxy(ns), type_url::CLUSTER, |c: &Cluster| {
                c.name.clone()
            })
        };
        assert_eq!(
            clusters("shop"),
            [
                "outbound|80||a.shop.svc.cluster.local",
                "BlackHoleCluster",
                "PassthroughCluster"
            ]
        );
        assert_eq!(clusters("web").len(), 5, "no Sidecar in web: everything");

        let listeners = |ns| {
            names(&snap, &proxy(ns), type_url::LISTENER, |l: &Listener| {
                l.name.clone()
            })
        };
        assert_eq!(listeners("shop"), ["127.0.0.1_80"]);
        assert_eq!(listeners("web"), ["127.0.0.1_80", "127.0.0.1_5432"]);

        let vhosts = |ns| {
            names(
                &snap,
                &proxy(ns),
                type_url::ROUTE,
                |r: &RouteConfiguration| {
                    let v: Vec<&str> = r.virtual_hosts.iter().map(|v| v.name.as_str()).collect();
                    v.join(",")
                },
            )
        };
        assert_eq!(vhosts("shop"), ["a.shop.svc.cluster.local:80,block_all"]);
        assert_eq!(
            vhosts("web"),
            ["a.shop.svc.cluster.local:80,b.web.svc.cluster.local:80,allow_any"]
        );
    }
}

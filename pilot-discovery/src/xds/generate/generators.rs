//! The generator table: one row per xDS type the server serves, in the
//! order a full push sends them, so that Envoy sees a cluster before its
//! endpoints and a listener before its routes (Envoy's "make before break"
//! sequencing for ADS). Everything that handles types by type URL (the
//! protocols, the push context's caches, the debug pages, the metrics)
//! reads this table; a new type is its generator file and one row here.

use std::borrow::Borrow;
use std::collections::BTreeSet;

use mesh_model::MeshSnapshot;

use super::generator::Generator;
use super::named::Named;
use super::proxy::Proxy;
use super::{cds, eds, lds, rds};

pub const GENERATORS: [Generator; 4] = [
    cds::GENERATOR,
    eds::GENERATOR,
    lds::GENERATOR,
    rds::GENERATOR,
];

/// The row of `type_url` and its index in [`GENERATORS`]; `None` for a type
/// this server does not serve.
pub fn generator(type_url: &str) -> Option<(usize, &'static Generator)> {
    GENERATORS
        .iter()
        .enumerate()
        .find(|(_, g)| g.type_url == type_url)
}

/// The short name of a type (`cds`), for logs and metric labels;
/// `unknown` for one this server does not serve.
pub fn short_name(type_url: &str) -> &'static str {
    generator(type_url).map_or("unknown", |(_, g)| g.short_name)
}

/// What every proxy of the same shape gets alike, of `names` for named
/// types.
pub fn generate_shared<N: Borrow<str> + Ord>(
    g: &Generator,
    snap: &MeshSnapshot,
    proxy: &Proxy,
    names: &BTreeSet<N>,
) -> Vec<Named> {
    (g.shared)(snap, proxy, &mut names.iter().map(|n| n.borrow()))
}

/// The resources of `type_url` for `proxy`. `names` restricts named types
/// to the resources the proxy subscribed to; wildcard types ignore it.
pub fn generate<N: Borrow<str> + Ord>(
    snap: &MeshSnapshot,
    proxy: &Proxy,
    type_url: &str,
    names: &BTreeSet<N>,
) -> Vec<Named> {
    let Some((_, g)) = generator(type_url) else {
        return Vec::new();
    };
    let mut out = generate_shared(g, snap, proxy, names);
    out.extend((g.own)(snap, proxy));
    out
}

#[cfg(test)]
mod tests {
    use mesh_model::Hostname;
    use xds_proto::pb::envoy::config::cluster::v3::Cluster;
    use xds_proto::pb::envoy::config::listener::v3::Listener;
    use xds_proto::pb::envoy::config::route::v3::RouteConfiguration;
    use xds_proto::type_url;

    use super::*;
    use crate::snapshot::testing::snapshot_of;
    use crate::xds::generate::proxy::tests::local_proxy;

    #[test]
    fn endpoint_scope_names_every_port_and_subset_of_changed_services() {
        let snap = snapshot_of(
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
            eds::endpoint_clusters(&snap, &hosts),
            [
                "outbound|80||a.default.svc.cluster.local",
                "outbound|80|v1|a.default.svc.cluster.local",
                "outbound|81||a.default.svc.cluster.local",
                "outbound|81|v1|a.default.svc.cluster.local",
            ]
        );
        // Only EDS rides an endpoint-only push.
        let in_endpoint_push =
            |t: &str| generator(t).is_some_and(|(_, g)| g.endpoint_push.is_some());
        assert!(!in_endpoint_push(type_url::LISTENER));
        assert!(in_endpoint_push(type_url::ENDPOINT));
    }

    #[test]
    fn the_table_sends_clusters_before_endpoints_before_listeners_before_routes() {
        let order: Vec<&str> = GENERATORS.iter().map(|g| g.type_url).collect();
        assert_eq!(
            order,
            [
                type_url::CLUSTER,
                type_url::ENDPOINT,
                type_url::LISTENER,
                type_url::ROUTE
            ]
        );
        let short: Vec<&str> = GENERATORS.iter().map(|g| g.short_name).collect();
        assert_eq!(short, ["cds", "eds", "lds", "rds"]);
        assert_eq!(short_name(type_url::ENDPOINT), "eds");
        assert_eq!(short_name("type.googleapis.com/nope"), "unknown");
        assert!(generator("type.googleapis.com/nope").is_none());
    }

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

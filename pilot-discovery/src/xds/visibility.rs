//! What one proxy sees of the mesh: the services its Sidecar resource
//! imports, and what happens to traffic for everything else.

use mesh_model::istio::{OutboundMode, Sidecar};
use mesh_model::{Config, ConfigKey, ConfigKind, MeshSnapshot, NodeType, Service};

use super::proxy::Proxy;

/// A proxy's view; `Copy` so generators pass it around freely.
#[derive(Debug, Clone, Copy)]
pub struct Visibility<'a> {
    sidecar: Option<&'a Config<Sidecar>>,
}

impl<'a> Visibility<'a> {
    /// The view of `proxy`: scoped by the Sidecar that applies to it, or
    /// the whole mesh. Gateways are never scoped by a Sidecar, as in Istio.
    pub fn of(snap: &'a MeshSnapshot, proxy: &Proxy) -> Visibility<'a> {
        let sidecar = match proxy.id.node_type {
            NodeType::Sidecar => snap
                .sidecar_for(proxy.namespace(), proxy.labels(snap))
                .map(AsRef::as_ref),
            NodeType::Router => None,
        };
        Visibility { sidecar }
    }

    pub fn sees(&self, svc: &Service) -> bool {
        self.sidecar.is_none_or(|s| {
            s.spec
                .imports(&s.meta.namespace, &svc.namespace, &svc.hostname)
        })
    }

    pub fn outbound_mode(&self) -> OutboundMode {
        self.sidecar
            .map(|s| s.spec.outbound_mode())
            .unwrap_or_default()
    }

    /// Identifies the view for caching: proxies under the same Sidecar (or
    /// under none) get the same resources.
    pub fn key(&self) -> Option<ConfigKey> {
        self.sidecar.map(|s| s.key(ConfigKind::Sidecar))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use xds_proto::pb::envoy::config::cluster::v3::Cluster;
    use xds_proto::pb::envoy::config::listener::v3::Listener;
    use xds_proto::pb::envoy::config::route::v3::RouteConfiguration;
    use xds_proto::type_url;

    use crate::registry::tests::snapshot_of;
    use crate::xds::generate::generate;
    use crate::xds::proxy::tests::local_proxy;
    use crate::xds::proxy::Proxy;

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

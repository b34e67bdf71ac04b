//! Builds the platform-independent snapshot from the resources of all sources.

mod kube;
mod serviceentry;

use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_model::istio::{ServiceEntry, WorkloadEntry};
use mesh_model::{Config, ConfigKey, Hostname, MeshSnapshot};

use crate::configdir::Resource;

/// Builds one immutable snapshot from every resource in force.
pub fn build_snapshot(
    version: u64,
    domain: &str,
    resources: &BTreeMap<ConfigKey, Resource>,
) -> MeshSnapshot {
    let mut snap = MeshSnapshot {
        version,
        domain: domain.to_string(),
        ..Default::default()
    };
    let mut workload_entries = WorkloadIndex::default();
    let mut slices = Vec::new();
    for r in resources.values() {
        match r {
            Resource::WorkloadEntry(we) => workload_entries.add(we),
            Resource::EndpointSlice(s) => slices.push(s.as_ref()),
            _ => {}
        }
    }
    for r in resources.values() {
        match r {
            Resource::ServiceEntry(se) => {
                let candidates = workload_entries.candidates(se);
                for (svc, eps) in serviceentry::convert(se, candidates, domain) {
                    insert_service(&mut snap, svc, eps);
                }
            }
            Resource::KubeService(ks) => {
                if let Some((svc, eps)) = kube::convert_service(ks, domain) {
                    insert_service(&mut snap, svc, eps);
                }
            }
            Resource::VirtualService(vs) => snap.virtual_services.push(vs.clone()),
            Resource::DestinationRule(dr) => {
                let host = Hostname::resolve(&dr.spec.host, &dr.meta.namespace, domain);
                if let Some(existing) = snap.destination_rules.get(&host) {
                    tracing::warn!(
                        host = %host,
                        kept = %existing.key(mesh_model::ConfigKind::DestinationRule),
                        ignored = %dr.key(mesh_model::ConfigKind::DestinationRule),
                        "two DestinationRules for one host; the first is used"
                    );
                    continue;
                }
                snap.destination_rules.insert(host, dr.clone());
            }
            Resource::WorkloadEntry(_) | Resource::EndpointSlice(_) => {}
        }
    }
    for slice in slices {
        for ep in kube::convert_slice(slice, &snap.services, domain) {
            snap.endpoints
                .entry(ep.service.clone())
                .or_default()
                .push(ep);
        }
    }
    for eps in snap.endpoints.values_mut() {
        eps.sort_by(|a, b| (&a.address, a.port).cmp(&(&b.address, b.port)));
    }
    snap
}

fn insert_service(
    snap: &mut MeshSnapshot,
    svc: mesh_model::Service,
    endpoints: Vec<mesh_model::Endpoint>,
) {
    if let Some(existing) = snap.services.get(&svc.hostname) {
        tracing::warn!(
            host = %svc.hostname,
            kept = %existing.origin,
            ignored = %svc.origin,
            "two resources define one hostname; the first is used"
        );
        return;
    }
    snap.endpoints
        .entry(svc.hostname.clone())
        .or_default()
        .extend(endpoints);
    snap.services.insert(svc.hostname.clone(), Arc::new(svc));
}

/// WorkloadEntries by namespace, and by namespace and label, so each
/// ServiceEntry looks only at entries that can match its selector instead of
/// at every entry in the mesh.
#[derive(Default)]
struct WorkloadIndex<'a> {
    by_namespace: BTreeMap<&'a str, Vec<&'a Config<WorkloadEntry>>>,
    by_label: BTreeMap<(&'a str, &'a str, &'a str), Vec<&'a Config<WorkloadEntry>>>,
}

impl<'a> WorkloadIndex<'a> {
    fn add(&mut self, we: &'a Config<WorkloadEntry>) {
        let ns = we.meta.namespace.as_str();
        self.by_namespace.entry(ns).or_default().push(we);
        for (k, v) in &we.spec.labels {
            self.by_label
                .entry((ns, k.as_str(), v.as_str()))
                .or_default()
                .push(we);
        }
    }

    /// A superset of the entries `se` selects; `convert` applies the whole
    /// selector.
    fn candidates<'s>(&'s self, se: &'s Config<ServiceEntry>) -> &'s [&'a Config<WorkloadEntry>] {
        let ns = se.meta.namespace.as_str();
        let first_label = se
            .spec
            .workload_selector
            .as_ref()
            .and_then(|s| s.labels.iter().next());
        let found = match first_label {
            Some((k, v)) => self.by_label.get(&(ns, k.as_str(), v.as_str())),
            None => self.by_namespace.get(ns),
        };
        found.map(Vec::as_slice).unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::configdir::parse_file;
    use mesh_model::{Protocol, Resolution};
    use std::path::Path;

    pub(crate) fn snapshot_of(yaml: &str) -> MeshSnapshot {
        let parsed = parse_file(Path::new("t.yaml"), yaml).expect("parses");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let map = parsed.resources.into_iter().map(|r| (r.key(), r)).collect();
        build_snapshot(1, "cluster.local", &map)
    }

    #[test]
    fn service_entry_with_workload_entries() {
        let snap = snapshot_of(
            r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1}
spec:
  address: 127.0.0.1
  ports: {http: 19081}
  labels: {app: reviews, version: v1}
  locality: us-east/zone-a
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other, namespace: elsewhere}
spec:
  address: 127.0.0.2
  labels: {app: reviews}
"#,
        );
        let host = Hostname::new("reviews.default.svc.cluster.local");
        let svc = snap.service(&host).expect("service");
        assert_eq!(svc.resolution, Resolution::ClientSideLb);
        assert!(!svc.mesh_external);
        assert_eq!(svc.ports[0].protocol, Protocol::Http);
        let eps = snap.endpoints(&host);
        assert_eq!(
            eps.len(),
            1,
            "only the entry in the same namespace is selected"
        );
        assert_eq!(eps[0].port, 19081);
        assert_eq!(eps[0].labels.get("version").map(String::as_str), Some("v1"));
        assert_eq!(eps[0].locality.zone, "zone-a");
    }

    #[test]
    fn kubernetes_service_and_slice() {
        let snap = snapshot_of(
            r#"
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec:
  ports:
  - {name: http-api, port: 9080, targetPort: 8080}
  - {name: metrics, port: 9090, appProtocol: http}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ratings-abc, namespace: shop, labels: {kubernetes.io/service-name: ratings}}
addressType: IPv4
endpoints:
- addresses: [10.0.0.1]
  conditions: {ready: true}
  zone: z1
- addresses: [10.0.0.2]
  conditions: {ready: false}
ports: [{name: http-api, port: 8080}]
"#,
        );
        let host = Hostname::new("ratings.shop.svc.cluster.local");
        let svc = snap.service(&host).expect("service");
        assert_eq!(svc.ports.len(), 2);
        assert_eq!(svc.ports[1].protocol, Protocol::Http, "appProtocol wins");
        let eps = snap.endpoints(&host);
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].port, 8080);
        assert_eq!(eps[0].locality.zone, "z1");
        assert_eq!(eps[1].health, mesh_model::HealthStatus::Unhealthy);
    }
}

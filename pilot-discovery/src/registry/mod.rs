//! Builds the platform-independent snapshot from the resources of all sources.

mod conversions;
mod destination_rules;
pub mod kube;
mod ports;
mod serviceentry;
mod services;
mod virtual_services;
mod workload_index;

use std::sync::Arc;

use mesh_model::MeshSnapshot;

use crate::resource::{Resource, ResourceMap};
use mesh_model::IstioConfig;
use workload_index::WorkloadIndex;

pub use conversions::Conversions;

/// Builds one immutable snapshot from every resource in force, source by
/// source. A key held by two sources is read from the first that holds it.
/// `previous`, the snapshot this one replaces, holds the last good version
/// of a resource that only a look at the others rejects.
pub fn build_snapshot(
    version: u64,
    domain: &str,
    sources: &[&ResourceMap],
    previous: Option<&MeshSnapshot>,
) -> MeshSnapshot {
    build_snapshot_with(
        version,
        domain,
        sources,
        previous,
        &mut Conversions::default(),
    )
}

/// [`build_snapshot`], reusing what the last build that used `conversions`
/// converted wherever its inputs are unchanged. The result is the same.
pub fn build_snapshot_with(
    version: u64,
    domain: &str,
    sources: &[&ResourceMap],
    previous: Option<&MeshSnapshot>,
    conversions: &mut Conversions,
) -> MeshSnapshot {
    let mut snap = MeshSnapshot {
        version,
        domain: domain.to_string(),
        ..Default::default()
    };
    let resources = || {
        sources.iter().enumerate().flat_map(move |(i, map)| {
            map.iter()
                .filter(move |(k, _)| !sources[..i].iter().any(|m| m.contains_key(*k)))
                .map(|(_, r)| r)
        })
    };
    let mut workload_entries = WorkloadIndex::default();
    let mut workloads = kube::WorkloadLookup::default();
    let mut slices = Vec::new();
    let mut kube_endpoints = Vec::new();
    for r in resources() {
        match r {
            Resource::Istio(IstioConfig::WorkloadEntry(we)) => workload_entries.add(we),
            Resource::EndpointSlice(s) => slices.push(s.as_ref()),
            Resource::KubeEndpoints(e) => kube_endpoints.push(e.as_ref()),
            Resource::Pod(p) => {
                workloads.add_pod(p);
                snap.pod_labels
                    .insert(p.proxy_key(), Arc::new(p.labels.clone()));
            }
            Resource::Node(n) => workloads.add_node(n),
            _ => {}
        }
    }
    // Services and rules are combined oldest first, as Istio combines them.
    conversions.begin(domain, &workload_entries);
    let mut defined = Vec::new();
    let mut virtual_services = Vec::new();
    let mut destination_rules = Vec::new();
    for r in resources() {
        match r {
            Resource::Istio(IstioConfig::ServiceEntry(se)) => {
                let precedence = owned(se.meta.precedence());
                for (svc, eps) in conversions.convert(se, &workload_entries) {
                    defined.push((precedence.clone(), svc.clone(), eps.clone()));
                }
            }
            Resource::KubeService(ks) => {
                if let Some((svc, eps)) = kube::convert_service(ks, domain) {
                    let m = &ks.metadata;
                    let created = m.creation_timestamp.as_ref().map(|t| t.0.to_string());
                    let precedence = owned((
                        created.as_deref(),
                        m.name.as_deref().unwrap_or_default(),
                        m.namespace.as_deref().unwrap_or_default(),
                    ));
                    defined.push((precedence, Arc::new(svc), Arc::new(eps)));
                }
            }
            Resource::Istio(IstioConfig::VirtualService(vs)) => virtual_services.push(vs.clone()),
            Resource::Istio(IstioConfig::Sidecar(sc)) => snap.sidecars.push(sc.clone()),
            Resource::Istio(IstioConfig::Gateway(gw)) => snap.gateways.push(gw.clone()),
            Resource::Istio(IstioConfig::DestinationRule(dr)) => destination_rules.push(dr.clone()),
            Resource::Istio(IstioConfig::WorkloadEntry(_))
            | Resource::EndpointSlice(_)
            | Resource::KubeEndpoints(_)
            | Resource::Pod(_)
            | Resource::Node(_)
            | Resource::Namespace(_) => {}
        }
    }
    conversions.finish();
    let mut problems = Vec::new();
    defined.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, svc, eps) in defined {
        services::insert(&mut snap, svc, eps, &mut problems);
    }
    snap.destination_rules = destination_rules::by_host(destination_rules, domain, &mut problems);
    snap.virtual_services = virtual_services::in_force(
        virtual_services,
        &snap.destination_rules,
        domain,
        previous,
        &mut problems,
    );
    ports::report_shared_tcp_ports(&snap, &mut problems);
    problems.sort();
    problems.dedup();
    snap.problems = problems;
    let converted = slices
        .into_iter()
        .flat_map(|s| kube::convert_slice(s, &snap.services, &workloads, domain))
        .chain(
            kube_endpoints
                .into_iter()
                .flat_map(|e| kube::convert_endpoints(e, &snap.services, &workloads, domain)),
        )
        .collect::<Vec<_>>();
    for ep in converted {
        let eps = snap.endpoints.entry(ep.service.clone()).or_default();
        Arc::make_mut(eps).push(ep);
    }
    // Lists taken whole from a ServiceEntry's conversion are sorted already;
    // those of Kubernetes Services, and those merged or added to here, may
    // need it.
    for eps in snap.endpoints.values_mut() {
        if !conversions::endpoints_sorted(eps) {
            conversions::sort_endpoints(Arc::make_mut(eps).as_mut_slice());
        }
    }
    snap
}

/// A [`mesh_model::ConfigMeta::precedence`] key that outlives its
/// resource, so services from every source sort together in Istio's order.
fn owned(
    (created, name, namespace): (Option<&str>, &str, &str),
) -> (Option<String>, String, String) {
    (
        created.map(str::to_string),
        name.to_string(),
        namespace.to_string(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::configdir::parse_file;
    use mesh_model::{Hostname, Protocol, Resolution};
    use std::path::Path;

    pub(crate) fn snapshot_of(yaml: &str) -> MeshSnapshot {
        let parsed = parse_file(Path::new("t.yaml"), yaml).expect("parses");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let map = parsed.resources.into_iter().map(|r| (r.key(), r)).collect();
        build_snapshot(1, "cluster.local", &[&map], None)
    }

    /// Service `a` (a STATIC ServiceEntry in `default`, HTTP on port 80)
    /// with one endpoint, written as `endpoint`, a YAML flow mapping.
    pub(crate) fn one_service(endpoint: &str) -> MeshSnapshot {
        snapshot_of(&format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: a, namespace: default}}\n\
             spec:\n  hosts: [a.default.svc.cluster.local]\n  resolution: STATIC\n\
             \x20 ports: [{{number: 80, name: http, protocol: HTTP}}]\n\
             \x20 endpoints: [{endpoint}]\n"
        ))
    }

    /// The shipped examples are what operators copy: none of them may
    /// carry a conflict or a dangling reference.
    #[test]
    fn the_examples_have_no_problems() {
        for dir in ["mesh", "traffic"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples")
                .join(dir);
            let mut folder = crate::configdir::ConfigFolder::new(&path);
            let reload = folder.reload().expect("example folder");
            assert!(reload.errors.is_empty(), "{dir}: {:?}", reload.errors);
            let snap = build_snapshot(1, "cluster.local", &[folder.resources()], None);
            assert!(!snap.virtual_services.is_empty(), "{dir} has routing rules");
            assert!(snap.problems.is_empty(), "{dir}: {:?}", snap.problems);
        }
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
    fn dns_entries_resolve_their_endpoints_or_their_host() {
        let snap = snapshot_of(
            r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com, www.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: https, protocol: HTTPS, targetPort: 8443}, {number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: named}
spec:
  hosts: [db.example.com]
  resolution: DNS
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: db-1.example.com}, {address: db-2.example.com, ports: {tcp: 6432}}]
"#,
        );
        let eps = |h: &str| -> Vec<(String, u16)> {
            snap.endpoints(&Hostname::new(h))
                .iter()
                .map(|e| (e.address.clone(), e.port))
                .collect()
        };
        let api = snap
            .service(&Hostname::new("api.example.com"))
            .expect("service");
        assert_eq!(api.resolution, Resolution::DnsLb);
        assert!(api.mesh_external);
        assert_eq!(
            eps("api.example.com"),
            [
                ("api.example.com".to_string(), 80),
                ("api.example.com".to_string(), 8443)
            ],
            "each host resolves itself, on the target port"
        );
        assert_eq!(eps("www.example.com")[0].0, "www.example.com");
        assert_eq!(
            eps("db.example.com"),
            [
                ("db-1.example.com".to_string(), 5432),
                ("db-2.example.com".to_string(), 6432)
            ]
        );
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

    const SHOP: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Node
metadata:
  name: node-a
  labels: {topology.kubernetes.io/region: eu-west, topology.kubernetes.io/zone: eu-west-1a}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1-abc, namespace: shop, labels: {app: reviews, version: v1}}
spec:
  serviceAccountName: bookinfo-reviews
  nodeName: node-a
  containers: [{name: app, image: reviews}]
status: {podIP: 10.1.0.7}
"#;

    #[test]
    fn core_endpoints_carry_their_pods_labels_account_and_node_locality() {
        let snap = snapshot_of(&format!(
            "{SHOP}---\n{}",
            r#"
apiVersion: v1
kind: Endpoints
metadata: {name: reviews, namespace: shop}
subsets:
- addresses:
  - ip: 10.1.0.7
    targetRef: {kind: Pod, name: reviews-v1-abc, namespace: shop}
  - ip: 10.1.0.9
  notReadyAddresses:
  - ip: 10.1.0.8
  ports: [{name: http, port: 9080}, {name: other, port: 1}]
"#
        ));
        let host = Hostname::new("reviews.shop.svc.cluster.local");
        let eps = snap.endpoints(&host);
        let found: Vec<(&str, mesh_model::HealthStatus, Option<&str>, &str, &str)> = eps
            .iter()
            .map(|e| {
                (
                    e.address.as_str(),
                    e.health,
                    e.labels.get("version").map(String::as_str),
                    e.service_account.as_str(),
                    e.locality.zone.as_str(),
                )
            })
            .collect();
        use mesh_model::HealthStatus::{Healthy, Unhealthy};
        assert_eq!(
            found,
            vec![
                (
                    "10.1.0.7",
                    Healthy,
                    Some("v1"),
                    "bookinfo-reviews",
                    "eu-west-1a"
                ),
                ("10.1.0.8", Unhealthy, None, "", ""),
                ("10.1.0.9", Healthy, None, "", ""),
            ],
            "the port the service does not declare is dropped"
        );
        assert_eq!(eps[0].locality.region, "eu-west");
    }

    // An EndpointSlice as a Kubernetes 1.21+ API server serves it (taken from
    // `kubectl get endpointslice -o json`, trimmed): the pod is found by IP
    // when the target reference names no pod the registry knows.
    #[test]
    fn endpoint_slices_from_the_api_find_pods_by_reference_or_ip() {
        let slice_json = r#"{
          "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
          "metadata": {"name": "reviews-x7k2p", "namespace": "shop", "generateName": "reviews-",
            "labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                       "kubernetes.io/service-name": "reviews"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "reviews", "uid": "1b7f", "controller": true, "blockOwnerDeletion": true}],
            "resourceVersion": "1871", "uid": "a3c1"},
          "addressType": "IPv4",
          "endpoints": [
            {"addresses": ["10.1.0.7"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "nodeName": "node-a", "targetRef": {"kind": "Pod", "name": "renamed", "namespace": "shop", "uid": "c2"}, "zone": "ignored-when-node-known"},
            {"addresses": ["10.1.0.10"], "conditions": {"ready": false, "serving": true, "terminating": true}, "zone": "z9"}
          ],
          "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}]
        }"#;
        let mut resources: ResourceMap = parse_file(Path::new("shop.yaml"), SHOP)
            .expect("parses")
            .resources
            .into_iter()
            .map(|r| (r.key(), r))
            .collect();
        let slice = parse_file(Path::new("slice.json"), slice_json).expect("parses");
        assert!(slice.errors.is_empty(), "{:?}", slice.errors);
        resources.extend(slice.resources.into_iter().map(|r| (r.key(), r)));
        let snap = build_snapshot(1, "cluster.local", &[&resources], None);
        let eps = snap.endpoints(&Hostname::new("reviews.shop.svc.cluster.local"));
        assert_eq!(eps.len(), 2);
        let by_ip = |ip: &str| eps.iter().find(|e| e.address == ip).expect("endpoint");
        let known = by_ip("10.1.0.7");
        assert_eq!(known.labels.get("version").map(String::as_str), Some("v1"));
        assert_eq!(known.locality.zone, "eu-west-1a");
        let terminating = by_ip("10.1.0.10");
        assert_eq!(terminating.health, mesh_model::HealthStatus::Draining);
        assert_eq!(terminating.locality.zone, "z9");
    }

    #[test]
    fn the_first_source_wins_a_key_both_hold() {
        let parse = |yaml: &str| -> ResourceMap {
            parse_file(Path::new("t.yaml"), yaml)
                .expect("parses")
                .resources
                .into_iter()
                .map(|r| (r.key(), r))
                .collect()
        };
        let first = parse("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{name: http, port: 80}]}\n");
        let second = parse("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{name: http, port: 81}]}\n");
        let snap = build_snapshot(1, "cluster.local", &[&first, &second], None);
        let svc = snap
            .service(&Hostname::new("a.default.svc.cluster.local"))
            .expect("service");
        assert_eq!(svc.ports[0].port, 80);
    }

    #[test]
    fn headless_and_external_name_services_as_istio_treats_them() {
        let snap = snapshot_of(
            r#"
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec:
  clusterIP: None
  ports: [{name: tcp-postgres, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: search, namespace: data}
spec:
  type: ExternalName
  externalName: search.example.com
  ports: [{name: https, port: 443}, {name: grpc-api, port: 8443}]
"#,
        );
        let db = snap
            .service(&Hostname::new("db.data.svc.cluster.local"))
            .expect("headless service");
        assert_eq!(db.resolution, Resolution::Passthrough);
        assert!(db.addresses.is_empty(), "clusterIP None is no address");
        let search_host = Hostname::new("search.data.svc.cluster.local");
        let search = snap.service(&search_host).expect("ExternalName service");
        assert_eq!(search.resolution, Resolution::DnsLb);
        assert_eq!(search.ports[1].protocol, Protocol::Grpc);
        let eps: Vec<(&str, u16)> = snap
            .endpoints(&search_host)
            .iter()
            .map(|e| (e.address.as_str(), e.port))
            .collect();
        assert_eq!(
            eps,
            vec![("search.example.com", 443), ("search.example.com", 8443)],
            "the external name on every port"
        );
    }
}

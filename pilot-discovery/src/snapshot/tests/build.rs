//! Snapshots built from every kind of source object.

use mesh_model::{Hostname, Protocol, Resolution};

use crate::resource::ResourceMap;
use crate::snapshot::build_snapshot;
use crate::snapshot::testing::{resources_of, snapshot_of};

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
    let mut resources: ResourceMap = resources_of(SHOP);
    resources.extend(resources_of(slice_json));
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
    let parse = resources_of;
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

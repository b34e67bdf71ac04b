//! Services defined twice: entries merged, Kubernetes Services taking their hostname, the older winning.

use crate::snapshot::testing::snapshot_of;
use mesh_model::{Hostname, Resolution, Severity};

fn entry(name: &str, ns: &str, created: &str, resolution: &str, ports: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
             metadata: {{name: {name}, namespace: {ns}, creationTimestamp: \"{created}\"}}\n\
             spec:\n  hosts: [shared.example.com]\n  resolution: {resolution}\n  ports: {ports}\n\
             \x20 endpoints: [{{address: 10.0.0.{}}}]\n---\n",
        name.len()
    )
}

#[test]
fn entries_of_one_namespace_merge_ports_and_endpoints_and_the_older_keeps_a_shared_port() {
    let snap = snapshot_of(&format!(
        "{}{}",
        // Named to sort first, but created later: age decides.
        entry(
            "aa-newer",
            "default",
            "2024-06-02T00:00:00Z",
            "STATIC",
            "[{number: 80, name: web, protocol: HTTP2}, {number: 90, name: extra, protocol: TCP}]"
        ),
        entry(
            "zz-older",
            "default",
            "2024-06-01T00:00:00Z",
            "STATIC",
            "[{number: 80, name: http, protocol: HTTP}]"
        ),
    ));
    let svc = snap
        .service(&Hostname::new("shared.example.com"))
        .expect("merged service");
    assert_eq!(svc.origin.name, "zz-older");
    let ports: Vec<(u16, &str)> = svc
        .ports
        .iter()
        .map(|p| (p.port, p.name.as_str()))
        .collect();
    assert_eq!(ports, vec![(80, "http"), (90, "extra")]);
    assert_eq!(
        snap.endpoints(&svc.hostname).len(),
        3,
        "one per port of each entry"
    );
    assert_eq!(snap.problems.len(), 1, "{:?}", snap.problems);
    let p = &snap.problems[0];
    assert_eq!(p.severity, Severity::Conflict);
    assert_eq!(p.resource.name, "aa-newer");
    assert_eq!(p.field.as_deref(), Some("spec.ports"));
    assert!(
        p.message.contains("port 80") && p.message.contains("zz-older"),
        "{p}"
    );
}

#[test]
fn entries_that_cannot_merge_keep_the_older_whole() {
    let snap = snapshot_of(&format!(
        "{}{}",
        entry(
            "b",
            "other",
            "2024-06-01T00:00:00Z",
            "STATIC",
            "[{number: 80, name: http, protocol: HTTP}]"
        ),
        entry(
            "a",
            "default",
            "2024-06-02T00:00:00Z",
            "DNS",
            "[{number: 81, name: http, protocol: HTTP}]"
        ),
    ));
    let svc = snap
        .service(&Hostname::new("shared.example.com"))
        .expect("service");
    assert_eq!(
        (svc.origin.name.as_str(), svc.resolution),
        ("b", Resolution::ClientSideLb)
    );
    assert_eq!(svc.ports.len(), 1);
    assert_eq!(snap.endpoints(&svc.hostname).len(), 1);
    assert_eq!(snap.problems.len(), 1, "{:?}", snap.problems);
    assert_eq!(snap.problems[0].resource.name, "a");
    assert_eq!(snap.problems[0].field.as_deref(), Some("spec.hosts"));
}

#[test]
fn a_kubernetes_service_displaces_an_older_entry_for_its_hostname() {
    let snap = snapshot_of(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: squatter, namespace: default, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  hosts: [web.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.9.9.9}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 8080}]
"#,
    );
    let svc = snap
        .service(&Hostname::new("web.default.svc.cluster.local"))
        .expect("service");
    assert_eq!(svc.origin.kind, mesh_model::ConfigKind::Service);
    assert_eq!(svc.ports[0].port, 8080);
    assert!(
        snap.endpoints(&svc.hostname).is_empty(),
        "the entry's endpoints go with it"
    );
    assert_eq!(snap.problems.len(), 1, "{:?}", snap.problems);
    assert_eq!(snap.problems[0].resource.name, "squatter");
}

//! Services that claim one hostname, combined as Istio combines them.
//!
//! Candidates arrive oldest first. A Kubernetes Service owns its hostname:
//! it displaces a ServiceEntry that came first, so no entry can squat on a
//! name before the Service exists. Two ServiceEntries of one namespace and
//! resolution merge: the later adds the ports the earlier lacks and its
//! endpoints join; on a port both define, the earlier's definition is
//! used. Any other pair keeps the first. Each of these is reported.

use std::sync::Arc;

use mesh_model::{ConfigKind, Endpoint, Hostname, MeshSnapshot, Problem, Service, Severity};

fn is_kubernetes(s: &Service) -> bool {
    s.origin.kind == ConfigKind::Service
}

/// Adds `svc` and its endpoints to `snap`, resolving a clash with a service
/// already there.
pub fn insert(
    snap: &mut MeshSnapshot,
    svc: Arc<Service>,
    endpoints: Arc<Vec<Endpoint>>,
    problems: &mut Vec<Problem>,
) {
    let host = svc.hostname.clone();
    let Some(existing) = snap.services.get(&host).cloned() else {
        add_endpoints(snap, &host, endpoints);
        snap.services.insert(host, svc);
        return;
    };
    let conflict = |loser: &Service, message: String| Problem {
        severity: Severity::Conflict,
        resource: loser.origin.clone(),
        field: Some("spec.hosts".into()),
        message,
    };
    if is_kubernetes(&svc) && !is_kubernetes(&existing) {
        problems.push(conflict(
            &existing,
            format!(
                "host {host} belongs to Kubernetes Service {}/{}, which takes precedence; \
                 this entry is ignored for it",
                svc.origin.namespace, svc.origin.name
            ),
        ));
        snap.endpoints.insert(host.clone(), endpoints);
        snap.services.insert(host, svc);
        return;
    }
    let mergeable = !is_kubernetes(&svc)
        && !is_kubernetes(&existing)
        && svc.namespace == existing.namespace
        && svc.resolution == existing.resolution;
    if !mergeable {
        problems.push(conflict(
            &svc,
            format!(
                "host {host} is already defined by {}, which takes precedence (older, or \
                 first by name); this definition is ignored",
                describe(&existing)
            ),
        ));
        return;
    }
    let mut merged = (*existing).clone();
    for port in &svc.ports {
        match existing.port(port.port) {
            None => merged.ports.push(port.clone()),
            Some(kept) => problems.push(Problem {
                field: Some("spec.ports".into()),
                ..conflict(
                    &svc,
                    if kept == port {
                        format!(
                            "port {} of host {host} is also defined by {}; both entries' \
                             endpoints serve it",
                            port.port,
                            describe(&existing)
                        )
                    } else {
                        format!(
                            "port {} of host {host} is also defined by {}, whose definition \
                             ({} {:?}) takes precedence",
                            port.port,
                            describe(&existing),
                            kept.name,
                            kept.protocol
                        )
                    },
                )
            }),
        }
    }
    add_endpoints(snap, &host, endpoints);
    snap.services.insert(host, Arc::new(merged));
}

/// Joins `endpoints` to those `host` has. The first list is kept as it is,
/// shared with the conversion it came from.
fn add_endpoints(snap: &mut MeshSnapshot, host: &Hostname, endpoints: Arc<Vec<Endpoint>>) {
    match snap.endpoints.get_mut(host) {
        Some(eps) => Arc::make_mut(eps).extend(endpoints.iter().cloned()),
        None => {
            snap.endpoints.insert(host.clone(), endpoints);
        }
    }
}

fn describe(s: &Service) -> String {
    format!("{} {}/{}", s.origin.kind, s.origin.namespace, s.origin.name)
}

#[cfg(test)]
mod tests {
    use crate::registry::tests::snapshot_of;
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
}

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

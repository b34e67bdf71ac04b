//! TCP ports that more than one service claims.
//!
//! A sidecar gives each outbound port one listener, and an opaque TCP
//! listener cannot tell its connections apart by host. So an HTTP service
//! takes a port before any TCP service, and among TCP services the first by
//! hostname takes it (see `xds::tcp::tcp_ports`); the others get no
//! listener on that port wherever both are visible. Each loser is reported.

use std::collections::{BTreeMap, BTreeSet};

use mesh_model::{MeshSnapshot, Problem, Service, Severity};

pub fn report_shared_tcp_ports(snap: &MeshSnapshot, problems: &mut Vec<Problem>) {
    let http_ports: BTreeMap<u16, &Service> = snap
        .services
        .values()
        .flat_map(|s| {
            s.ports
                .iter()
                .filter(|p| p.protocol.is_http())
                .map(move |p| (p.port, s.as_ref()))
        })
        .rev() // so the first by hostname is the one kept
        .collect();
    let mut tcp_owner: BTreeMap<u16, &Service> = BTreeMap::new();
    for svc in snap.services.values() {
        let tcp: BTreeSet<u16> = svc
            .ports
            .iter()
            .filter(|p| !p.protocol.is_http())
            .map(|p| p.port)
            .collect();
        for port in tcp {
            let owner = match http_ports.get(&port) {
                Some(http) => Some((*http, "an HTTP port of")),
                None => match tcp_owner.get(&port) {
                    Some(first) => Some((*first, "a TCP port of")),
                    None => {
                        tcp_owner.insert(port, svc);
                        None
                    }
                },
            };
            let Some((owner, what)) = owner else {
                continue;
            };
            if owner.hostname == svc.hostname {
                continue;
            }
            problems.push(Problem {
                severity: Severity::Conflict,
                resource: svc.origin.clone(),
                field: Some("spec.ports".into()),
                message: format!(
                    "TCP port {port} of host {} is also {what} host {}, which takes the port's \
                     listener (HTTP first, then the first host by name); where both are \
                     visible, sidecars send no traffic for {} on port {port}",
                    svc.hostname, owner.hostname, svc.hostname
                ),
            });
        }
    }
}

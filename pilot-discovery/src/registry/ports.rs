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

#[cfg(test)]
mod tests {
    use crate::registry::tests::snapshot_of;

    fn entry(name: &str, protocol: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\n\
             spec:\n  hosts: [{name}.example.com]\n  resolution: STATIC\n\
             \x20 ports: [{{number: 5432, name: p, protocol: {protocol}}}]\n\
             \x20 endpoints: [{{address: 10.0.0.1}}]\n---\n"
        )
    }

    fn losers(yaml: &str) -> Vec<String> {
        snapshot_of(yaml)
            .problems
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    p.resource.name,
                    p.field.as_deref().unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn the_first_tcp_host_keeps_a_shared_port_unless_http_has_it() {
        assert_eq!(
            losers(&format!("{}{}", entry("b", "TCP"), entry("a", "TCP"))),
            ["b spec.ports"],
            "a sorts first"
        );
        assert_eq!(
            losers(&format!("{}{}", entry("a", "TCP"), entry("b", "HTTP"))),
            ["a spec.ports"],
            "HTTP takes the port"
        );
        assert!(losers(&format!("{}{}", entry("a", "HTTP"), entry("b", "HTTP"))).is_empty());
    }
}

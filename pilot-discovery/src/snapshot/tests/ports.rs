//! TCP services sharing a port: who keeps it.

use crate::snapshot::testing::snapshot_of;

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

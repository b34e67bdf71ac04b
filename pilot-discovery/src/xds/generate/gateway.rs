//! Gateways: a `router` proxy listens on the ports of the Gateway resources
//! that select it, and routes the hosts of the VirtualServices bound to
//! them, under Istio's names (listener `0.0.0.0_8080`, route configuration
//! `http.8080`, virtual host `host:8080`).

use std::collections::{BTreeMap, BTreeSet};

use mesh_model::istio::gateway::Server;
use mesh_model::istio::{Gateway, VirtualService};
use mesh_model::{Config, Hostname, MeshSnapshot};
use xds_proto::pb::envoy::config::listener::v3::Listener;
use xds_proto::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};

use super::listener::{http_listener_with_routes, ANY_ADDRESS};
use super::proxy::Proxy;
use super::route::translate::virtual_service_routes;

/// The route configuration of a gateway port.
pub fn route_config_name(port: u16) -> String {
    format!("http.{port}")
}

/// The Gateways that select `proxy`, in load order.
pub fn selected<'a>(
    snap: &'a MeshSnapshot,
    proxy: &'a Proxy,
) -> impl Iterator<Item = &'a Config<Gateway>> + 'a {
    snap.gateways
        .iter()
        .map(AsRef::as_ref)
        .filter(|g| g.spec.selects(proxy.labels(snap)))
}

/// The servers of the selected Gateways, with their Gateway, by port.
fn servers<'a>(
    snap: &'a MeshSnapshot,
    proxy: &'a Proxy,
) -> BTreeMap<u16, Vec<(&'a Config<Gateway>, &'a Server)>> {
    let mut out: BTreeMap<u16, Vec<_>> = BTreeMap::new();
    for g in selected(snap, proxy) {
        for s in &g.spec.servers {
            if let Ok(port) = u16::try_from(s.port.number) {
                out.entry(port).or_default().push((g, s));
            }
        }
    }
    out
}

/// One bound listener per (address, port). Two Gateways sharing a port
/// share its listener and its route configuration.
pub fn listeners(snap: &MeshSnapshot, proxy: &Proxy) -> Vec<Listener> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (port, servers) in servers(snap, proxy) {
        for (_, s) in servers {
            let address = if s.bind.is_empty() {
                ANY_ADDRESS
            } else {
                s.bind.as_str()
            };
            if seen.insert((address.to_string(), port)) {
                out.push(http_listener_with_routes(
                    address,
                    port,
                    true,
                    route_config_name(port),
                ));
            }
        }
    }
    out
}

/// Fills `rc` (named `http.<port>`) with a virtual host per host that a
/// VirtualService bound to a Gateway on that port claims and the server
/// admits. Rules of several VirtualServices for one host are joined in
/// load order. A host no VirtualService claims gets no virtual host: the
/// gateway answers 404, as Istio's does.
pub fn add_virtual_hosts(rc: &mut RouteConfiguration, snap: &MeshSnapshot, proxy: &Proxy) {
    let Some(port) = rc
        .name
        .strip_prefix("http.")
        .and_then(|p| p.parse::<u16>().ok())
    else {
        return;
    };
    let servers = servers(snap, proxy);
    let Some(on_port) = servers.get(&port) else {
        return;
    };
    let mut hosts: BTreeMap<Hostname, Vec<&Config<VirtualService>>> = BTreeMap::new();
    let mut order: Vec<Hostname> = Vec::new();
    for vs in &snap.virtual_services {
        if !mesh_model::snapshot::exported_to(
            &vs.spec.export_to,
            &vs.meta.namespace,
            proxy.namespace(),
        ) {
            continue;
        }
        let bound: Vec<&(&Config<Gateway>, &Server)> =
            on_port.iter().filter(|(g, _)| binds(vs, g)).collect();
        if bound.is_empty() {
            continue;
        }
        for h in &vs.spec.hosts {
            let host = Hostname::resolve(h, &vs.meta.namespace, &snap.domain);
            let admitted = bound
                .iter()
                .any(|(g, s)| s.admits(&g.meta.namespace, &vs.meta.namespace, &host));
            if !admitted {
                continue;
            }
            let entry = hosts.entry(host.clone()).or_default();
            if entry.is_empty() {
                order.push(host);
            }
            entry.push(vs);
        }
    }
    let mut used_domains = BTreeSet::new();
    for host in order {
        let domains: Vec<String> = if host.as_str() == "*" {
            vec!["*".to_string()]
        } else {
            vec![host.to_string(), format!("{host}:{port}")]
        };
        // Envoy refuses a configuration in which two virtual hosts share a
        // domain; the first host to claim one keeps it.
        let domains: Vec<String> = domains
            .into_iter()
            .filter(|d| used_domains.insert(d.clone()))
            .collect();
        if domains.is_empty() {
            continue;
        }
        let routes = hosts
            .get(&host)
            .into_iter()
            .flatten()
            .flat_map(|vs| virtual_service_routes(snap, vs, port))
            .collect();
        rc.virtual_hosts.push(VirtualHost {
            name: format!("{host}:{port}"),
            domains,
            routes,
            ..Default::default()
        });
    }
}

/// Whether `vs` names Gateway `g` in its `gateways`: `namespace/name`, or a
/// bare name in the VirtualService's own namespace.
fn binds(vs: &Config<VirtualService>, g: &Config<Gateway>) -> bool {
    vs.spec.gateways.iter().any(|r| match r.split_once('/') {
        Some((ns, name)) => ns == g.meta.namespace && name == g.meta.name,
        None => vs.meta.namespace == g.meta.namespace && r == &g.meta.name,
    })
}

//! Routes: one route configuration per HTTP port, a virtual host per service
//! on that port, VirtualService rules translated into Envoy routes.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use mesh_model::istio::OutboundMode;
use mesh_model::{MeshSnapshot, NodeType, Resolution, Service};
use prost::Message;
use xds_proto::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, route, HeaderMatcher, Route, RouteConfiguration,
    VirtualHost,
};
use xds_proto::protobuf::BoolValue;

use super::gateway;
use super::generate::digest;
use super::names::{route_config_name, PASSTHROUGH_CLUSTER};
use super::proxy::Proxy;
use super::route::{self as rules, prefix_match};
use super::visibility::Visibility;

/// The route configuration a proxy asked for by name. Names that are not a
/// port this snapshot knows get an empty configuration.
pub fn route_configuration(snap: &MeshSnapshot, proxy: &Proxy, name: &str) -> RouteConfiguration {
    let mut rc = empty(name);
    if proxy.id.node_type == NodeType::Router {
        gateway::add_virtual_hosts(&mut rc, snap, proxy);
        return rc;
    }
    sidecar_virtual_hosts(snap, proxy, name, |vh| rc.virtual_hosts.push(vh));
    rc
}

/// [`route_configuration`], encoded. A sidecar's virtual hosts (one per
/// visible service, a thousand at 1,000 services) are each encoded as soon
/// as it is made and then dropped, rather than all built into one message,
/// measured whole, encoded and freed together.
pub fn encoded_route_configuration(snap: &MeshSnapshot, proxy: &Proxy, name: &str) -> Vec<u8> {
    if proxy.id.node_type == NodeType::Router {
        return route_configuration(snap, proxy, name).encode_to_vec();
    }
    let mut buf = empty(name).encode_to_vec();
    sidecar_virtual_hosts(snap, proxy, name, |vh| {
        // Field 2, `virtual_hosts`, length-delimited: a repeated field may
        // come in any number of pieces, after the other fields.
        buf.push(VIRTUAL_HOSTS_KEY);
        // Writing into a Vec cannot run out of room.
        let _ = vh.encode_length_delimited(&mut buf);
    });
    buf
}

/// The key of `RouteConfiguration.virtual_hosts` (field 2, wire type 2).
const VIRTUAL_HOSTS_KEY: u8 = (2 << 3) | 2;

/// A route configuration's own fields, without virtual hosts.
fn empty(name: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_string(),
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// Hands a sidecar's virtual hosts for the route configuration `name` to
/// `emit`, in order.
fn sidecar_virtual_hosts(
    snap: &MeshSnapshot,
    proxy: &Proxy,
    name: &str,
    mut emit: impl FnMut(VirtualHost),
) {
    let Ok(port) = name.parse::<u16>() else {
        return;
    };
    if route_config_name(port) != name {
        return;
    }
    let visible = Visibility::of(snap, proxy);
    let services: Vec<(&Service, Vec<String>)> = snap
        .services
        .values()
        .filter(|svc| visible.sees(svc))
        .filter(|svc| svc.port(port).is_some_and(|p| p.protocol.is_http()))
        .map(|svc| {
            let d = domains(svc, name, proxy.namespace(), &snap.domain);
            (svc.as_ref(), d)
        })
        .collect();
    // Envoy rejects a route configuration in which two virtual hosts share a
    // domain; the first service to claim one keeps it.
    let total: usize = services.iter().map(|(_, d)| d.len()).sum();
    let mut used_domains: HashSet<&str, BuildHasherDefault<WordHasher>> =
        HashSet::with_capacity_and_hasher(total, BuildHasherDefault::default());
    let keep: Vec<bool> = services
        .iter()
        .flat_map(|(_, ds)| ds.iter())
        .map(|d| used_domains.insert(d.as_str()))
        .collect();
    drop(used_domains);
    let mut keep = keep.into_iter();
    for (svc, mut domains) in services {
        domains.retain(|_| keep.next().unwrap_or(false));
        if domains.is_empty() {
            continue;
        }
        emit(VirtualHost {
            name: with_port(svc.hostname.as_str(), name),
            domains,
            routes: routes(snap, svc, port, proxy),
            ..Default::default()
        });
    }
    emit(unknown_hosts(
        visible.outbound_mode(),
        proxy.is_local_mode(),
    ));
}

/// The header a client of a local-mode sidecar names its destination with.
pub const ORIGINAL_DST_HEADER: &str = "x-envoy-original-dst-host";

/// Where requests for hosts the proxy does not know go, by the outbound
/// traffic policy, under Istio's names: `allow_any` forwards them to the
/// address the client asked for, `block_all` refuses them with a 502.
///
/// A local-mode sidecar has no captured original destination (the
/// connection's destination is its own listener, so forwarding there would
/// loop), so the client names it in [`ORIGINAL_DST_HEADER`]; without that
/// header the request is refused, saying why.
fn unknown_hosts(mode: OutboundMode, local_mode: bool) -> VirtualHost {
    let (name, routes) = match mode {
        OutboundMode::RegistryOnly => (
            "block_all",
            vec![Route {
                name: "block_all".to_string(),
                r#match: Some(prefix_match("/")),
                action: Some(route::Action::DirectResponse(rules::direct(502, None))),
                ..Default::default()
            }],
        ),
        OutboundMode::AllowAny => {
            let routes = vec![Route {
                name: "allow_any".to_string(),
                r#match: Some(prefix_match("/")),
                action: Some(route::Action::Route(rules::default_action(
                    PASSTHROUGH_CLUSTER.to_string(),
                ))),
                ..Default::default()
            }];
            ("allow_any", needing_destination(routes, local_mode))
        }
    };
    VirtualHost {
        name: name.to_string(),
        domains: vec!["*".to_string()],
        routes,
        ..Default::default()
    }
}

/// Routes to an original-destination cluster, made safe for a local-mode
/// sidecar: each requires the destination header, and a request without it
/// is refused, saying why. Other proxies get the routes unchanged.
fn needing_destination(mut routes: Vec<Route>, local_mode: bool) -> Vec<Route> {
    if !local_mode {
        return routes;
    }
    for r in &mut routes {
        if let Some(m) = r.r#match.as_mut() {
            m.headers.push(HeaderMatcher {
                name: ORIGINAL_DST_HEADER.to_string(),
                header_match_specifier: Some(HeaderMatchSpecifier::PresentMatch(true)),
                ..Default::default()
            });
        }
    }
    routes.push(Route {
        name: "no_original_destination".to_string(),
        r#match: Some(prefix_match("/")),
        action: Some(route::Action::DirectResponse(rules::direct(
            502,
            Some(NO_DESTINATION_IN_LOCAL_MODE),
        ))),
        ..Default::default()
    });
    routes
}

const NO_DESTINATION_IN_LOCAL_MODE: &str = "no original destination: this sidecar does not \
     capture traffic (INTERCEPTION_MODE NONE); name the destination in x-envoy-original-dst-host\n";

/// The Host header values that reach a service: the hostname, and for
/// Kubernetes-style names the shorter forms, each also with `:port`.
///
/// Built once per service in every route configuration, so each string is
/// one exact allocation: the short forms are prefixes of the hostname.
fn domains(svc: &Service, port: &str, proxy_namespace: &str, domain: &str) -> Vec<String> {
    let host = svc.hostname.as_str();
    let mut names = [host; 4];
    let mut count = 1;
    if let Some((name, namespace)) = svc.hostname.kubernetes_parts(domain) {
        // `name.namespace.svc.<domain>`: `name.namespace` ends here.
        let end = name.len() + 1 + namespace.len();
        for prefix in [host.get(..end + ".svc".len()), host.get(..end)]
            .into_iter()
            .flatten()
        {
            names[count] = prefix;
            count += 1;
        }
        if namespace == proxy_namespace {
            names[count] = name;
            count += 1;
        }
    }
    let mut out = Vec::with_capacity(2 * count);
    for n in &names[..count] {
        out.push(with_port(n, port));
        out.push(n.to_string());
    }
    out
}

fn with_port(name: &str, port: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1 + port.len());
    out.push_str(name);
    out.push(':');
    out.push_str(port);
    out
}

/// The routes of the first VirtualService (in precedence order) with a route
/// for this port, as Istio picks one per virtual host; else the default.
fn routes(snap: &MeshSnapshot, svc: &Service, port: u16, proxy: &Proxy) -> Vec<Route> {
    let mut out: Vec<Route> = snap
        .virtual_services_for(&svc.hostname, proxy.namespace())
        .map(|vs| rules::virtual_service_routes(snap, vs, port).collect::<Vec<_>>())
        .find(|routes| !routes.is_empty())
        .unwrap_or_default();
    if out.is_empty() {
        let default = vec![rules::default_route(snap, &svc.hostname, port)];
        let passthrough = svc.resolution == Resolution::Passthrough;
        out = needing_destination(default, passthrough && proxy.is_local_mode());
    }
    out
}

/// A fast hasher for the domain set of one route configuration. The keys are
/// the mesh's own host names, not attacker-chosen input, so SipHash's
/// resistance to flooding buys nothing here and costs a sixth of the build.
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = self.0.rotate_left(5) ^ digest(bytes);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_model::{ConfigKey, ConfigKind, Hostname};

    fn service(host: &str) -> Service {
        Service {
            hostname: Hostname::new(host),
            namespace: "shop".into(),
            ports: Vec::new(),
            resolution: Resolution::ClientSideLb,
            mesh_external: false,
            addresses: Vec::new(),
            origin: ConfigKey {
                kind: ConfigKind::ServiceEntry,
                namespace: "shop".into(),
                name: "s".into(),
            },
        }
    }

    #[test]
    fn domains_are_the_host_and_its_short_forms_with_and_without_port() {
        let kube = service("reviews.shop.svc.cluster.local");
        assert_eq!(
            domains(&kube, "9080", "shop", "cluster.local"),
            [
                "reviews.shop.svc.cluster.local:9080",
                "reviews.shop.svc.cluster.local",
                "reviews.shop.svc:9080",
                "reviews.shop.svc",
                "reviews.shop:9080",
                "reviews.shop",
                "reviews:9080",
                "reviews",
            ]
        );
        // The bare name only resolves in the service's own namespace.
        assert_eq!(domains(&kube, "80", "web", "cluster.local").len(), 6);
        assert_eq!(
            domains(&service("api.example.com"), "443", "shop", "cluster.local"),
            ["api.example.com:443", "api.example.com"]
        );
    }

    #[test]
    fn the_encoded_configuration_is_the_message_encoded() {
        let snap = crate::registry::tests::snapshot_of(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
             metadata: {name: a, namespace: shop}\n\
             spec:\n  hosts: [a.shop.svc.cluster.local, api.example.com]\n  resolution: STATIC\n\
             \x20 ports: [{number: 80, name: http, protocol: HTTP}]\n\
             \x20 endpoints: [{address: 10.0.0.1}]\n",
        );
        for id in [
            "sidecar~10.0.0.9~web-1.shop~shop.svc.cluster.local",
            "router~10.0.0.9~gw-1.shop~shop.svc.cluster.local",
        ] {
            let proxy = Proxy::from_node(&crate::xds::proxy::tests::local_node(id)).expect("proxy");
            for name in ["80", "81", "nonsense"] {
                let message = route_configuration(&snap, &proxy, name);
                let bytes = encoded_route_configuration(&snap, &proxy, name);
                let decoded = RouteConfiguration::decode(bytes.as_slice()).expect("decodes");
                assert_eq!(decoded, message, "{id} {name}");
            }
        }
        let sidecar = Proxy::from_node(&crate::xds::proxy::tests::local_node(
            "sidecar~10.0.0.9~web-1.shop~shop.svc.cluster.local",
        ))
        .expect("proxy");
        assert_eq!(
            route_configuration(&snap, &sidecar, "80")
                .virtual_hosts
                .len(),
            3
        );
    }

    #[test]
    fn a_domain_two_services_claim_goes_to_the_first_by_hostname() {
        // `reviews.shop`, written with a dot, is a host of its own; it is
        // also a short form of the Kubernetes-style host.
        let entry = |name: &str, host: &str| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
                 metadata: {{name: {name}, namespace: shop}}\n\
                 spec:\n  hosts: [{host}]\n  resolution: STATIC\n\
                 \x20 ports: [{{number: 80, name: http, protocol: HTTP}}]\n\
                 \x20 endpoints: [{{address: 10.0.0.1}}]\n---\n"
            )
        };
        let snap = crate::registry::tests::snapshot_of(&format!(
            "{}{}",
            entry("long", "reviews.shop.svc.cluster.local"),
            entry("short", "reviews.shop")
        ));
        let node = crate::xds::proxy::tests::local_node(
            "sidecar~10.0.0.9~web-1.shop~shop.svc.cluster.local",
        );
        let proxy = Proxy::from_node(&node).expect("proxy");
        let rc = route_configuration(&snap, &proxy, "80");
        let of = |name: &str| {
            rc.virtual_hosts
                .iter()
                .find(|v| v.name == name)
                .map(|v| v.domains.clone())
                .unwrap_or_default()
        };
        assert_eq!(of("reviews.shop:80"), ["reviews.shop:80", "reviews.shop"]);
        assert_eq!(
            of("reviews.shop.svc.cluster.local:80"),
            [
                "reviews.shop.svc.cluster.local:80",
                "reviews.shop.svc.cluster.local",
                "reviews.shop.svc:80",
                "reviews.shop.svc",
                "reviews:80",
                "reviews",
            ]
        );
    }
}

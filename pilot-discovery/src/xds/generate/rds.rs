//! Routes: one route configuration per HTTP port, a virtual host per service
//! on that port, VirtualService rules translated into Envoy routes.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use mesh_model::istio::OutboundMode;
use mesh_model::{MeshSnapshot, NodeType, Resolution, Service};
use prost::Message;
use xds_proto::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, route, route_action::HashPolicy, HeaderMatcher, Route,
    RouteConfiguration, VirtualHost,
};
use xds_proto::protobuf::{Any, BoolValue};

use super::gateway;
use super::generator::{nothing_own, Cache, Generator, Names, ShapeOf};
use super::named::Named;
use super::names::{route_config_name, PASSTHROUGH_CLUSTER};
use super::proxy::Proxy;
use super::route::action::{default_action, direct};
use super::route::default_route::{self, EncodedDefaultRoute};
use super::route::matching::prefix_match;
use super::route::translate::{self as rules};
use super::visibility::Visibility;
use crate::xds::digest::digest;
use crate::xds::wire::{nested_len, put_nested};

/// RDS: one route configuration per name and proxy shape.
pub const GENERATOR: Generator = Generator {
    type_url: xds_proto::type_url::ROUTE,
    short_name: "rds",
    wildcard: false,
    endpoint_push: None,
    cache: Cache::NameAndShape(ShapeOf::Full),
    shared: route_configurations,
    own: nothing_own,
};

/// The route configurations named, alike for every proxy of one shape.
fn route_configurations(snap: &MeshSnapshot, proxy: &Proxy, names: Names<'_>) -> Vec<Named> {
    names
        .map(|n| {
            let value = encoded_route_configuration(snap, proxy, n);
            Named::new(
                n,
                Any {
                    type_url: xds_proto::type_url::ROUTE.to_string(),
                    value,
                },
            )
        })
        .collect()
}

/// The route configuration a proxy asked for by name. Names that are not a
/// port this snapshot knows get an empty configuration.
pub fn route_configuration(snap: &MeshSnapshot, proxy: &Proxy, name: &str) -> RouteConfiguration {
    let mut rc = empty(name);
    if proxy.id.node_type == NodeType::Router {
        gateway::add_virtual_hosts(&mut rc, snap, proxy);
        return rc;
    }
    if let Some(plan) = SidecarPlan::new(snap, proxy, name) {
        rc.virtual_hosts = plan.virtual_hosts();
    }
    rc
}

/// [`route_configuration`], encoded. A sidecar's virtual hosts (one per
/// visible service, a thousand at 1,000 services) are written straight to
/// the wire from the same plan, without building each as a message first.
pub fn encoded_route_configuration(snap: &MeshSnapshot, proxy: &Proxy, name: &str) -> Vec<u8> {
    if proxy.id.node_type == NodeType::Router {
        return route_configuration(snap, proxy, name).encode_to_vec();
    }
    let mut buf = empty(name).encode_to_vec();
    if let Some(plan) = SidecarPlan::new(snap, proxy, name) {
        // A repeated field may come in any number of pieces, after the
        // configuration's other fields.
        plan.encode_virtual_hosts(&mut buf);
    }
    buf
}

/// A route configuration's own fields, without virtual hosts.
fn empty(name: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_string(),
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

// Field numbers, from envoy/config/route/v3/route.proto and
// route_components.proto.
/// `RouteConfiguration.virtual_hosts`.
const CONFIG_VIRTUAL_HOSTS: u32 = 2;
/// `VirtualHost.name`.
const HOST_NAME: u32 = 1;
/// `VirtualHost.domains`.
const HOST_DOMAINS: u32 = 2;
/// `VirtualHost.routes`.
const HOST_ROUTES: u32 = 3;

/// What a sidecar's route configuration holds, decided once: then built as
/// messages or written to the wire, which must agree.
struct SidecarPlan<'a> {
    /// The configuration's name: its port in decimal.
    port_name: &'a str,
    port: u16,
    hosts: Vec<HostPlan<'a>>,
    /// The domains every host keeps, in order; each host's are a range.
    domains: Vec<Domain<'a>>,
    unknown_hosts: VirtualHost,
}

/// One service's virtual host.
struct HostPlan<'a> {
    svc: &'a Service,
    domains: Range<usize>,
    routes: HostRoutes,
}

impl<'a> HostPlan<'a> {
    /// The virtual host's name, `host:port`: the text of the hostname's
    /// domain with the port.
    fn name(&self) -> Domain<'a> {
        Domain {
            name: self.svc.hostname.as_str(),
            with_port: true,
        }
    }
}

enum HostRoutes {
    /// The service's own cluster, with this hash policy.
    Default(Vec<HashPolicy>),
    /// A VirtualService's routes, or a default route with more to it.
    Rules(Vec<Route>),
}

impl<'a> SidecarPlan<'a> {
    /// `None` if `name` is not a port's route configuration.
    fn new(snap: &'a MeshSnapshot, proxy: &Proxy, name: &'a str) -> Option<Self> {
        let port = name.parse::<u16>().ok()?;
        if route_config_name(port) != name {
            return None;
        }
        let visible = Visibility::of(snap, proxy);
        let mut hosts = Vec::new();
        let mut domains = Vec::new();
        for svc in snap
            .services
            .values()
            .filter(|svc| visible.sees(svc))
            .filter(|svc| svc.port(port).is_some_and(|p| p.protocol.is_http()))
        {
            let start = domains.len();
            push_domains(&mut domains, svc, proxy.namespace(), &snap.domain);
            hosts.push((svc.as_ref(), start..domains.len()));
        }
        // Envoy rejects a route configuration in which two virtual hosts
        // share a domain; the first service to claim one keeps it.
        let keep = first_claims(&domains, name);
        let mut kept = Vec::with_capacity(domains.len());
        let hosts = hosts
            .into_iter()
            .filter_map(|(svc, range)| {
                let start = kept.len();
                kept.extend(range.filter(|&i| keep[i]).map(|i| domains[i]));
                (kept.len() > start).then(|| HostPlan {
                    svc,
                    domains: start..kept.len(),
                    routes: host_routes(snap, svc, port, proxy),
                })
            })
            .collect();
        Some(SidecarPlan {
            port_name: name,
            port,
            hosts,
            domains: kept,
            unknown_hosts: unknown_hosts(visible.outbound_mode(), proxy.is_local_mode()),
        })
    }

    fn virtual_hosts(self) -> Vec<VirtualHost> {
        let SidecarPlan {
            port_name,
            port,
            hosts,
            domains,
            unknown_hosts,
        } = self;
        let mut out: Vec<VirtualHost> = hosts
            .into_iter()
            .map(|h| VirtualHost {
                name: h.name().to_string(port_name),
                domains: domains[h.domains]
                    .iter()
                    .map(|d| d.to_string(port_name))
                    .collect(),
                routes: match h.routes {
                    HostRoutes::Default(hash) => {
                        vec![default_route::hashing(&h.svc.hostname, port, hash)]
                    }
                    HostRoutes::Rules(routes) => routes,
                },
                ..Default::default()
            })
            .collect();
        out.push(unknown_hosts);
        out
    }

    /// Appends every virtual host as `RouteConfiguration.virtual_hosts`.
    fn encode_virtual_hosts(&self, buf: &mut Vec<u8>) {
        let lens: Vec<usize> = self.hosts.iter().map(|h| self.host_len(h)).collect();
        let unknown_len = self.unknown_hosts.encoded_len();
        buf.reserve(
            lens.iter()
                .map(|&l| nested_len(CONFIG_VIRTUAL_HOSTS, l))
                .sum::<usize>()
                + nested_len(CONFIG_VIRTUAL_HOSTS, unknown_len),
        );
        for (h, len) in self.hosts.iter().zip(lens) {
            put_nested(buf, CONFIG_VIRTUAL_HOSTS, len);
            put_nested(buf, HOST_NAME, h.name().len(self.port_name));
            h.name().write(buf, self.port_name);
            for d in &self.domains[h.domains.clone()] {
                put_nested(buf, HOST_DOMAINS, d.len(self.port_name));
                d.write(buf, self.port_name);
            }
            match &h.routes {
                HostRoutes::Default(hash) => {
                    let route = self.default_route(h, hash);
                    put_nested(buf, HOST_ROUTES, route.encoded_len());
                    route.encode_raw(buf);
                }
                HostRoutes::Rules(routes) => {
                    for r in routes {
                        put_nested(buf, HOST_ROUTES, r.encoded_len());
                        r.encode_raw(buf);
                    }
                }
            }
        }
        put_nested(buf, CONFIG_VIRTUAL_HOSTS, unknown_len);
        self.unknown_hosts.encode_raw(buf);
    }

    /// The encoded size of `h` as a `VirtualHost`.
    fn host_len(&self, h: &HostPlan<'_>) -> usize {
        let domains: usize = self.domains[h.domains.clone()]
            .iter()
            .map(|d| nested_len(HOST_DOMAINS, d.len(self.port_name)))
            .sum();
        let routes = match &h.routes {
            HostRoutes::Default(hash) => {
                nested_len(HOST_ROUTES, self.default_route(h, hash).encoded_len())
            }
            HostRoutes::Rules(routes) => routes
                .iter()
                .map(|r| nested_len(HOST_ROUTES, r.encoded_len()))
                .sum(),
        };
        nested_len(HOST_NAME, h.name().len(self.port_name)) + domains + routes
    }

    fn default_route<'h>(
        &'h self,
        h: &'h HostPlan<'_>,
        hash: &'h [HashPolicy],
    ) -> EncodedDefaultRoute<'h> {
        EncodedDefaultRoute {
            host: h.svc.hostname.as_str(),
            port: self.port_name,
            hash_policy: hash,
        }
    }
}

/// The routes of `svc`'s virtual host on `port`: the first VirtualService
/// (in precedence order) with a route for this port, as Istio picks one per
/// virtual host; else the default.
fn host_routes(snap: &MeshSnapshot, svc: &Service, port: u16, proxy: &Proxy) -> HostRoutes {
    let ruled = snap
        .virtual_services_for(&svc.hostname, proxy.namespace())
        .map(|vs| rules::virtual_service_routes(snap, vs, port).collect::<Vec<_>>())
        .find(|routes| !routes.is_empty());
    if let Some(routes) = ruled {
        return HostRoutes::Rules(routes);
    }
    let hash = default_route::default_hash_policy(snap, &svc.hostname, port);
    if svc.resolution == Resolution::Passthrough && proxy.is_local_mode() {
        let default = vec![default_route::hashing(&svc.hostname, port, hash)];
        return HostRoutes::Rules(needing_destination(default, true));
    }
    HostRoutes::Default(hash)
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
                action: Some(route::Action::DirectResponse(direct(502, None))),
                ..Default::default()
            }],
        ),
        OutboundMode::AllowAny => {
            let routes = vec![Route {
                name: "allow_any".to_string(),
                r#match: Some(prefix_match("/")),
                action: Some(route::Action::Route(default_action(
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
        action: Some(route::Action::DirectResponse(direct(
            502,
            Some(NO_DESTINATION_IN_LOCAL_MODE),
        ))),
        ..Default::default()
    });
    routes
}

const NO_DESTINATION_IN_LOCAL_MODE: &str = "no original destination: this sidecar does not \
     capture traffic (INTERCEPTION_MODE NONE); name the destination in x-envoy-original-dst-host\n";

/// A Host header value that reaches a service: a name, with or without
/// the configuration's `:port` after it. Written out only into the message
/// or the wire, so a route configuration makes no string per domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Domain<'a> {
    name: &'a str,
    with_port: bool,
}

impl<'a> Domain<'a> {
    fn len(&self, port: &str) -> usize {
        if self.with_port {
            self.name.len() + 1 + port.len()
        } else {
            self.name.len()
        }
    }

    fn write(&self, buf: &mut Vec<u8>, port: &str) {
        buf.extend_from_slice(self.name.as_bytes());
        if self.with_port {
            buf.push(b':');
            buf.extend_from_slice(port.as_bytes());
        }
    }

    fn to_string(self, port: &str) -> String {
        if self.with_port {
            with_port(self.name, port)
        } else {
            self.name.to_string()
        }
    }

    /// Equal exactly when the two domains' text is: a name without the
    /// port that itself ends in `:port` is the name before it, with it.
    fn key(&self, port: &str) -> (&'a str, bool) {
        if !self.with_port {
            if let Some(stem) = self
                .name
                .strip_suffix(port)
                .and_then(|s| s.strip_suffix(':'))
            {
                return (stem, true);
            }
        }
        (self.name, self.with_port)
    }
}

/// Whether each domain is the first to claim its text.
fn first_claims(domains: &[Domain<'_>], port: &str) -> Vec<bool> {
    let mut used: HashSet<(&str, bool), BuildHasherDefault<WordHasher>> =
        HashSet::with_capacity_and_hasher(domains.len(), BuildHasherDefault::default());
    domains.iter().map(|d| used.insert(d.key(port))).collect()
}

/// Appends the Host header values that reach `svc`: the hostname, and for
/// Kubernetes-style names the shorter forms, each with and without the
/// port. The short forms are prefixes of the hostname.
fn push_domains<'a>(
    out: &mut Vec<Domain<'a>>,
    svc: &'a Service,
    proxy_namespace: &str,
    domain: &str,
) {
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
    for name in &names[..count] {
        out.push(Domain {
            name,
            with_port: true,
        });
        out.push(Domain {
            name,
            with_port: false,
        });
    }
}

fn with_port(name: &str, port: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1 + port.len());
    out.push_str(name);
    out.push(':');
    out.push_str(port);
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
    use xds_proto::pb::envoy::config::core::v3::Node;

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

    fn domains(svc: &Service, port: &str, proxy_namespace: &str, domain: &str) -> Vec<String> {
        let mut out = Vec::new();
        push_domains(&mut out, svc, proxy_namespace, domain);
        out.iter().map(|d| d.to_string(port)).collect()
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

    /// Every shape a virtual host takes: default routes with and without a
    /// hash policy, VirtualService routes, a passthrough service seen by a
    /// local-mode sidecar, short names in and out of the proxy's namespace,
    /// and domains two services claim, one of them by a host written with
    /// the port in it.
    #[test]
    fn the_encoded_configuration_is_the_message_encoded() {
        let snap = crate::snapshot::testing::snapshot_of(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
             metadata: {name: a, namespace: shop}\n\
             spec:\n  hosts: [a.shop.svc.cluster.local, api.example.com, 'b.web.svc.cluster.local:80']\n\
             \x20 resolution: STATIC\n\
             \x20 ports: [{number: 80, name: http, protocol: HTTP}]\n\
             \x20 endpoints: [{address: 10.0.0.1}]\n\
             ---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
             metadata: {name: b, namespace: web}\n\
             spec:\n  hosts: [b.web.svc.cluster.local, hashed.web.svc.cluster.local, ruled.web.svc.cluster.local]\n\
             \x20 resolution: STATIC\n\
             \x20 ports: [{number: 80, name: http, protocol: HTTP}]\n\
             \x20 endpoints: [{address: 10.0.0.2}]\n\
             ---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
             metadata: {name: through, namespace: web}\n\
             spec:\n  hosts: [through.example.com]\n  resolution: NONE\n\
             \x20 ports: [{number: 80, name: http, protocol: HTTP}]\n\
             ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
             metadata: {name: hashed, namespace: web}\n\
             spec:\n  host: hashed.web.svc.cluster.local\n\
             \x20 trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}\n\
             ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
             metadata: {name: ruled, namespace: web}\n\
             spec:\n  hosts: [ruled.web.svc.cluster.local]\n\
             \x20 http:\n  - match: [{uri: {prefix: /v2}}]\n\
             \x20   route: [{destination: {host: b.web.svc.cluster.local}}]\n\
             \x20 - route: [{destination: {host: ruled.web.svc.cluster.local}}]\n",
        );
        let mut shapes = Vec::new();
        for (id, local) in [
            ("sidecar~10.0.0.9~web-1.shop~shop.svc.cluster.local", true),
            ("sidecar~10.0.0.9~web-1.web~web.svc.cluster.local", false),
            ("router~10.0.0.9~gw-1.shop~shop.svc.cluster.local", false),
        ] {
            let node = if local {
                crate::xds::generate::proxy::tests::local_node(id)
            } else {
                Node {
                    id: id.into(),
                    ..Default::default()
                }
            };
            let proxy = Proxy::from_node(&node).expect("proxy");
            for name in ["80", "81", "080", "nonsense"] {
                let message = route_configuration(&snap, &proxy, name);
                let bytes = encoded_route_configuration(&snap, &proxy, name);
                let decoded = RouteConfiguration::decode(bytes.as_slice()).expect("decodes");
                assert_eq!(decoded, message, "{id} {name}");
                shapes.extend(message.virtual_hosts.iter().map(|v| {
                    let routes: Vec<_> = v.routes.iter().map(|r| r.name.clone()).collect();
                    (v.name.clone(), v.domains.len(), routes)
                }));
            }
        }
        // The cases above are all there to compare.
        let has = |name: &str| shapes.iter().any(|(n, _, _)| n == name);
        for name in [
            "a.shop.svc.cluster.local:80",
            "hashed.web.svc.cluster.local:80",
            "ruled.web.svc.cluster.local:80",
            "through.example.com:80",
            "b.web.svc.cluster.local:80:80",
        ] {
            assert!(has(name), "{name} in {shapes:?}");
        }
        assert!(
            shapes.iter().any(|(_, _, r)| r.len() > 1),
            "a virtual host with several routes: {shapes:?}"
        );
        let web = Proxy::from_node(&Node {
            id: "sidecar~10.0.0.9~web-1.web~web.svc.cluster.local".into(),
            ..Default::default()
        })
        .expect("proxy");
        let web_routes = route_configuration(&snap, &web, "80");
        let host = |name: &str| {
            web_routes
                .virtual_hosts
                .iter()
                .find(|v| v.name == name)
                .cloned()
                .unwrap_or_default()
        };
        // `b.web.svc.cluster.local:80`, written as a host, and the port form
        // of `b.web.svc.cluster.local` are one domain: the first service by
        // hostname keeps it.
        assert!(host("b.web.svc.cluster.local:80")
            .domains
            .contains(&"b.web.svc.cluster.local:80".to_string()));
        assert_eq!(
            host("b.web.svc.cluster.local:80:80").domains,
            ["b.web.svc.cluster.local:80:80"]
        );
        let policy = |name: &str| {
            host(name)
                .routes
                .into_iter()
                .next()
                .and_then(|r| match r.action {
                    Some(route::Action::Route(a)) => Some(a.hash_policy.len()),
                    _ => None,
                })
        };
        assert_eq!(policy("hashed.web.svc.cluster.local:80"), Some(1));
        assert_eq!(policy("b.web.svc.cluster.local:80"), Some(0));
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
        let snap = crate::snapshot::testing::snapshot_of(&format!(
            "{}{}",
            entry("long", "reviews.shop.svc.cluster.local"),
            entry("short", "reviews.shop")
        ));
        let node = crate::xds::generate::proxy::tests::local_node(
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

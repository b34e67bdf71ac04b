//! Routes: one route configuration per HTTP port, a virtual host per service
//! on that port, VirtualService rules translated into Envoy routes.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use mesh_model::istio::{HttpMatchRequest, HttpRoute, HttpRouteDestination, StringMatch};
use mesh_model::{Hostname, MeshSnapshot, Service};
use xds_proto::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, route, route_action::ClusterSpecifier,
    route_match::PathSpecifier, weighted_cluster::ClusterWeight, HeaderMatcher, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
};
use xds_proto::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use xds_proto::protobuf::{BoolValue, UInt32Value};

use super::common::duration;
use super::generate::digest;
use super::names::{route_config_name, ClusterName, PASSTHROUGH_CLUSTER};
use super::proxy::Proxy;

/// The route configuration a proxy asked for by name. Names that are not a
/// port this snapshot knows get an empty configuration.
pub fn route_configuration(snap: &MeshSnapshot, proxy: &Proxy, name: &str) -> RouteConfiguration {
    let mut rc = RouteConfiguration {
        name: name.to_string(),
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    };
    let Ok(port) = name.parse::<u16>() else {
        return rc;
    };
    if route_config_name(port) != name {
        return rc;
    }
    let services: Vec<(&Service, Vec<String>)> = snap
        .services
        .values()
        .filter(|svc| svc.port(port).is_some_and(|p| p.protocol.is_http()))
        .map(|svc| {
            let d = domains(svc, port, proxy.namespace(), &snap.domain);
            (svc.as_ref(), d)
        })
        .collect();
    // Envoy rejects a route configuration in which two virtual hosts share a
    // domain; the first service to claim one keeps it.
    let total: usize = services.iter().map(|(_, d)| d.len()).sum();
    let mut used_domains: HashSet<&str, BuildHasherDefault<WordHasher>> =
        HashSet::with_capacity_and_hasher(total, BuildHasherDefault::default());
    rc.virtual_hosts.reserve(services.len() + 1);
    let keep: Vec<Vec<bool>> = services
        .iter()
        .map(|(_, ds)| ds.iter().map(|d| used_domains.insert(d.as_str())).collect())
        .collect();
    for ((svc, all), keep) in services.into_iter().zip(keep) {
        let domains: Vec<String> = all
            .into_iter()
            .zip(keep)
            .filter_map(|(d, k)| k.then_some(d))
            .collect();
        if domains.is_empty() {
            continue;
        }
        rc.virtual_hosts.push(VirtualHost {
            name: format!("{}:{port}", svc.hostname),
            domains,
            routes: routes(snap, svc, port, proxy.namespace()),
            ..Default::default()
        });
    }
    rc.virtual_hosts.push(VirtualHost {
        name: "allow_any".to_string(),
        domains: vec!["*".to_string()],
        routes: vec![Route {
            name: "allow_any".to_string(),
            r#match: Some(prefix_match("/")),
            action: Some(route::Action::Route(cluster_action(
                PASSTHROUGH_CLUSTER.to_string(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    });
    rc
}

/// The Host header values that reach a service: the hostname, and for
/// Kubernetes-style names the shorter forms, each also with `:port`.
fn domains(svc: &Service, port: u16, proxy_namespace: &str, domain: &str) -> Vec<String> {
    let mut names = vec![svc.hostname.to_string()];
    if let Some((name, namespace)) = svc.hostname.kubernetes_parts(domain) {
        names.push(format!("{name}.{namespace}.svc"));
        names.push(format!("{name}.{namespace}"));
        if namespace == proxy_namespace {
            names.push(name.to_string());
        }
    }
    names
        .into_iter()
        .flat_map(|n| [format!("{n}:{port}"), n])
        .collect()
}

fn routes(snap: &MeshSnapshot, svc: &Service, port: u16, proxy_namespace: &str) -> Vec<Route> {
    let mut out = Vec::new();
    for vs in snap.virtual_services_for(&svc.hostname, proxy_namespace) {
        for http in &vs.spec.http {
            out.extend(translate(snap, &vs.meta.namespace, svc, port, http));
        }
    }
    if out.is_empty() {
        out.push(Route {
            name: "default".to_string(),
            r#match: Some(prefix_match("/")),
            action: Some(route::Action::Route(cluster_action(
                ClusterName::outbound(port, "", &svc.hostname).to_string(),
            ))),
            ..Default::default()
        });
    }
    out
}

/// One Envoy route per match of the rule (matches are ORed); a rule without
/// matches catches everything.
fn translate(
    snap: &MeshSnapshot,
    vs_namespace: &str,
    svc: &Service,
    port: u16,
    http: &HttpRoute,
) -> Vec<Route> {
    let action = route_action(snap, vs_namespace, svc, port, &http.route);
    let matches: Vec<RouteMatch> = if http.matches.is_empty() {
        vec![prefix_match("/")]
    } else {
        http.matches.iter().map(route_match).collect()
    };
    matches
        .into_iter()
        .map(|m| Route {
            name: http.name.clone(),
            r#match: Some(m),
            action: Some(route::Action::Route(action.clone())),
            ..Default::default()
        })
        .collect()
}

fn route_action(
    snap: &MeshSnapshot,
    vs_namespace: &str,
    svc: &Service,
    port: u16,
    destinations: &[HttpRouteDestination],
) -> RouteAction {
    let cluster = |d: &HttpRouteDestination| {
        let host = Hostname::resolve(&d.destination.host, vs_namespace, &snap.domain);
        let dest_port = match &d.destination.port {
            Some(p) => u16::try_from(p.number).unwrap_or(port),
            // Without a port, a single-port destination means that port;
            // otherwise the port the request came in on.
            None => match snap.service(&host) {
                Some(s) if s.ports.len() == 1 => s.ports[0].port,
                _ => port,
            },
        };
        ClusterName::outbound(dest_port, &d.destination.subset, &host).to_string()
    };
    match destinations {
        [only] => cluster_action(cluster(only)),
        [] => cluster_action(ClusterName::outbound(port, "", &svc.hostname).to_string()),
        many => RouteAction {
            cluster_specifier: Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
                clusters: many
                    .iter()
                    .filter(|d| d.weight > 0)
                    .map(|d| ClusterWeight {
                        name: cluster(d),
                        weight: Some(UInt32Value { value: d.weight }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })),
            timeout: Some(duration(std::time::Duration::ZERO)),
            ..Default::default()
        },
    }
}

fn cluster_action(cluster: String) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster)),
        // Istio disables Envoy's 15 s default route timeout unless a
        // VirtualService sets one.
        timeout: Some(duration(std::time::Duration::ZERO)),
        ..Default::default()
    }
}

fn prefix_match(prefix: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(prefix.to_string())),
        ..Default::default()
    }
}

fn string_matcher(m: &StringMatch) -> StringMatcher {
    let pattern = match m {
        StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
        StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
        StringMatch::Regex(s) => MatchPattern::SafeRegex(RegexMatcher {
            regex: s.clone(),
            ..Default::default()
        }),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    }
}

fn route_match(m: &HttpMatchRequest) -> RouteMatch {
    let path_specifier = match &m.uri {
        None => PathSpecifier::Prefix("/".to_string()),
        Some(StringMatch::Exact(s)) => PathSpecifier::Path(s.clone()),
        Some(StringMatch::Prefix(s)) => PathSpecifier::Prefix(s.clone()),
        Some(StringMatch::Regex(s)) => PathSpecifier::SafeRegex(RegexMatcher {
            regex: s.clone(),
            ..Default::default()
        }),
    };
    RouteMatch {
        path_specifier: Some(path_specifier),
        headers: m
            .headers
            .iter()
            .map(|(name, value)| HeaderMatcher {
                name: name.clone(),
                header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(string_matcher(
                    value,
                ))),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
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

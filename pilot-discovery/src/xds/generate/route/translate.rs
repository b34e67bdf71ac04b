//! One VirtualService HTTP rule as Envoy routes: its matches, then what to
//! do (forward, redirect or answer) and the policies on the way.

use std::time::Duration;

use mesh_model::istio::virtual_service::{Headers, HttpDirectResponse, HttpRedirect, HttpRewrite};
use mesh_model::istio::{Destination, HttpRoute, HttpRouteDestination, VirtualService};
use mesh_model::{Config, Hostname, MeshSnapshot};
use xds_proto::pb::envoy::config::route::v3::{
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    route,
    route_action::{ClusterSpecifier, HostRewriteSpecifier, RequestMirrorPolicy},
    weighted_cluster::ClusterWeight,
    DirectResponseAction, RedirectAction, Route, RouteAction, RouteMatch, WeightedCluster,
};
use xds_proto::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use xds_proto::protobuf::UInt32Value;

use super::action::direct;
use super::matching::{self, prefix_match};
use super::policy;
use crate::xds::generate::cluster_policy;
use crate::xds::generate::common::duration;
use crate::xds::generate::names::ClusterName;

/// Where the rule sits: the listener port it serves and the namespace of
/// its VirtualService (short destination hosts resolve there).
pub struct RouteContext<'a> {
    pub snap: &'a MeshSnapshot,
    pub vs_namespace: &'a str,
    pub port: u16,
}

impl RouteContext<'_> {
    /// The cluster of a destination. Without a port, a single-port service
    /// means that port; otherwise the port the request came in on.
    fn cluster(&self, d: &Destination) -> (Hostname, u16, ClusterName) {
        let host = Hostname::resolve(&d.host, self.vs_namespace, &self.snap.domain);
        let port = match &d.port {
            Some(p) => u16::try_from(p.number).unwrap_or(self.port),
            None => match self.snap.service(&host) {
                Some(s) if s.ports.len() == 1 => s.ports[0].port,
                _ => self.port,
            },
        };
        let name = ClusterName::outbound(port, &d.subset, &host);
        (host, port, name)
    }
}

/// The routes of every HTTP rule of `vs`, for a listener on `port`.
pub fn virtual_service_routes<'a>(
    snap: &'a MeshSnapshot,
    vs: &'a Config<VirtualService>,
    port: u16,
) -> impl Iterator<Item = Route> + 'a {
    vs.spec.http.iter().flat_map(move |http| {
        let ctx = RouteContext {
            snap,
            vs_namespace: &vs.meta.namespace,
            port,
        };
        translate(&ctx, http)
    })
}

/// One Envoy route per match of the rule (matches are ORed); a rule without
/// matches catches everything. Matches for another port give no route.
pub fn translate(ctx: &RouteContext<'_>, http: &HttpRoute) -> Vec<Route> {
    let matches: Vec<RouteMatch> = if http.matches.is_empty() {
        vec![prefix_match("/")]
    } else {
        http.matches
            .iter()
            .filter_map(|m| matching::route_match(m, ctx.port))
            .collect()
    };
    if matches.is_empty() {
        return Vec::new();
    }
    let template = route_template(ctx, http);
    matches
        .into_iter()
        .map(|m| Route {
            r#match: Some(m),
            ..template.clone()
        })
        .collect()
}

fn route_template(ctx: &RouteContext<'_>, http: &HttpRoute) -> Route {
    let action = if let Some(r) = &http.redirect {
        route::Action::Redirect(redirect(r))
    } else if let Some(d) = &http.direct_response {
        route::Action::DirectResponse(direct_response(d))
    } else {
        route::Action::Route(forward(ctx, http))
    };
    let headers = route_headers(http);
    let (request_add, request_remove) = policy::header_edits(headers.request.as_ref());
    let (response_add, response_remove) = policy::header_edits(headers.response.as_ref());
    Route {
        name: http.name.clone(),
        action: Some(action),
        typed_per_filter_config: policy::per_filter_config(
            http.fault.as_ref().map(policy::fault),
            http.cors_policy.as_ref().map(policy::cors),
        ),
        request_headers_to_add: request_add,
        request_headers_to_remove: request_remove,
        response_headers_to_add: response_add,
        response_headers_to_remove: response_remove,
        ..Default::default()
    }
}

/// The rule's header edits; with one destination, that destination's edits
/// join them (Envoy has no per-cluster edits outside a weighted split).
fn route_headers(http: &HttpRoute) -> Headers {
    let mut out = http.headers.clone().unwrap_or_default();
    if let [only] = http.route.as_slice() {
        if let Some(h) = &only.headers {
            for (mine, theirs) in [
                (&mut out.request, &h.request),
                (&mut out.response, &h.response),
            ] {
                let Some(theirs) = theirs else { continue };
                let mine = mine.get_or_insert_with(Default::default);
                mine.set.extend(theirs.set.clone());
                mine.add.extend(theirs.add.clone());
                mine.remove.extend(theirs.remove.iter().cloned());
            }
        }
    }
    out
}

fn forward(ctx: &RouteContext<'_>, http: &HttpRoute) -> RouteAction {
    let mut action = RouteAction {
        // Istio disables Envoy's 15 s default route timeout unless a
        // VirtualService sets one.
        timeout: Some(duration(http.timeout.map_or(Duration::ZERO, |t| t.get()))),
        retry_policy: policy::retry_policy(http.retries.as_ref()),
        ..Default::default()
    };
    action.cluster_specifier = Some(match http.route.as_slice() {
        [only] => ClusterSpecifier::Cluster(ctx.cluster(&only.destination).2.to_string()),
        many => ClusterSpecifier::WeightedClusters(weighted(ctx, many)),
    });
    action.hash_policy = hash_policy(ctx, &http.route);
    if let Some(m) = &http.mirror {
        action.request_mirror_policies = vec![RequestMirrorPolicy {
            cluster: ctx.cluster(m).2.to_string(),
            runtime_fraction: Some(policy::runtime_fraction(http.mirror_percentage, 100.0)),
            ..Default::default()
        }];
    }
    if let Some(rw) = &http.rewrite {
        rewrite(&mut action, rw);
    }
    action
}

fn weighted(ctx: &RouteContext<'_>, many: &[HttpRouteDestination]) -> WeightedCluster {
    WeightedCluster {
        clusters: many
            .iter()
            .filter(|d| d.weight > 0)
            .map(|d| {
                let h = d.headers.as_ref();
                let (request_add, request_remove) =
                    policy::header_edits(h.and_then(|h| h.request.as_ref()));
                let (response_add, response_remove) =
                    policy::header_edits(h.and_then(|h| h.response.as_ref()));
                ClusterWeight {
                    name: ctx.cluster(&d.destination).2.to_string(),
                    weight: Some(UInt32Value { value: d.weight }),
                    request_headers_to_add: request_add,
                    request_headers_to_remove: request_remove,
                    response_headers_to_add: response_add,
                    response_headers_to_remove: response_remove,
                    ..Default::default()
                }
            })
            .collect(),
        ..Default::default()
    }
}

/// The consistent-hash key of the rule's destinations. With several, a key
/// is used only when they all agree on it: a request hashed one way for one
/// cluster and another way for the next would not stick anywhere.
fn hash_policy(
    ctx: &RouteContext<'_>,
    dests: &[HttpRouteDestination],
) -> Vec<xds_proto::pb::envoy::config::route::v3::route_action::HashPolicy> {
    let mut keys = dests
        .iter()
        .filter(|d| d.weight > 0 || dests.len() == 1)
        .map(|d| {
            let (host, port, _) = ctx.cluster(&d.destination);
            cluster_policy::hash_policy(&cluster_policy::effective(
                ctx.snap,
                &host,
                &d.destination.subset,
                port,
            ))
        });
    let Some(first) = keys.next() else {
        return Vec::new();
    };
    if keys.all(|k| k == first) {
        first
    } else {
        Vec::new()
    }
}

/// `uri` replaces the matched prefix (the whole path for an exact match),
/// as Istio does.
fn rewrite(action: &mut RouteAction, rw: &HttpRewrite) {
    if !rw.uri.is_empty() {
        action.prefix_rewrite = rw.uri.clone();
    }
    if let Some(rr) = &rw.uri_regex_rewrite {
        action.regex_rewrite = Some(RegexMatchAndSubstitute {
            pattern: Some(matching::regex_matcher(&rr.pattern)),
            substitution: rr.rewrite.clone(),
        });
    }
    if !rw.authority.is_empty() {
        action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(
            rw.authority.clone(),
        ));
    }
}

fn redirect(r: &HttpRedirect) -> RedirectAction {
    let code = match r.redirect_code.unwrap_or(301) {
        302 => RedirectResponseCode::Found,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        _ => RedirectResponseCode::MovedPermanently,
    };
    RedirectAction {
        host_redirect: r.authority.clone(),
        port_redirect: r.port.unwrap_or(0),
        response_code: code as i32,
        scheme_rewrite_specifier: (!r.scheme.is_empty())
            .then(|| SchemeRewriteSpecifier::SchemeRedirect(r.scheme.clone())),
        path_rewrite_specifier: (!r.uri.is_empty())
            .then(|| PathRewriteSpecifier::PathRedirect(r.uri.clone())),
        ..Default::default()
    }
}

fn direct_response(d: &HttpDirectResponse) -> DirectResponseAction {
    direct(d.status, d.body.as_ref().map(|b| b.string.as_str()))
}

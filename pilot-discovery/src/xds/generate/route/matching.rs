//! VirtualService match conditions as Envoy route matches.

use mesh_model::istio::{HttpMatchRequest, PresenceMatch, StringMatch};
use xds_proto::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    route_match::PathSpecifier, HeaderMatcher, QueryParameterMatcher, RouteMatch,
};
use xds_proto::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use xds_proto::protobuf::BoolValue;

pub fn prefix_match(prefix: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(prefix.to_string())),
        ..Default::default()
    }
}

pub fn string_matcher(m: &StringMatch) -> StringMatcher {
    let pattern = match m {
        StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
        StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
        StringMatch::Regex(s) => MatchPattern::SafeRegex(regex_matcher(s)),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    }
}

pub fn regex_matcher(regex: &str) -> RegexMatcher {
    RegexMatcher {
        regex: regex.to_string(),
        ..Default::default()
    }
}

/// The Envoy match for one Istio match, or `None` when it names a port
/// other than the one this route configuration serves.
pub fn route_match(m: &HttpMatchRequest, port: u16) -> Option<RouteMatch> {
    if m.port.is_some_and(|p| p != u32::from(port)) {
        return None;
    }
    let path_specifier = match &m.uri {
        None => PathSpecifier::Prefix("/".to_string()),
        Some(StringMatch::Exact(s)) => PathSpecifier::Path(s.clone()),
        Some(StringMatch::Prefix(s)) => PathSpecifier::Prefix(s.clone()),
        Some(StringMatch::Regex(s)) => PathSpecifier::SafeRegex(regex_matcher(s)),
    };
    // Istio matches method, authority and scheme as pseudo-headers.
    let pseudo = [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ];
    let mut headers: Vec<HeaderMatcher> = pseudo
        .into_iter()
        .filter_map(|(name, v)| {
            v.as_ref()
                .map(|v| header_matcher(name, &PresenceMatch::Value(v.clone()), false))
        })
        .collect();
    headers.extend(
        m.headers
            .iter()
            .map(|(name, v)| header_matcher(name, v, false)),
    );
    headers.extend(
        m.without_headers
            .iter()
            .map(|(name, v)| header_matcher(name, v, true)),
    );
    Some(RouteMatch {
        path_specifier: Some(path_specifier),
        case_sensitive: m.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        query_parameters: m
            .query_params
            .iter()
            .map(|(name, v)| QueryParameterMatcher {
                name: name.clone(),
                query_parameter_match_specifier: Some(match v {
                    PresenceMatch::Present => QueryParameterMatchSpecifier::PresentMatch(true),
                    PresenceMatch::Value(v) => {
                        QueryParameterMatchSpecifier::StringMatch(string_matcher(v))
                    }
                }),
            })
            .collect(),
        ..Default::default()
    })
}

fn header_matcher(name: &str, m: &PresenceMatch, invert: bool) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_string(),
        invert_match: invert,
        header_match_specifier: Some(match m {
            PresenceMatch::Present => HeaderMatchSpecifier::PresentMatch(true),
            PresenceMatch::Value(v) => HeaderMatchSpecifier::StringMatch(string_matcher(v)),
        }),
        ..Default::default()
    }
}

//! Type URLs of the resources served over ADS.

pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// The order in which a full push sends resource types, so that Envoy sees a
/// cluster before its endpoints and a listener before its routes (Envoy's
/// "make before break" sequencing for ADS).
pub const PUSH_ORDER: [&str; 4] = [CLUSTER, ENDPOINT, LISTENER, ROUTE];

/// A short name for logs and metrics labels: `cds`, `eds`, `lds`, `rds`.
pub fn short_name(type_url: &str) -> &'static str {
    match type_url {
        CLUSTER => "cds",
        ENDPOINT => "eds",
        LISTENER => "lds",
        ROUTE => "rds",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::envoy::config::{
        cluster::v3::Cluster, endpoint::v3::ClusterLoadAssignment, listener::v3::Listener,
        route::v3::RouteConfiguration,
    };
    use prost::Name;

    #[test]
    fn constants_match_generated_type_urls() {
        assert_eq!(CLUSTER, Cluster::type_url());
        assert_eq!(ENDPOINT, ClusterLoadAssignment::type_url());
        assert_eq!(LISTENER, Listener::type_url());
        assert_eq!(ROUTE, RouteConfiguration::type_url());
    }

    #[test]
    fn short_names() {
        assert_eq!(short_name(ENDPOINT), "eds");
        assert_eq!(short_name("type.googleapis.com/nope"), "unknown");
    }
}

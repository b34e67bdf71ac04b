//! Type URLs of the resources served over ADS. What the server does with
//! each is pilot-discovery's generator table.

pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

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
}

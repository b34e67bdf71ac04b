//! The two actions every route generator needs: forward with Istio's
//! defaults, or answer directly.

use std::time::Duration;

use xds_proto::pb::envoy::config::core::v3::{data_source, DataSource};
use xds_proto::pb::envoy::config::route::v3::{
    route_action::ClusterSpecifier, DirectResponseAction, RouteAction,
};

use super::policy;
use crate::xds::generate::common::duration;

/// Forwarding to `cluster` with Istio's defaults: no route timeout, the
/// default retries.
pub fn default_action(cluster: String) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster)),
        timeout: Some(duration(Duration::ZERO)),
        retry_policy: policy::retry_policy(None),
        ..Default::default()
    }
}

/// Envoy answers by itself with `status` and `body`.
pub fn direct(status: u32, body: Option<&str>) -> DirectResponseAction {
    DirectResponseAction {
        status,
        body: body.map(|b| DataSource {
            specifier: Some(data_source::Specifier::InlineString(b.to_string())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

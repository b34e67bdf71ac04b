//! Dispatches a request for one resource type to its generator.

use std::collections::BTreeSet;

use mesh_model::MeshSnapshot;
use xds_proto::protobuf::Any;
use xds_proto::type_url;

use super::proxy::Proxy;
use super::{cds, eds, lds, rds};

/// Types served as wildcards: the proxy always receives all of them.
pub fn is_wildcard_type(type_url: &str) -> bool {
    matches!(type_url, type_url::CLUSTER | type_url::LISTENER)
}

pub fn is_known_type(t: &str) -> bool {
    matches!(
        t,
        type_url::CLUSTER | type_url::ENDPOINT | type_url::LISTENER | type_url::ROUTE
    )
}

/// The resources of `type_url` for `proxy`. `names` restricts EDS and RDS to
/// the resources the proxy subscribed to.
pub fn generate(
    snap: &MeshSnapshot,
    proxy: &Proxy,
    type_url: &str,
    names: &BTreeSet<String>,
) -> Vec<Any> {
    match type_url {
        type_url::CLUSTER => cds::clusters(snap, proxy)
            .iter()
            .map(xds_proto::pack)
            .collect(),
        type_url::LISTENER => lds::listeners(snap, proxy)
            .iter()
            .map(xds_proto::pack)
            .collect(),
        type_url::ENDPOINT => names
            .iter()
            .map(|n| xds_proto::pack(&eds::load_assignment(snap, n)))
            .collect(),
        type_url::ROUTE => names
            .iter()
            .map(|n| xds_proto::pack(&rds::route_configuration(snap, proxy, n)))
            .collect(),
        _ => Vec::new(),
    }
}

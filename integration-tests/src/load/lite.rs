//! Partial views of the xDS messages the load client receives. Each declares
//! only the fields the client reads; prost skips the rest without building
//! them, so the client spends little on resources it only needs to count.
//! Field numbers are Envoy's (`envoy/service/discovery/v3/discovery.proto`,
//! `cluster.proto`, `listener.proto`, `http_connection_manager.proto`).

use prost::bytes::Bytes;
use prost::Message;

/// `google.protobuf.Any`, value left encoded, as a view of the received
/// buffer rather than a copy.
#[derive(Clone, PartialEq, Message)]
pub struct LiteAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: prost::bytes::Bytes,
}

/// `DiscoveryResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct SotwResponse {
    #[prost(string, tag = "1")]
    pub version_info: String,
    #[prost(message, repeated, tag = "2")]
    pub resources: Vec<LiteAny>,
    #[prost(string, tag = "4")]
    pub type_url: String,
    #[prost(string, tag = "5")]
    pub nonce: String,
}

/// `Resource` in a delta response. Its name and version are not read (the
/// name is inside the resource), but they are decoded as views of the
/// received buffer, not as strings, so the bytes received are still counted
/// in full without an allocation per resource.
#[derive(Clone, PartialEq, Message)]
pub struct DeltaResource {
    #[prost(bytes = "bytes", tag = "1")]
    pub version: prost::bytes::Bytes,
    #[prost(message, optional, tag = "2")]
    pub resource: Option<LiteAny>,
    #[prost(bytes = "bytes", tag = "3")]
    pub name: prost::bytes::Bytes,
}

/// `DeltaDiscoveryResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct DeltaResponse {
    #[prost(string, tag = "1")]
    pub system_version_info: String,
    #[prost(message, repeated, tag = "2")]
    pub resources: Vec<DeltaResource>,
    #[prost(string, tag = "4")]
    pub type_url: String,
    #[prost(string, tag = "5")]
    pub nonce: String,
    #[prost(string, repeated, tag = "6")]
    pub removed_resources: Vec<String>,
}

// Names are read as bytes, not strings: views of the received response,
// with neither a copy nor a UTF-8 check per resource.

/// `Cluster`: its name and discovery type.
#[derive(Clone, PartialEq, Message)]
struct LiteCluster {
    #[prost(bytes = "bytes", tag = "1")]
    name: Bytes,
    #[prost(int32, tag = "2")]
    discovery_type: i32,
}

/// `Cluster.DiscoveryType.EDS`.
const EDS: i32 = 3;

/// The first field of `ClusterLoadAssignment`, `Listener` and
/// `RouteConfiguration` alike is the resource's name.
#[derive(Clone, PartialEq, Message)]
struct Named {
    #[prost(bytes = "bytes", tag = "1")]
    name: Bytes,
}

#[derive(Clone, PartialEq, Message)]
struct LiteListener {
    #[prost(bytes = "bytes", tag = "1")]
    name: Bytes,
    #[prost(message, repeated, tag = "3")]
    filter_chains: Vec<LiteFilterChain>,
}

#[derive(Clone, PartialEq, Message)]
struct LiteFilterChain {
    #[prost(message, repeated, tag = "3")]
    filters: Vec<LiteFilter>,
}

#[derive(Clone, PartialEq, Message)]
struct LiteFilter {
    #[prost(message, optional, tag = "4")]
    typed_config: Option<LiteAny>,
}

/// `HttpConnectionManager`: only `rds`.
#[derive(Clone, PartialEq, Message)]
struct LiteHcm {
    #[prost(message, optional, tag = "3")]
    rds: Option<LiteRds>,
}

#[derive(Clone, PartialEq, Message)]
struct LiteRds {
    #[prost(bytes = "bytes", tag = "2")]
    route_config_name: Bytes,
}

const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// What the client needs from one resource: its name and the names it makes
/// the proxy subscribe to next (EDS for an EDS cluster, RDS for a listener),
/// as views of the resource's encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub name: Bytes,
    pub needs: Vec<Bytes>,
}

/// Reads the facts of a resource of type `type_url` from its encoding.
pub fn facts(type_url: &str, bytes: &Bytes) -> Result<Facts, prost::DecodeError> {
    Ok(match type_url {
        xds_proto::type_url::CLUSTER => {
            let c = LiteCluster::decode(bytes.clone())?;
            let needs = if c.discovery_type == EDS {
                vec![c.name.clone()]
            } else {
                Vec::new()
            };
            Facts {
                name: c.name,
                needs,
            }
        }
        xds_proto::type_url::LISTENER => {
            let l = LiteListener::decode(bytes.clone())?;
            let mut needs = Vec::new();
            for f in l.filter_chains.iter().flat_map(|fc| &fc.filters) {
                if let Some(any) = f.typed_config.as_ref().filter(|a| a.type_url == HCM_TYPE) {
                    if let Some(rds) = LiteHcm::decode(any.value.clone())?.rds {
                        needs.push(rds.route_config_name);
                    }
                }
            }
            Facts {
                name: l.name,
                needs,
            }
        }
        _ => Facts {
            name: Named::decode(bytes.clone())?.name,
            needs: Vec::new(),
        },
    })
}

/// The server's own content digest: fast, non-cryptographic, eight bytes at
/// a time, so checking config equality costs the client little.
pub use pilot_discovery::xds::generate::digest;

#[cfg(test)]
mod tests {
    use super::*;
    use xds_proto::pb::envoy::config::cluster::v3::{
        cluster::{ClusterDiscoveryType, DiscoveryType},
        Cluster,
    };
    use xds_proto::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
    use xds_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        http_connection_manager::RouteSpecifier, HttpConnectionManager, Rds,
    };

    #[test]
    fn reads_names_and_dependencies_from_real_encodings() {
        let eds = Cluster {
            name: "outbound|80||a".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            ..Default::default()
        };
        let f = facts(xds_proto::type_url::CLUSTER, &eds.encode_to_vec().into()).expect("decodes");
        assert_eq!(f.name, "outbound|80||a");
        assert_eq!(f.needs, vec![Bytes::from("outbound|80||a")]);

        let stat = Cluster {
            name: "BlackHoleCluster".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
            ..Default::default()
        };
        let f = facts(xds_proto::type_url::CLUSTER, &stat.encode_to_vec().into()).expect("decodes");
        assert!(f.needs.is_empty());

        let hcm = HttpConnectionManager {
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                route_config_name: "80".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let l = Listener {
            name: "127.0.0.1_80".into(),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "hcm".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(xds_proto::pack(&hcm))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let f = facts(xds_proto::type_url::LISTENER, &l.encode_to_vec().into()).expect("decodes");
        assert_eq!(f.name, "127.0.0.1_80");
        assert_eq!(f.needs, vec![Bytes::from("80")]);
    }

    #[test]
    fn a_delta_response_is_counted_at_its_full_size() {
        use xds_proto::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, Resource};
        let full = DeltaDiscoveryResponse {
            system_version_info: "3".into(),
            resources: vec![Resource {
                name: "outbound|80||a".into(),
                version: "0123456789abcdef".into(),
                resource: Some(xds_proto::protobuf::Any {
                    type_url: xds_proto::type_url::CLUSTER.into(),
                    value: vec![1, 2, 3],
                }),
                ..Default::default()
            }],
            type_url: xds_proto::type_url::CLUSTER.into(),
            nonce: "n".into(),
            removed_resources: vec!["gone".into()],
            ..Default::default()
        };
        let bytes = full.encode_to_vec();
        let lite = DeltaResponse::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(lite.encoded_len(), bytes.len());
    }

    #[test]
    fn digest_tells_contents_apart() {
        assert_eq!(digest(b"abcdefghij"), digest(b"abcdefghij"));
        assert_ne!(digest(b"abcdefghij"), digest(b"abcdefghik"));
        assert_ne!(digest(b""), digest(b"\0"));
    }
}

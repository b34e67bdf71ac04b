//! The parts of the xDS messages the load client reads, read in place
//! (`scan.rs`): a response's envelope, and from each resource only its name
//! and the names it makes the proxy subscribe to. Nothing else of a
//! resource is decoded. Field numbers are Envoy's
//! (`envoy/service/discovery/v3/discovery.proto`, `cluster.proto`,
//! `listener.proto`, `http_connection_manager.proto`, and
//! `google/protobuf/any.proto`).

use super::scan::{bytes_field, fields, utf8, ScanError, Value};

/// A `DiscoveryResponse` or `DeltaDiscoveryResponse`, read in place. Both
/// put their resources in field 2 and their type URL and nonce in fields 4
/// and 5; a delta response wraps each resource in a `Resource`.
#[derive(Debug, Clone, Copy)]
pub struct ResponseView<'a> {
    buf: &'a [u8],
    delta: bool,
    /// `version_info` (state of the world) or `system_version_info`.
    pub version: &'a str,
    pub type_url: &'a str,
    pub nonce: &'a str,
}

mod field {
    pub const VERSION: u32 = 1;
    pub const RESOURCES: u32 = 2;
    pub const TYPE_URL: u32 = 4;
    pub const NONCE: u32 = 5;
    pub const DELTA_REMOVED: u32 = 6;
    /// `Resource.resource`, an `Any`.
    pub const RESOURCE_BODY: u32 = 2;
    pub const ANY_TYPE_URL: u32 = 1;
    pub const ANY_VALUE: u32 = 2;
}

impl<'a> ResponseView<'a> {
    /// A state-of-the-world response.
    pub fn sotw(buf: &'a [u8]) -> Result<Self, ScanError> {
        Self::read(buf, false)
    }

    /// A delta response.
    pub fn delta(buf: &'a [u8]) -> Result<Self, ScanError> {
        Self::read(buf, true)
    }

    fn read(buf: &'a [u8], delta: bool) -> Result<Self, ScanError> {
        let mut view = ResponseView {
            buf,
            delta,
            version: "",
            type_url: "",
            nonce: "",
        };
        for f in fields(buf) {
            if let (n, Value::Bytes(b)) = f? {
                match n {
                    field::VERSION => view.version = utf8(b, n)?,
                    field::TYPE_URL => view.type_url = utf8(b, n)?,
                    field::NONCE => view.nonce = utf8(b, n)?,
                    _ => {}
                }
            }
        }
        Ok(view)
    }

    /// The encoded value of each resource, in order. A delta `Resource`
    /// without a body is an error.
    pub fn resources(&self) -> impl Iterator<Item = Result<&'a [u8], ScanError>> + 'a {
        let delta = self.delta;
        fields(self.buf).filter_map(move |f| match f {
            Err(e) => Some(Err(e)),
            Ok((field::RESOURCES, Value::Bytes(b))) => Some(if delta {
                bytes_field(b, field::RESOURCE_BODY).and_then(|body| {
                    if body.is_empty() {
                        Err(ScanError::Missing(field::RESOURCE_BODY))
                    } else {
                        any_value(body)
                    }
                })
            } else {
                any_value(b)
            }),
            Ok(_) => None,
        })
    }

    /// The names a delta response removes.
    pub fn removed(&self) -> impl Iterator<Item = Result<&'a [u8], ScanError>> + 'a {
        let delta = self.delta;
        fields(self.buf).filter_map(move |f| match f {
            Err(e) => Some(Err(e)),
            Ok((field::DELTA_REMOVED, Value::Bytes(b))) if delta => Some(Ok(b)),
            Ok(_) => None,
        })
    }

    /// The response's encoded size.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// The value of an `Any`.
fn any_value(any: &[u8]) -> Result<&[u8], ScanError> {
    bytes_field(any, field::ANY_VALUE)
}

/// `Cluster.name`, `Cluster.type`, and its value for EDS.
const CLUSTER_NAME: u32 = 1;
const CLUSTER_TYPE: u32 = 2;
const EDS: u64 = 3;
/// `Listener.name`, `.filter_chains`; `FilterChain.filters`;
/// `Filter.typed_config`; `HttpConnectionManager.rds`;
/// `Rds.route_config_name`.
const LISTENER_NAME: u32 = 1;
const FILTER_CHAINS: u32 = 3;
const FILTERS: u32 = 3;
const TYPED_CONFIG: u32 = 4;
const HCM_RDS: u32 = 3;
const RDS_ROUTE_CONFIG_NAME: u32 = 2;
/// The first field of `ClusterLoadAssignment` and `RouteConfiguration`
/// alike is the resource's name.
const NAME: u32 = 1;

const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// What the client needs from one resource: its name and the names it makes
/// the proxy subscribe to next (EDS for an EDS cluster, RDS for a listener),
/// as views of the resource's encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts<'a> {
    pub name: &'a [u8],
    pub needs: Vec<&'a [u8]>,
}

/// Reads the facts of a resource of type `type_url` from its encoding.
pub fn facts<'a>(type_url: &str, bytes: &'a [u8]) -> Result<Facts<'a>, ScanError> {
    match type_url {
        xds_proto::type_url::CLUSTER => {
            let (mut name, mut eds) = (&[][..], false);
            for f in fields(bytes) {
                match f? {
                    (CLUSTER_NAME, Value::Bytes(b)) => name = b,
                    (CLUSTER_TYPE, Value::Varint(v)) => eds = v == EDS,
                    _ => {}
                }
            }
            let needs = if eds { vec![name] } else { Vec::new() };
            Ok(Facts { name, needs })
        }
        xds_proto::type_url::LISTENER => {
            let (mut name, mut needs) = (&[][..], Vec::new());
            for f in fields(bytes) {
                match f? {
                    (LISTENER_NAME, Value::Bytes(b)) => name = b,
                    (FILTER_CHAINS, Value::Bytes(chain)) => route_names(chain, &mut needs)?,
                    _ => {}
                }
            }
            Ok(Facts { name, needs })
        }
        _ => Ok(Facts {
            name: bytes_field(bytes, NAME)?,
            needs: Vec::new(),
        }),
    }
}

/// The RDS route configurations the HTTP connection managers of one
/// filter chain name.
fn route_names<'a>(chain: &'a [u8], out: &mut Vec<&'a [u8]>) -> Result<(), ScanError> {
    for f in fields(chain) {
        let (FILTERS, Value::Bytes(filter)) = f? else {
            continue;
        };
        let any = bytes_field(filter, TYPED_CONFIG)?;
        if bytes_field(any, field::ANY_TYPE_URL)? != HCM_TYPE.as_bytes() {
            continue;
        }
        let rds = bytes_field(any_value(any)?, HCM_RDS)?;
        if !rds.is_empty() {
            out.push(bytes_field(rds, RDS_ROUTE_CONFIG_NAME)?);
        }
    }
    Ok(())
}

/// The server's own content digest: fast, non-cryptographic, eight bytes at
/// a time, so checking config equality costs the client little.
pub use pilot_discovery::xds::digest::digest;

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use xds_proto::pb::envoy::config::cluster::v3::{
        cluster::{ClusterDiscoveryType, DiscoveryType},
        Cluster,
    };
    use xds_proto::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
    use xds_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        http_connection_manager::RouteSpecifier, HttpConnectionManager, Rds,
    };
    use xds_proto::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
    use xds_proto::pb::envoy::service::discovery::v3::{
        DeltaDiscoveryResponse, DiscoveryResponse, Resource,
    };
    use xds_proto::protobuf::Any;

    #[test]
    fn reads_names_and_dependencies_from_real_encodings() {
        let eds = Cluster {
            name: "outbound|80||a".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            ..Default::default()
        }
        .encode_to_vec();
        let f = facts(xds_proto::type_url::CLUSTER, &eds).expect("decodes");
        assert_eq!(f.name, b"outbound|80||a");
        assert_eq!(f.needs, vec![&b"outbound|80||a"[..]]);

        let stat = Cluster {
            name: "BlackHoleCluster".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
            ..Default::default()
        }
        .encode_to_vec();
        let f = facts(xds_proto::type_url::CLUSTER, &stat).expect("decodes");
        assert_eq!(f.name, b"BlackHoleCluster");
        assert!(f.needs.is_empty());

        let hcm = |route: &str| Filter {
            name: "hcm".into(),
            config_type: Some(filter::ConfigType::TypedConfig(xds_proto::pack(
                &HttpConnectionManager {
                    route_specifier: Some(RouteSpecifier::Rds(Rds {
                        route_config_name: route.into(),
                        ..Default::default()
                    })),
                    ..Default::default()
                },
            ))),
        };
        let tcp = Filter {
            name: "tcp".into(),
            config_type: Some(filter::ConfigType::TypedConfig(xds_proto::pack(
                &TcpProxy {
                    stat_prefix: "80".into(),
                    ..Default::default()
                },
            ))),
        };
        let l = Listener {
            name: "127.0.0.1_80".into(),
            filter_chains: vec![
                FilterChain {
                    filters: vec![tcp, hcm("80")],
                    ..Default::default()
                },
                FilterChain {
                    filters: vec![hcm("8080")],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
        .encode_to_vec();
        let f = facts(xds_proto::type_url::LISTENER, &l).expect("decodes");
        assert_eq!(f.name, b"127.0.0.1_80");
        assert_eq!(f.needs, vec![&b"80"[..], &b"8080"[..]]);

        let cut = &l[..l.len() - 1];
        assert!(facts(xds_proto::type_url::LISTENER, cut).is_err());
    }

    fn any(type_url: &str, value: &[u8]) -> Any {
        Any {
            type_url: type_url.into(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn reads_the_envelope_and_resources_of_both_responses() {
        let sotw = DiscoveryResponse {
            version_info: "7".into(),
            resources: vec![any(xds_proto::type_url::CLUSTER, b"one"), any("t", b"two")],
            type_url: xds_proto::type_url::CLUSTER.into(),
            nonce: "n-1".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let v = ResponseView::sotw(&sotw).expect("reads");
        assert_eq!(
            (v.version, v.type_url, v.nonce),
            ("7", xds_proto::type_url::CLUSTER, "n-1")
        );
        let values: Vec<&[u8]> = v.resources().collect::<Result<_, _>>().expect("reads");
        assert_eq!(values, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(v.removed().count(), 0);
        assert_eq!(v.len(), sotw.len());

        let resource = |name: &str, value: &[u8]| Resource {
            name: name.into(),
            version: "0123456789abcdef".into(),
            resource: Some(any(xds_proto::type_url::CLUSTER, value)),
            ..Default::default()
        };
        let mut delta = DeltaDiscoveryResponse {
            system_version_info: "3".into(),
            resources: vec![resource("a", b"aaa"), resource("b", b"bbb")],
            type_url: xds_proto::type_url::CLUSTER.into(),
            nonce: "n-2".into(),
            removed_resources: vec!["gone".into(), "also-gone".into()],
            ..Default::default()
        };
        let buf = delta.encode_to_vec();
        let v = ResponseView::delta(&buf).expect("reads");
        assert_eq!((v.version, v.nonce), ("3", "n-2"));
        let values: Vec<&[u8]> = v.resources().collect::<Result<_, _>>().expect("reads");
        assert_eq!(values, vec![&b"aaa"[..], &b"bbb"[..]]);
        let removed: Vec<&[u8]> = v.removed().collect::<Result<_, _>>().expect("reads");
        assert_eq!(removed, vec![&b"gone"[..], &b"also-gone"[..]]);

        delta.resources.push(Resource {
            name: "empty".into(),
            ..Default::default()
        });
        let buf = delta.encode_to_vec();
        let v = ResponseView::delta(&buf).expect("reads");
        assert_eq!(
            v.resources().last(),
            Some(Err(ScanError::Missing(2))),
            "a resource without a body"
        );
    }

    #[test]
    fn digest_tells_contents_apart() {
        assert_eq!(digest(b"abcdefghij"), digest(b"abcdefghij"));
        assert_ne!(digest(b"abcdefghij"), digest(b"abcdefghik"));
        assert_ne!(digest(b""), digest(b"\0"));
    }
}

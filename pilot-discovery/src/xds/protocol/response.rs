//! The responses a stream sends, written to the wire straight from the
//! shared generated resources.
//!
//! A resource is generated and encoded once per snapshot and sent to every
//! proxy that needs it. Envoy's own response messages own their contents,
//! so building one copied every resource's bytes, name, version and type
//! URL into a message per proxy, only for the framing to copy them again
//! and then free them all. With a thousand proxies connecting that was a
//! quarter of the server's work, and the copies in flight were most of its
//! memory peak. These responses hold the shared resources and write their
//! fields in place, in the layout of `DiscoveryResponse` and
//! `DeltaDiscoveryResponse` (envoy.service.discovery.v3).

use std::sync::Arc;

use super::encode::Encode;
use crate::xds::generate::named::Named;
use crate::xds::wire::{bytes_len, nested_len, put_bytes, put_nested, put_string, string_len};

/// A state-of-the-world `DiscoveryResponse`.
#[derive(Debug, Clone, Default)]
pub struct SotwResponse {
    pub version_info: String,
    pub resources: Vec<Arc<Named>>,
    pub type_url: String,
    pub nonce: String,
}

/// A `DeltaDiscoveryResponse`; each resource goes in a `Resource` envelope
/// with its name and version.
#[derive(Debug, Clone, Default)]
pub struct DeltaResponse {
    pub system_version_info: String,
    pub resources: Vec<Arc<Named>>,
    pub type_url: String,
    pub removed_resources: Vec<String>,
    pub nonce: String,
}

// Field numbers, from envoy/service/discovery/v3/discovery.proto and
// google/protobuf/any.proto.
mod field {
    pub const SOTW_VERSION_INFO: u32 = 1;
    pub const SOTW_RESOURCES: u32 = 2;
    pub const SOTW_TYPE_URL: u32 = 4;
    pub const SOTW_NONCE: u32 = 5;

    pub const DELTA_SYSTEM_VERSION_INFO: u32 = 1;
    pub const DELTA_RESOURCES: u32 = 2;
    pub const DELTA_TYPE_URL: u32 = 4;
    pub const DELTA_NONCE: u32 = 5;
    pub const DELTA_REMOVED_RESOURCES: u32 = 6;

    pub const RESOURCE_VERSION: u32 = 1;
    pub const RESOURCE_RESOURCE: u32 = 2;
    pub const RESOURCE_NAME: u32 = 3;

    pub const ANY_TYPE_URL: u32 = 1;
    pub const ANY_VALUE: u32 = 2;
}

/// Length of a resource's version: its digest in hex (`Named::version`).
const VERSION_LEN: usize = 16;

// Both responses are written in parts (`grpc::Encode`): a head (the
// version), one part per resource, and a tail (the type URL, the nonce and,
// for delta, the removed names).
impl Encode for SotwResponse {
    fn parts(&self) -> usize {
        self.resources.len() + 2
    }

    fn part_len(&self, i: usize) -> usize {
        match self.resources.get(i.wrapping_sub(1)) {
            Some(r) => nested_len(field::SOTW_RESOURCES, any_len(r)),
            None if i == 0 => string_len(field::SOTW_VERSION_INFO, &self.version_info),
            None => {
                string_len(field::SOTW_TYPE_URL, &self.type_url)
                    + string_len(field::SOTW_NONCE, &self.nonce)
            }
        }
    }

    fn encode_part(&self, i: usize, buf: &mut Vec<u8>) {
        match self.resources.get(i.wrapping_sub(1)) {
            Some(r) => {
                put_nested(buf, field::SOTW_RESOURCES, any_len(r));
                put_any(buf, r);
            }
            None if i == 0 => put_string(buf, field::SOTW_VERSION_INFO, &self.version_info),
            None => {
                put_string(buf, field::SOTW_TYPE_URL, &self.type_url);
                put_string(buf, field::SOTW_NONCE, &self.nonce);
            }
        }
    }
}

impl Encode for DeltaResponse {
    fn parts(&self) -> usize {
        self.resources.len() + 2
    }

    fn part_len(&self, i: usize) -> usize {
        match self.resources.get(i.wrapping_sub(1)) {
            Some(r) => nested_len(field::DELTA_RESOURCES, envelope_len(r)),
            None if i == 0 => {
                string_len(field::DELTA_SYSTEM_VERSION_INFO, &self.system_version_info)
            }
            None => {
                string_len(field::DELTA_TYPE_URL, &self.type_url)
                    + string_len(field::DELTA_NONCE, &self.nonce)
                    + self
                        .removed_resources
                        .iter()
                        .map(|n| nested_len(field::DELTA_REMOVED_RESOURCES, n.len()))
                        .sum::<usize>()
            }
        }
    }

    fn encode_part(&self, i: usize, buf: &mut Vec<u8>) {
        match self.resources.get(i.wrapping_sub(1)) {
            Some(r) => {
                put_nested(buf, field::DELTA_RESOURCES, envelope_len(r));
                put_envelope(buf, r);
            }
            None if i == 0 => put_string(
                buf,
                field::DELTA_SYSTEM_VERSION_INFO,
                &self.system_version_info,
            ),
            None => {
                put_string(buf, field::DELTA_TYPE_URL, &self.type_url);
                put_string(buf, field::DELTA_NONCE, &self.nonce);
                // Every element of a repeated field is written, empty or not.
                for n in &self.removed_resources {
                    put_nested(buf, field::DELTA_REMOVED_RESOURCES, n.len());
                    buf.extend_from_slice(n.as_bytes());
                }
            }
        }
    }
}

/// The `Resource` envelope: version, the resource as an `Any`, name.
fn envelope_len(r: &Named) -> usize {
    nested_len(field::RESOURCE_VERSION, VERSION_LEN)
        + nested_len(field::RESOURCE_RESOURCE, any_len(r))
        + string_len(field::RESOURCE_NAME, &r.name)
}

fn put_envelope(buf: &mut Vec<u8>, r: &Named) {
    put_nested(buf, field::RESOURCE_VERSION, VERSION_LEN);
    put_hex(buf, r.digest);
    put_nested(buf, field::RESOURCE_RESOURCE, any_len(r));
    put_any(buf, r);
    put_string(buf, field::RESOURCE_NAME, &r.name);
}

fn any_len(r: &Named) -> usize {
    string_len(field::ANY_TYPE_URL, &r.resource.type_url)
        + bytes_len(field::ANY_VALUE, &r.resource.value)
}

fn put_any(buf: &mut Vec<u8>, r: &Named) {
    put_string(buf, field::ANY_TYPE_URL, &r.resource.type_url);
    put_bytes(buf, field::ANY_VALUE, &r.resource.value);
}

/// `digest` as 16 lowercase hex digits, as `Named::version` spells it.
fn put_hex(buf: &mut Vec<u8>, digest: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..VERSION_LEN).rev() {
        buf.push(DIGITS[((digest >> (4 * shift)) & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use xds_proto::pb::envoy::service::discovery::v3::{
        DeltaDiscoveryResponse, DiscoveryResponse, Resource,
    };
    use xds_proto::protobuf::Any;

    fn named(name: &str, type_url: &str, value: Vec<u8>) -> Arc<Named> {
        Arc::new(Named::new(
            name,
            Any {
                type_url: type_url.to_string(),
                value,
            },
        ))
    }

    /// Resources of every size class a varint length can take, and the
    /// empty edge cases protobuf leaves out.
    fn resources() -> Vec<Arc<Named>> {
        vec![
            named("a", "type.googleapis.com/x.Y", vec![1, 2, 3]),
            named("", "type.googleapis.com/x.Y", Vec::new()),
            named(&"n".repeat(200), "t", vec![7; 127]),
            named("big", "type.googleapis.com/x.Y", vec![9; 128]),
            named("bigger", "type.googleapis.com/x.Y", vec![5; 70_000]),
        ]
    }

    /// `m` encoded part by part, each part checked against its measure.
    fn encoded(m: &impl Encode) -> Vec<u8> {
        let mut buf = Vec::with_capacity(m.encoded_len());
        for i in 0..m.parts() {
            let before = buf.len();
            m.encode_part(i, &mut buf);
            assert_eq!(
                buf.len() - before,
                m.part_len(i),
                "part {i} measured exactly"
            );
        }
        assert_eq!(buf.len(), m.encoded_len(), "encoded_len is exact");
        buf
    }

    #[test]
    fn a_sotw_response_decodes_as_envoys_message() {
        let r = SotwResponse {
            version_info: "7".into(),
            resources: resources(),
            type_url: "type.googleapis.com/x.Y".into(),
            nonce: "n-1".into(),
        };
        let got = DiscoveryResponse::decode(encoded(&r).as_slice()).expect("decodes");
        let want = DiscoveryResponse {
            version_info: "7".into(),
            resources: r.resources.iter().map(|n| n.resource.clone()).collect(),
            type_url: r.type_url.clone(),
            nonce: "n-1".into(),
            ..Default::default()
        };
        assert_eq!(got, want);
        assert_eq!(encoded(&SotwResponse::default()), Vec::<u8>::new());
    }

    #[test]
    fn a_delta_response_decodes_as_envoys_message() {
        let r = DeltaResponse {
            system_version_info: "12".into(),
            resources: resources(),
            type_url: "type.googleapis.com/x.Y".into(),
            removed_resources: vec!["gone".into(), String::new(), "x".repeat(300)],
            nonce: "n-2".into(),
        };
        let got = DeltaDiscoveryResponse::decode(encoded(&r).as_slice()).expect("decodes");
        let want = DeltaDiscoveryResponse {
            system_version_info: "12".into(),
            resources: r
                .resources
                .iter()
                .map(|n| Resource {
                    name: n.name.to_string(),
                    version: n.version(),
                    resource: Some(n.resource.clone()),
                    ..Default::default()
                })
                .collect(),
            type_url: r.type_url.clone(),
            removed_resources: r.removed_resources.clone(),
            nonce: "n-2".into(),
            ..Default::default()
        };
        assert_eq!(got, want);
    }
}

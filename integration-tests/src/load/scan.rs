//! Protocol buffer fields read in place: a message's top-level fields as
//! views of its encoding, with nothing decoded that is not asked for and
//! nothing allocated. The load client reads six thousand resources per
//! proxy this way; building prost structs of them, even partial ones, was
//! an allocation and a reference count per field per resource.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScanError {
    #[error("a field runs past the end of its message")]
    Truncated,
    #[error("a varint longer than ten bytes")]
    LongVarint,
    #[error("wire type {0} (groups are not used by xDS)")]
    WireType(u32),
    #[error("field {0} is not valid UTF-8")]
    Utf8(u32),
    #[error("field {0} is missing or empty")]
    Missing(u32),
}

/// One field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    /// Strings, bytes and messages.
    Bytes(&'a [u8]),
    /// Fixed 32- and 64-bit values, which nothing here reads.
    Fixed,
}

/// The fields of one message, in the order written.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a [u8],
}

/// The top-level fields of the message encoded in `buf`.
pub fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { rest: buf }
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, ScanError> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.rest.split_first().ok_or(ScanError::Truncated)?;
            self.rest = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ScanError::LongVarint)
    }

    fn skip(&mut self, n: usize) -> Result<&'a [u8], ScanError> {
        if n > self.rest.len() {
            return Err(ScanError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), ScanError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).unwrap_or(u32::MAX);
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.skip(8)?;
                Value::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| ScanError::Truncated)?;
                Value::Bytes(self.skip(len)?)
            }
            5 => {
                self.skip(4)?;
                Value::Fixed
            }
            other => return Err(ScanError::WireType(other as u32)),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), ScanError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = self.field();
        if item.is_err() {
            // Nothing after a malformed field can be trusted.
            self.rest = &[];
        }
        Some(item)
    }
}

/// Field `number` of `buf` as bytes: the last occurrence, as protobuf
/// reads a singular field, or empty when absent.
pub fn bytes_field(buf: &[u8], number: u32) -> Result<&[u8], ScanError> {
    let mut found: &[u8] = &[];
    for f in fields(buf) {
        if let (n, Value::Bytes(b)) = f? {
            if n == number {
                found = b;
            }
        }
    }
    Ok(found)
}

/// `b`, a string field's bytes, as a string.
pub fn utf8(b: &[u8], number: u32) -> Result<&str, ScanError> {
    std::str::from_utf8(b).map_err(|_| ScanError::Utf8(number))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use xds_proto::pb::envoy::config::cluster::v3::{
        cluster::{ClusterDiscoveryType, DiscoveryType},
        Cluster,
    };

    #[test]
    fn reads_every_wire_type() {
        let c = Cluster {
            name: "outbound|80||a".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            connect_timeout: Some(xds_proto::protobuf::Duration {
                seconds: 300,
                nanos: 5,
            }),
            ..Default::default()
        };
        let mut buf = c.encode_to_vec();
        // Fixed 64- and 32-bit fields (numbers 90 and 91), which prost
        // writes for doubles and floats: skipped over, not misread.
        buf.extend_from_slice(&[0xd1, 0x05, 1, 2, 3, 4, 5, 6, 7, 8, 0xdd, 0x05, 1, 2, 3, 4]);
        buf.extend_from_slice(&[0x0a, 0x01, b'z']);
        let got: Vec<(u32, Value<'_>)> = fields(&buf).collect::<Result<_, _>>().expect("scans");
        assert!(got.contains(&(1, Value::Bytes(b"outbound|80||a"))));
        assert!(got.contains(&(2, Value::Varint(DiscoveryType::Eds as u64))));
        assert!(got
            .iter()
            .any(|(n, v)| *n == 4 && matches!(v, Value::Bytes(_))));
        assert!(got.contains(&(90, Value::Fixed)));
        assert!(got.contains(&(91, Value::Fixed)));
        assert_eq!(got.last(), Some(&(1, Value::Bytes(b"z"))));
        assert_eq!(bytes_field(&buf, 1), Ok(&b"z"[..]), "the last one wins");
        assert_eq!(bytes_field(&buf, 99), Ok(&b""[..]));
    }

    #[test]
    fn a_cut_or_malformed_message_is_an_error_not_a_panic() {
        let buf = Cluster {
            name: "outbound|80||a".into(),
            ..Default::default()
        }
        .encode_to_vec();
        for cut in 1..buf.len() {
            let r: Result<Vec<_>, _> = fields(&buf[..cut]).collect();
            assert_eq!(r, Err(ScanError::Truncated), "cut at {cut}");
        }
        assert_eq!(
            fields(&[0x0b]).next(),
            Some(Err(ScanError::WireType(3))),
            "a group"
        );
        assert_eq!(fields(&[0x08; 12]).next(), Some(Ok((1, Value::Varint(8)))));
        assert_eq!(
            fields(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).next(),
            Some(Err(ScanError::LongVarint))
        );
        assert_eq!(utf8(&[0xff], 3), Err(ScanError::Utf8(3)));
    }
}

//! Protocol buffer fields written by hand, for the messages the server
//! writes in place rather than building as prost structs first: the
//! discovery responses, and a sidecar's virtual hosts.

/// Wire type of strings, bytes and messages.
pub const LENGTH_DELIMITED: u32 = 2;

/// A singular length-delimited field's encoded size. As in proto3, an
/// empty one is left out.
pub fn string_len(field: u32, s: &str) -> usize {
    bytes_len(field, s.as_bytes())
}

pub fn bytes_len(field: u32, b: &[u8]) -> usize {
    if b.is_empty() {
        0
    } else {
        nested_len(field, b.len())
    }
}

/// The size of a field of `len` bytes with its key and length.
pub fn nested_len(field: u32, len: usize) -> usize {
    varint_len(u64::from(field << 3)) + varint_len(len as u64) + len
}

pub fn put_string(buf: &mut Vec<u8>, field: u32, s: &str) {
    put_bytes(buf, field, s.as_bytes());
}

pub fn put_bytes(buf: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        put_nested(buf, field, b.len());
        buf.extend_from_slice(b);
    }
}

/// The key and length of a field whose `len` bytes follow.
pub fn put_nested(buf: &mut Vec<u8>, field: u32, len: usize) {
    put_varint(buf, u64::from(field << 3 | LENGTH_DELIMITED));
    put_varint(buf, len as u64);
}

pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub fn varint_len(v: u64) -> usize {
    // Seven bits per byte; zero still takes one.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_match_what_is_written() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "{v}");
        }
    }
}

//! Digests that are stable across processes and builds: a resource's
//! version is its digest, so a proxy that reconnects to another replica, or
//! after a restart, is not sent what it already has.

/// A 64-bit digest, eight bytes at a time: stable across processes and
/// builds (unlike std's hasher), and cheap on megabytes of config.
pub fn digest(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    for b in words.remainder() {
        h = (h.rotate_left(23) ^ u64::from(*b)).wrapping_mul(K);
    }
    h ^ (h >> 31)
}

/// splitmix64's finaliser: spreads each digest before the sum, so sets that
/// differ do not sum alike by accident of structure.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

//! The hasher for maps keyed by resource names.
//!
//! A connecting delta proxy subscribes to thousands of names, and each one
//! is looked up in several maps on its way (interned, recorded as held,
//! found in the shared list). With the standard library's SipHash, hashing
//! them was about 8 % of the server's CPU during a connect storm.
//! foldhash is several times faster on short strings and, like the hash
//! behind Go's maps that Istio relies on, is seeded at random per process:
//! a proxy cannot aim the names it sends at one bucket without knowing the
//! seed.

use std::collections::{HashMap, HashSet};

pub type NameHasher = foldhash::fast::RandomState;

pub type NameMap<K, V> = HashMap<K, V, NameHasher>;

pub type NameSet<K> = HashSet<K, NameHasher>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn every_map_is_seeded_apart() {
        // A fixed seed would let names be crafted to collide in every
        // server at once; each map must hash the same name its own way.
        let name = "outbound|80||svc-00001.ns-1.svc.cluster.local";
        let hashes: HashSet<u64> = (0..8)
            .map(|_| NameHasher::default().hash_one(name))
            .collect();
        assert!(hashes.len() > 1, "eight maps hashed {name} alike");
        let one = NameHasher::default();
        assert_eq!(one.hash_one(name), one.hash_one(name));
    }
}

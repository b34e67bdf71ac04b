//! What a delta proxy holds of one type, with a digest of the whole set
//! kept current on every change, so a push can tell "nothing differs" from
//! one comparison instead of one lookup per resource.

use std::collections::HashMap;
use std::sync::Arc;

use super::generate::Named;

/// The digest of a set of resources, from each one's digest: the same
/// whatever the order, and cheap to update by one resource.
pub fn set_digest<'a>(resources: impl IntoIterator<Item = &'a Arc<Named>>) -> u64 {
    resources
        .into_iter()
        .fold(0, |acc, r| acc.wrapping_add(1).wrapping_add(mix(r.digest)))
}

/// splitmix64's finaliser: spreads each digest before the sum, so sets that
/// differ do not sum alike by accident of structure.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The version (as a digest) of each resource a proxy holds.
#[derive(Debug, Default, Clone)]
pub struct Held {
    /// Thousands per stream: the names are shared with the generated
    /// resources, the versions kept as numbers.
    versions: HashMap<Arc<str>, u64>,
    /// [`set_digest`] of what `versions` holds.
    digest: u64,
}

impl Held {
    pub fn get(&self, name: &str) -> Option<u64> {
        self.versions.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.versions.keys()
    }

    /// The digest of the whole set, comparable with [`set_digest`].
    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn insert(&mut self, name: Arc<str>, version: u64) {
        let before = self.versions.insert(name, version);
        self.digest = self.digest.wrapping_add(1).wrapping_add(mix(version));
        if let Some(old) = before {
            self.digest = self.digest.wrapping_sub(1).wrapping_sub(mix(old));
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Some(old) = self.versions.remove(name) {
            self.digest = self.digest.wrapping_sub(1).wrapping_sub(mix(old));
        }
    }
}

impl FromIterator<(Arc<str>, u64)> for Held {
    fn from_iter<I: IntoIterator<Item = (Arc<str>, u64)>>(iter: I) -> Self {
        let mut held = Held::default();
        for (name, version) in iter {
            held.insert(name, version);
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xds_proto::protobuf::Any;

    fn named(name: &str, value: &[u8]) -> Arc<Named> {
        Arc::new(Named::new(
            name,
            Any {
                type_url: String::new(),
                value: value.to_vec(),
            },
        ))
    }

    #[test]
    fn the_digest_follows_every_change_and_matches_the_sets() {
        let (a, b, b2) = (named("a", b"1"), named("b", b"2"), named("b", b"3"));
        let mut held = Held::default();
        assert_eq!(held.digest(), set_digest([]));
        held.insert(a.name.clone(), a.digest);
        held.insert(b.name.clone(), b.digest);
        assert_eq!(held.digest(), set_digest([&b, &a]), "order does not count");
        held.insert(b2.name.clone(), b2.digest);
        assert_eq!(held.digest(), set_digest([&a, &b2]), "a replaced version");
        assert_ne!(held.digest(), set_digest([&a, &b]));
        held.remove("b");
        held.remove("never held");
        assert_eq!(held.digest(), set_digest([&a]));
        assert_eq!(held.len(), 1);
        let again: Held = [(a.name.clone(), a.digest)].into_iter().collect();
        assert_eq!(again.digest(), held.digest());
    }
}

//! What a delta proxy holds of one type, with a digest of the whole set
//! kept current on every change, so a push can tell "nothing differs" from
//! one comparison instead of one lookup per resource. The list every proxy
//! of a shape was sent is held by reference, not copied per proxy.

use std::sync::Arc;

use crate::xds::context::{ResourceSet, SharedList};
use crate::xds::digest::mix;
use crate::xds::hashing::NameMap;

/// The version (as a digest) of each resource a proxy holds.
///
/// Most of it is usually one list every proxy of its shape was sent whole
/// (thousands of clusters or endpoints), so that list is held by reference
/// and only where the proxy differs from it is written down: a thousand
/// proxies keep one copy of the list, not a thousand maps of it.
#[derive(Debug, Default, Clone)]
pub struct Held {
    /// The shared list of the last full response, held whole except where
    /// `changes` says otherwise.
    base: Option<SharedList>,
    /// Where the proxy differs from `base`: a version it holds (of a
    /// resource not in `base`, or another version of one that is), or, as
    /// `None`, a resource of `base` it no longer holds.
    changes: NameMap<Arc<str>, Option<u64>>,
    /// How many of `changes` name a resource of `base`.
    base_changed: usize,
    /// [`set_digest`](crate::xds::generate::named::set_digest) of what is held.
    digest: u64,
}

impl Held {
    /// What a proxy holds once sent `set` whole.
    pub fn from_set(set: &ResourceSet) -> Held {
        let shared = set.shared();
        let mut held = Held {
            base: (!shared.items().is_empty()).then(|| shared.clone()),
            changes: NameMap::default(),
            base_changed: 0,
            digest: shared.digest(),
        };
        for r in set.own() {
            held.insert(r.name.clone(), r.digest);
        }
        held
    }

    pub fn get(&self, name: &str) -> Option<u64> {
        match self.changes.get(name) {
            Some(change) => *change,
            None => self.base_version(name),
        }
    }

    fn base_version(&self, name: &str) -> Option<u64> {
        self.base.as_ref().and_then(|b| b.version_of(name))
    }

    /// Holds every resource of `list` at the version the list has: the
    /// proxy was sent it whole and nothing of it changed since.
    pub fn holds_whole(&self, list: &SharedList) -> bool {
        self.base_changed == 0 && self.base.as_ref().is_some_and(|b| Arc::ptr_eq(b, list))
    }

    /// How many resources are recorded apart from the shared list.
    pub fn changes(&self) -> usize {
        self.changes.len()
    }

    pub fn len(&self) -> usize {
        self.names().count()
    }

    pub fn is_empty(&self) -> bool {
        self.names().next().is_none()
    }

    /// The names held, each once.
    pub fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        let from_base = self
            .base
            .iter()
            .flat_map(|b| b.items())
            .map(|r| &r.name)
            .filter(|n| !matches!(self.changes.get(&***n), Some(None)));
        let added = self
            .changes
            .iter()
            .filter(|(name, c)| c.is_some() && self.base_version(name).is_none())
            .map(|(name, _)| name);
        from_base.chain(added)
    }

    /// The names held here and not in `next`.
    pub fn missing_from(&self, next: &Held) -> Vec<String> {
        let same_base = match (&self.base, &next.base) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same_base {
            return self
                .names()
                .filter(|n| next.get(n).is_none())
                .map(|n| n.to_string())
                .collect();
        }
        // The base is held by both except where either changed it.
        let here = self.changes.iter().filter(|(_, c)| c.is_some());
        let there = next
            .changes
            .iter()
            .filter(|(name, c)| c.is_none() && !self.changes.contains_key(*name));
        here.chain(there)
            .map(|(name, _)| name)
            .filter(|n| self.get(n).is_some() && next.get(n).is_none())
            .map(|n| n.to_string())
            .collect()
    }

    /// The digest of the whole set, comparable with
    /// [`set_digest`](crate::xds::generate::named::set_digest).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn insert(&mut self, name: Arc<str>, version: u64) {
        let in_base = self.base_version(&name);
        let before = match self.changes.get(&*name) {
            Some(change) => *change,
            None => in_base,
        };
        self.record(name, Some(version), in_base);
        self.digest = self.digest.wrapping_add(1).wrapping_add(mix(version));
        if let Some(old) = before {
            self.digest = self.digest.wrapping_sub(1).wrapping_sub(mix(old));
        }
    }

    pub fn remove(&mut self, name: &str) {
        let Some(old) = self.get(name) else {
            return;
        };
        let in_base = self.base_version(name);
        let key = match self.changes.get_key_value(name) {
            Some((key, _)) => key.clone(),
            None => Arc::from(name),
        };
        self.record(key, None, in_base);
        self.digest = self.digest.wrapping_sub(1).wrapping_sub(mix(old));
    }

    /// Sets what is held of `name` to `now`, given what `base` has of it.
    fn record(&mut self, name: Arc<str>, now: Option<u64>, in_base: Option<u64>) {
        let was_change = if now == in_base {
            self.changes.remove(&name).is_some()
        } else {
            self.changes.insert(name, now).is_some()
        };
        let is_change = now != in_base;
        if in_base.is_some() {
            match (was_change, is_change) {
                (false, true) => self.base_changed += 1,
                (true, false) => self.base_changed -= 1,
                _ => {}
            }
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
    use crate::xds::context::Listed;
    use crate::xds::generate::named::{set_digest, Named};
    use std::collections::{BTreeMap, BTreeSet};
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

    /// What `held` holds, as a plain map.
    fn contents(held: &Held) -> BTreeMap<String, u64> {
        held.names()
            .map(|n| (n.to_string(), held.get(n).expect("a listed name is held")))
            .collect()
    }

    #[test]
    fn a_held_list_behaves_as_a_copy_of_it() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut random = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let resource = |name: u64, version: u64| named(&format!("r{name}"), &[version as u8]);
        // Two shared lists, as two snapshots would give.
        let lists: Vec<SharedList> = (0..2)
            .map(|v| Arc::new(Listed::new((0..12).map(|n| resource(n, v)).collect())))
            .collect();
        let mut held = Held::default();
        let mut model: BTreeMap<String, u64> = BTreeMap::new();
        for step in 0..2000 {
            match random(10) {
                0 => {
                    let list = &lists[random(2) as usize];
                    // A proxy's own resources never share a name with the
                    // shared list or with each other.
                    let own_names: BTreeSet<u64> = (0..random(4)).map(|_| 12 + random(8)).collect();
                    let own: Vec<_> = own_names
                        .into_iter()
                        .map(|n| resource(n, random(3)))
                        .collect();
                    let set = ResourceSet::new(list.clone(), own);
                    let mut next = Held::from_set(&set);
                    let mut next_model = BTreeMap::new();
                    for r in set.iter() {
                        next_model.insert(r.name.to_string(), r.digest);
                    }
                    assert!(next.holds_whole(list), "step {step}");
                    assert_eq!(next.digest(), set.digest(), "step {step}");
                    // What is removed is what is missing from whatever the
                    // proxy holds next, also when that is not a whole list.
                    if random(2) == 0 {
                        let name = format!("r{}", random(20));
                        next.remove(&name);
                        next_model.remove(&name);
                    }
                    let gone: BTreeSet<String> = held.missing_from(&next).into_iter().collect();
                    let want: BTreeSet<String> = model
                        .keys()
                        .filter(|n| !next_model.contains_key(*n))
                        .cloned()
                        .collect();
                    assert_eq!(gone, want, "step {step}: removed names");
                    (held, model) = (next, next_model);
                }
                1..=3 => {
                    let name = format!("r{}", random(20));
                    held.remove(&name);
                    model.remove(&name);
                }
                _ => {
                    let r = resource(random(20), random(3));
                    held.insert(r.name.clone(), r.digest);
                    model.insert(r.name.to_string(), r.digest);
                }
            }
            assert_eq!(contents(&held), model, "step {step}");
            assert_eq!(held.len(), model.len(), "step {step}");
            let all: Vec<Arc<Named>> = model
                .iter()
                .map(|(n, d)| {
                    Arc::new(Named {
                        name: n.as_str().into(),
                        resource: Any::default(),
                        digest: *d,
                    })
                })
                .collect();
            assert_eq!(held.digest(), set_digest(&all), "step {step}");
            for list in &lists {
                let whole = list
                    .items()
                    .iter()
                    .all(|r| model.get(&*r.name) == Some(&r.digest));
                // Held whole may also mean more beyond the list; never less.
                if held.holds_whole(list) {
                    assert!(whole, "step {step}: holds_whole with a part missing");
                }
            }
        }
    }
}

//! What one simulated proxy holds and has seen: its config, as names and
//! digests per type, and when each resource arrived.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use prost::bytes::Bytes;

use super::lite::digest;

/// The four types, in the order the record keeps them.
pub const TYPES: [&str; 4] = [
    xds_proto::type_url::CLUSTER,
    xds_proto::type_url::ENDPOINT,
    xds_proto::type_url::LISTENER,
    xds_proto::type_url::ROUTE,
];
pub const CDS: usize = 0;
pub const EDS: usize = 1;
pub const LDS: usize = 2;
pub const RDS: usize = 3;

pub fn type_index(type_url: &str) -> Option<usize> {
    TYPES.iter().position(|t| *t == type_url)
}

/// The type a resource of type `t` makes the proxy subscribe to.
pub fn dependent(t: usize) -> Option<usize> {
    match t {
        CDS => Some(EDS),
        LDS => Some(RDS),
        _ => None,
    }
}

/// How arrivals are looked up: the type's index and the name's digest.
pub type ArrivalKey = (u8, u64);

/// The key of resource `name` of type `t`.
pub fn arrival_key(t: usize, name: &str) -> ArrivalKey {
    (type_byte(t), digest(name.as_bytes()))
}

/// A type index as stored in an arrival (there are four types).
pub fn type_byte(t: usize) -> u8 {
    u8::try_from(t).unwrap_or(u8::MAX)
}

/// One resource arriving at the proxy, recorded while measuring.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub at: Instant,
    pub type_index: u8,
    pub name: u64,
}

/// A map keyed by a name's digest. The digest is already well spread, so
/// it is used as the hash as it is: hashing it again (SipHash) cost the
/// load client a tenth of its time.
pub type ByDigest<V> = HashMap<u64, V, BuildHasherDefault<DigestHasher>>;

#[derive(Debug, Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The names the proxies of a fleet subscribe to, each kept once for the
/// whole fleet, by digest. A thousand proxies subscribe to the same 3,000
/// endpoint names; a string per name per proxy was a third of the load
/// client's memory, and first touches of memory are most of its cost on
/// this kind of VM (BENCHMARKS.md).
#[derive(Debug, Default)]
pub struct NameTable {
    names: Mutex<ByDigest<Box<str>>>,
}

impl NameTable {
    fn lock(&self) -> MutexGuard<'_, ByDigest<Box<str>>> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
pub struct Record {
    pub started: Option<Instant>,
    pub connected: Option<Instant>,
    /// When the proxy first held and had ACKed a complete config.
    pub complete: Option<Instant>,
    /// Protobuf bytes received.
    pub bytes: u64,
    pub responses: u64,
    /// Connection attempts that failed before the stream opened.
    pub retries: u32,
    /// Per type: name digest → content digest.
    pub resources: [ByDigest<u64>; 4],
    /// For clusters and listeners: name digest → what the resource needs.
    needs: [ByDigest<Needs>; 2],
    /// For clusters and listeners: how many resources need each name, by
    /// the name's digest. Once the subscription is brought up to date, its
    /// keys are the EDS and RDS names subscribed to.
    wanted: [ByDigest<u32>; 2],
    /// Digests whose `wanted` count came to or left zero since the
    /// subscription was last brought up to date, in order, with the name
    /// (a view of the received response) when it came to one.
    touched: [Vec<(u64, Option<Bytes>)>; 2],
    /// Where the names behind the digests are kept.
    names: Arc<NameTable>,
    /// Whether a response of each type has arrived.
    pub seen: [bool; 4],
    pub arrivals: Vec<Arrival>,
    pub error: Option<String>,
}

/// What one resource needs, by the names' digests. A cluster needs one name
/// (its endpoints), so the common case keeps no allocation of its own: with
/// a thousand proxies of 3,000 clusters each, a list and a string per
/// cluster were a third of the load client's memory, and touching that
/// memory for the first time a large part of its CPU.
#[derive(Debug)]
enum Needs {
    One(u64),
    Many(Box<[u64]>),
}

impl Needs {
    fn digests(&self) -> &[u64] {
        match self {
            Needs::One(k) => std::slice::from_ref(k),
            Needs::Many(ks) => ks,
        }
    }
}

/// Index into `needs` and `subscribed` for a type that has them.
pub fn slot(t: usize) -> usize {
    match t {
        CDS | EDS => 0,
        _ => 1,
    }
}

impl Record {
    /// An empty record whose subscribed names are kept in `names`.
    pub fn new(names: Arc<NameTable>) -> Self {
        Record {
            names,
            ..Default::default()
        }
    }

    /// Every type has arrived and every needed EDS and RDS resource is held.
    pub fn is_complete(&self) -> bool {
        // Checked after every response: while fewer resources are held than
        // subscribed to, the answer is no without a lookup per name.
        self.seen.iter().all(|s| *s)
            && self.resources[EDS].len() >= self.wanted[0].len()
            && self.resources[RDS].len() >= self.wanted[1].len()
            && self.wanted[0]
                .keys()
                .all(|k| self.resources[EDS].contains_key(k))
            && self.wanted[1]
                .keys()
                .all(|k| self.resources[RDS].contains_key(k))
    }

    /// The names of type `t` (EDS or RDS) subscribed to.
    pub fn subscribed(&self, t: usize) -> Vec<String> {
        let names = self.names.lock();
        self.wanted[slot(t)]
            .keys()
            .filter_map(|k| names.get(k))
            .map(|n| n.to_string())
            .collect()
    }

    /// Resource `key` of type `t` (clusters or listeners) now needs
    /// `needs`, in place of what it needed before. `keep` makes a name
    /// that comes to be needed into one the record can keep until the
    /// subscription is next brought up to date.
    pub fn set_needs(
        &mut self,
        t: usize,
        key: u64,
        needs: &[&[u8]],
        keep: impl Fn(&[u8]) -> Bytes,
    ) {
        let s = slot(t);
        let now = match needs {
            [] => None,
            [one] => Some(Needs::One(self.want(s, one, &keep))),
            many => Some(Needs::Many(
                many.iter().map(|n| self.want(s, n, &keep)).collect(),
            )),
        };
        let before = match now {
            Some(needs) => self.needs[s].insert(key, needs),
            None => self.needs[s].remove(&key),
        };
        if let Some(before) = before {
            self.unneed(s, before.digests());
        }
    }

    /// Counts one more need of `name`; its digest.
    fn want(&mut self, s: usize, name: &[u8], keep: impl Fn(&[u8]) -> Bytes) -> u64 {
        let k = digest(name);
        let count = self.wanted[s].entry(k).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.touched[s].push((k, Some(keep(name))));
        }
        k
    }

    /// Nothing of type `t` needs anything any more (a state-of-the-world
    /// response replaces them all).
    pub fn clear_needs(&mut self, t: usize) {
        let s = slot(t);
        for needs in std::mem::take(&mut self.needs[s]).into_values() {
            self.unneed(s, needs.digests());
        }
    }

    fn unneed(&mut self, s: usize, digests: &[u64]) {
        for k in digests {
            if let Some(count) = self.wanted[s].get_mut(k) {
                *count -= 1;
                if *count == 0 {
                    self.wanted[s].remove(k);
                    self.touched[s].push((*k, None));
                }
            }
        }
    }

    /// Brings the subscription of `t`'s dependent type up to date with what
    /// `t`'s resources need: the names to subscribe to and to drop, or
    /// `None` when it already was.
    pub fn update_subscription(&mut self, t: usize) -> Option<(Vec<String>, Vec<String>)> {
        let s = slot(t);
        let mut touched = std::mem::take(&mut self.touched[s]);
        if touched.is_empty() {
            return None;
        }
        // Stable: within a digest's group, touches stay in the order made.
        touched.sort_by_key(|(k, _)| *k);
        let mut names = self.names.lock();
        let (mut subscribe, mut unsubscribe) = (Vec::new(), Vec::new());
        for group in touched.chunk_by_mut(|a, b| a.0 == b.0) {
            let k = group[0].0;
            // Subscribed before these touches exactly when the first of
            // them took the count away from zero, not up to one.
            let was = group[0].1.is_none();
            let now = self.wanted[s].contains_key(&k);
            if now && !was {
                // Its count came to one since the last update, which
                // recorded the name.
                if let Some(n) = group.iter_mut().find_map(|(_, n)| n.take()) {
                    let name = names
                        .entry(k)
                        .or_insert_with(|| String::from_utf8_lossy(&n).into());
                    subscribe.push(name.to_string());
                }
            } else if was && !now {
                if let Some(name) = names.get(&k) {
                    unsubscribe.push(name.to_string());
                }
            }
        }
        (!subscribe.is_empty() || !unsubscribe.is_empty()).then_some((subscribe, unsubscribe))
    }

    /// Forgets what resource `key` of type `t` needed.
    pub fn drop_needs(&mut self, t: usize, key: u64) {
        self.set_needs(t, key, &[], Bytes::copy_from_slice);
    }

    /// An order-independent digest of everything held of type `t`, and how
    /// many resources that is.
    pub fn fingerprint(&self, t: usize) -> (usize, u64) {
        let sum = self.resources[t].iter().fold(0u64, |acc, (name, content)| {
            acc.wrapping_add(name.rotate_left(17) ^ content.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        });
        (self.resources[t].len(), sum)
    }

    /// The first time the resource with `key` arrived at or after `since`.
    /// Arrivals are recorded in time order.
    pub fn first_arrival(&self, key: ArrivalKey, since: Instant) -> Option<Instant> {
        self.arrivals
            .iter()
            .find(|a| (a.type_index, a.name) == key && a.at >= since)
            .map(|a| a.at)
    }

    /// When each resource arrived, by key, in order: for looking up many
    /// keys at once.
    pub fn arrival_index(&self) -> HashMap<ArrivalKey, Vec<Instant>> {
        let mut index: HashMap<(u8, u64), Vec<Instant>> = HashMap::new();
        for a in &self.arrivals {
            index.entry((a.type_index, a.name)).or_default().push(a.at);
        }
        index
    }

    /// Arrivals of any type at or after `since`.
    pub fn arrivals_since(&self, since: Instant) -> usize {
        self.arrivals.iter().filter(|a| a.at >= since).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_subscription_follows_what_the_resources_need() {
        let mut seed: u64 = 0x853c_49e6_748f_ea9b;
        let mut random = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut rec = Record::default();
        // What each resource needs, kept by the test as the reference.
        let mut model: HashMap<u64, Vec<String>> = HashMap::new();
        let mut before: BTreeSet<String> = BTreeSet::new();
        for step in 0..3000 {
            match random(8) {
                0 => {
                    rec.clear_needs(CDS);
                    model.clear();
                }
                1 | 2 => {
                    let key = random(12);
                    rec.drop_needs(CDS, key);
                    model.remove(&key);
                }
                _ => {
                    let key = random(12);
                    let needs: Vec<String> =
                        (0..random(3)).map(|_| format!("n{}", random(10))).collect();
                    let views: Vec<&[u8]> = needs.iter().map(|n| n.as_bytes()).collect();
                    rec.set_needs(CDS, key, &views, Bytes::copy_from_slice);
                    model.insert(key, needs);
                }
            }
            if random(3) > 0 {
                continue;
            }
            let want: BTreeSet<String> = model.values().flatten().cloned().collect();
            let change = rec.update_subscription(CDS);
            let subscribed: BTreeSet<String> = rec.subscribed(EDS).into_iter().collect();
            assert_eq!(subscribed, want, "step {step}");
            let added: Vec<String> = want.difference(&before).cloned().collect();
            let dropped: Vec<String> = before.difference(&want).cloned().collect();
            match change {
                Some((mut sub, mut unsub)) => {
                    sub.sort();
                    unsub.sort();
                    assert_eq!((sub, unsub), (added, dropped), "step {step}");
                }
                None => assert!(added.is_empty() && dropped.is_empty(), "step {step}"),
            }
            before = want;
        }
    }
}

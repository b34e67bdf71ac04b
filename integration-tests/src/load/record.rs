//! What one simulated proxy holds and has seen: its config, as names and
//! digests per type, and when each resource arrived.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

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
    pub resources: [HashMap<u64, u64>; 4],
    /// For clusters and listeners: name digest → what the resource needs.
    needs: [HashMap<u64, Vec<String>>; 2],
    /// For clusters and listeners: each name needed, and by how many.
    wanted: [HashMap<String, u32>; 2],
    /// Names whose `wanted` count came to or left zero since the
    /// subscription was last brought up to date.
    touched: [Vec<String>; 2],
    /// EDS and RDS names subscribed to.
    pub subscribed: [BTreeSet<String>; 2],
    /// Whether a response of each type has arrived.
    pub seen: [bool; 4],
    pub arrivals: Vec<Arrival>,
    pub error: Option<String>,
}

/// Index into `needs` and `subscribed` for a type that has them.
pub fn slot(t: usize) -> usize {
    match t {
        CDS | EDS => 0,
        _ => 1,
    }
}

impl Record {
    /// Every type has arrived and every needed EDS and RDS resource is held.
    pub fn is_complete(&self) -> bool {
        // Checked after every response: while fewer resources are held than
        // subscribed to, the answer is no without a lookup per name.
        self.seen.iter().all(|s| *s)
            && self.resources[EDS].len() >= self.subscribed[0].len()
            && self.resources[RDS].len() >= self.subscribed[1].len()
            && self.subscribed[0]
                .iter()
                .all(|n| self.resources[EDS].contains_key(&digest(n.as_bytes())))
            && self.subscribed[1]
                .iter()
                .all(|n| self.resources[RDS].contains_key(&digest(n.as_bytes())))
    }

    /// Resource `key` of type `t` (clusters or listeners) now needs
    /// `needs`, in place of what it needed before.
    pub fn set_needs(&mut self, t: usize, key: u64, needs: Vec<String>) {
        let s = slot(t);
        for n in &needs {
            let count = self.wanted[s].entry(n.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                self.touched[s].push(n.clone());
            }
        }
        let before = if needs.is_empty() {
            self.needs[s].remove(&key)
        } else {
            self.needs[s].insert(key, needs)
        };
        self.unneed(s, before.unwrap_or_default());
    }

    /// Nothing of type `t` needs anything any more (a state-of-the-world
    /// response replaces them all).
    pub fn clear_needs(&mut self, t: usize) {
        let s = slot(t);
        let all: Vec<String> = std::mem::take(&mut self.needs[s])
            .into_values()
            .flatten()
            .collect();
        self.unneed(s, all);
    }

    fn unneed(&mut self, s: usize, names: Vec<String>) {
        for n in names {
            if let Some(count) = self.wanted[s].get_mut(&n) {
                *count -= 1;
                if *count == 0 {
                    self.wanted[s].remove(&n);
                    self.touched[s].push(n);
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
        touched.sort_unstable();
        touched.dedup();
        let (mut subscribe, mut unsubscribe) = (Vec::new(), Vec::new());
        for n in touched {
            let wanted = self.wanted[s].contains_key(&n);
            if wanted && !self.subscribed[s].contains(&n) {
                self.subscribed[s].insert(n.clone());
                subscribe.push(n);
            } else if !wanted && self.subscribed[s].remove(&n) {
                unsubscribe.push(n);
            }
        }
        (!subscribe.is_empty() || !unsubscribe.is_empty()).then_some((subscribe, unsubscribe))
    }

    /// Forgets what resource `key` of type `t` needed.
    pub fn drop_needs(&mut self, t: usize, key: u64) {
        self.set_needs(t, key, Vec::new());
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
        let mut before: BTreeSet<String> = BTreeSet::new();
        for step in 0..3000 {
            match random(8) {
                0 => rec.clear_needs(CDS),
                1 | 2 => rec.drop_needs(CDS, random(12)),
                _ => {
                    let needs = (0..random(3)).map(|_| format!("n{}", random(10))).collect();
                    rec.set_needs(CDS, random(12), needs);
                }
            }
            if random(3) > 0 {
                continue;
            }
            let want: BTreeSet<String> = rec.needs[0].values().flatten().cloned().collect();
            let change = rec.update_subscription(CDS);
            assert_eq!(rec.subscribed[0], want, "step {step}");
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

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
    pub needs: [HashMap<u64, Vec<String>>; 2],
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
        self.seen.iter().all(|s| *s)
            && self.subscribed[0]
                .iter()
                .all(|n| self.resources[EDS].contains_key(&digest(n.as_bytes())))
            && self.subscribed[1]
                .iter()
                .all(|n| self.resources[RDS].contains_key(&digest(n.as_bytes())))
    }

    /// The names the resources of type `t` need, if `t` has dependents.
    pub fn wanted(&self, t: usize) -> BTreeSet<String> {
        self.needs[slot(t)].values().flatten().cloned().collect()
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

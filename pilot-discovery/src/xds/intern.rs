//! One shared copy of each resource name, and of each subscription.
//!
//! Every delta proxy subscribes by name to thousands of resources (at 1,000
//! services, 3,000 endpoint clusters), and every stream records what it
//! holds by name. Kept per stream, those names cost more than the rest of
//! the stream's state; interned, every stream points at one copy. Proxies
//! alike subscribe to the same set of names, so whole subscriptions are
//! shared too: a thousand proxies of a few shapes keep a few sets, and a
//! subscription is known by its address instead of by walking its names.

use std::collections::{BTreeSet, HashMap};
use std::ops::Deref;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use serde::{Serialize, Serializer};

use super::digest::mix;
use super::hashing::NameSet as HashedNames;
use crate::lock::lock;

static NAMES: LazyLock<Mutex<HashedNames<Arc<str>>>> = LazyLock::new(Mutex::default);

type NameSet = BTreeSet<Arc<str>>;

/// The subscriptions in use, by [`identity_key`]; a key may stand for more
/// than one set.
static SETS: LazyLock<Mutex<HashMap<u64, Vec<Weak<NameSet>>>>> = LazyLock::new(Mutex::default);

/// The shared copy of `name`.
pub fn intern(name: &str) -> Arc<str> {
    let mut names = lock(&NAMES);
    if let Some(shared) = names.get(name) {
        return shared.clone();
    }
    let shared: Arc<str> = Arc::from(name);
    names.insert(shared.clone());
    shared
}

/// Forgets the names nothing else holds any more: a proxy may subscribe to
/// any name it likes, and those must not outlive its subscription.
pub fn sweep() {
    lock(&SETS).retain(|_, sets| {
        sets.retain(|s| s.strong_count() > 0);
        !sets.is_empty()
    });
    lock(&NAMES).retain(|n| Arc::strong_count(n) > 1);
}

/// A key for a set of interned names, from their addresses: sets with the
/// same names get the same key. A match is confirmed name by name.
fn identity_key(names: &NameSet) -> u64 {
    names.iter().fold(names.len() as u64, |acc, n| {
        acc.wrapping_add(mix(Arc::as_ptr(n).cast::<u8>() as usize as u64))
    })
}

/// The same interned names, in the same order.
fn same_names(a: &NameSet, b: &NameSet) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

/// The names a stream subscribes to for one type, shared with every stream
/// that subscribes to the same ones once [`Names::share`] has run.
///
/// Changing a shared subscription copies it first, so no other stream
/// sees the change. Streams share once their subscription has settled
/// (a request that changes nothing), so the steps a proxy takes while it
/// connects are neither shared nor copied.
#[derive(Debug, Default, Clone)]
pub struct Names {
    set: Arc<NameSet>,
    /// Registered for other streams to find (or taken from one).
    shared: bool,
}

impl Names {
    /// `names`, shared with any stream already subscribed to them.
    pub fn new(names: NameSet) -> Self {
        let mut n = Names::own(names);
        n.share();
        n
    }

    /// `names`, not shared until [`Names::share`].
    pub fn own(names: NameSet) -> Self {
        Names {
            set: Arc::new(names),
            shared: false,
        }
    }

    pub fn insert(&mut self, name: Arc<str>) -> bool {
        if self.set.contains(&name) {
            return false;
        }
        self.shared = false;
        Arc::make_mut(&mut self.set).insert(name)
    }

    pub fn remove(&mut self, name: &str) -> bool {
        if !self.set.contains(name) {
            return false;
        }
        self.shared = false;
        Arc::make_mut(&mut self.set).remove(name)
    }

    /// Takes the copy another stream with the same names holds, if any, or
    /// makes this one the copy the next such stream takes.
    pub fn share(&mut self) {
        if self.shared {
            return;
        }
        self.shared = true;
        let key = identity_key(&self.set);
        let mut sets = lock(&SETS);
        let candidates = sets.entry(key).or_default();
        for held in candidates.iter().filter_map(Weak::upgrade) {
            if Arc::ptr_eq(&held, &self.set) {
                return;
            }
            if same_names(&held, &self.set) {
                self.set = held;
                return;
            }
        }
        candidates.retain(|s| s.strong_count() > 0);
        candidates.push(Arc::downgrade(&self.set));
    }

    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The same copy: true for equal subscriptions once both are shared.
    pub fn is(&self, other: &Names) -> bool {
        Arc::ptr_eq(&self.set, &other.set)
    }

    /// The copy's address, a key for the set while this `Names` lives.
    pub fn address(&self) -> usize {
        Arc::as_ptr(&self.set) as usize
    }
}

impl Deref for Names {
    type Target = NameSet;
    fn deref(&self) -> &NameSet {
        &self.set
    }
}

impl Serialize for Names {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.set.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_copy_per_name_until_nothing_holds_it() {
        let a = intern("outbound|80||intern-test.default.svc.cluster.local");
        let b = intern(&String::from(
            "outbound|80||intern-test.default.svc.cluster.local",
        ));
        assert!(Arc::ptr_eq(&a, &b));
        drop(b);
        sweep();
        // Still held by `a`: the same copy comes back.
        let c = intern("outbound|80||intern-test.default.svc.cluster.local");
        assert!(Arc::ptr_eq(&a, &c));

        let gone = intern("intern-test-gone");
        let weak = Arc::downgrade(&gone);
        drop(gone);
        sweep();
        assert!(weak.upgrade().is_none(), "an unheld name is freed");
    }

    fn set(names: &[&str]) -> NameSet {
        names.iter().map(|n| intern(n)).collect()
    }

    #[test]
    fn equal_subscriptions_share_one_copy_and_changes_stay_private() {
        let a = Names::new(set(&["names-test-1", "names-test-2"]));
        let mut b = Names::new(set(&["names-test-2", "names-test-1"]));
        assert!(a.is(&b), "the same names, one copy");
        assert!(!a.is(&Names::new(set(&["names-test-1"]))));

        // A change to one stream's subscription is its own.
        assert!(b.insert(intern("names-test-3")));
        assert!(!a.is(&b));
        assert_eq!(a.len(), 2);
        assert_eq!(b.len(), 3);
        assert!(!b.insert(intern("names-test-3")), "already there");
        // Back to the same names: shared again once shared.
        assert!(b.remove("names-test-3"));
        assert!(!b.remove("names-test-3"));
        assert!(!b.is_shared());
        b.share();
        assert!(a.is(&b));
        // An own set is found by nobody until shared.
        let mut c = Names::own(set(&["names-test-1", "names-test-2"]));
        assert!(!c.is(&a));
        c.share();
        assert!(c.is(&a));

        // A copy nothing holds is forgotten.
        let gone = Names::new(set(&["names-test-gone"]));
        let key = identity_key(&gone);
        assert!(lock(&SETS).contains_key(&key));
        drop(gone);
        sweep();
        assert!(!lock(&SETS).contains_key(&key));
    }
}

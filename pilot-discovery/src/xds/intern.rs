//! One shared copy of each resource name.
//!
//! Every delta proxy subscribes by name to thousands of resources (at 1,000
//! services, 3,000 endpoint clusters), and every stream records what it
//! holds by name. Kept per stream, those names cost more than the rest of
//! the stream's state; interned, every stream points at one copy.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

use super::hub::lock;

static NAMES: LazyLock<Mutex<HashSet<Arc<str>>>> = LazyLock::new(Mutex::default);

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
    lock(&NAMES).retain(|n| Arc::strong_count(n) > 1);
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
}

//! Mutexes locked the same way everywhere.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex even if a panicking thread poisoned it: the data behind
/// these locks stays consistent between statements, so it is still usable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

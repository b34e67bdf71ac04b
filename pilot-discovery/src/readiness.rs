//! Readiness as a set of named pending tasks: each part that must finish
//! before the server may take traffic (a source's first sync, the first
//! snapshot) registers a task at start-up and holds its guard; dropping the
//! guard clears it. The server is ready when nothing is pending, and can say
//! what still is.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::lock::lock;

#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<Mutex<Tasks>>);

#[derive(Debug, Default)]
struct Tasks {
    next: u64,
    pending: BTreeMap<u64, String>,
}

/// Holds one task pending; the task is done when this drops.
#[derive(Debug)]
#[must_use = "the task is done as soon as its guard drops"]
pub struct Pending {
    tasks: Arc<Mutex<Tasks>>,
    id: u64,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let name = lock(&self.tasks).pending.remove(&self.id);
        if let Some(name) = name {
            tracing::debug!(task = %name, "ready");
        }
    }
}

impl Readiness {
    /// Registers a task the server must wait for, named as `/ready` will
    /// list it.
    pub fn register(&self, task: impl Into<String>) -> Pending {
        let mut tasks = lock(&self.0);
        let id = tasks.next;
        tasks.next += 1;
        tasks.pending.insert(id, task.into());
        Pending {
            tasks: self.0.clone(),
            id,
        }
    }

    /// The tasks not done yet, sorted.
    pub fn pending(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.0).pending.values().cloned().collect();
        names.sort();
        names
    }

    pub fn is_ready(&self) -> bool {
        lock(&self.0).pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_every_guard_has_dropped() {
        let ready = Readiness::default();
        assert!(ready.is_ready(), "nothing registered, nothing to wait for");
        let folder = ready.register("config folder /etc/istio");
        let kube = ready.register("kubernetes://Kubernetes");
        let clone = ready.clone();
        assert!(!clone.is_ready());
        assert_eq!(
            clone.pending(),
            ["config folder /etc/istio", "kubernetes://Kubernetes"]
        );
        drop(kube);
        assert_eq!(ready.pending(), ["config folder /etc/istio"]);
        drop(folder);
        assert!(clone.is_ready());
        assert!(ready.pending().is_empty());
    }

    #[test]
    fn two_tasks_of_one_name_are_two_tasks() {
        let ready = Readiness::default();
        let a = ready.register("source");
        let b = ready.register("source");
        drop(a);
        assert_eq!(ready.pending(), ["source"]);
        drop(b);
        assert!(ready.is_ready());
    }
}

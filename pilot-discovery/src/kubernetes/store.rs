//! The Kubernetes source's view: every object the watches reported, and every
//! object currently rejected. One task owns it, so updates apply in the order
//! the watches sent them and need no lock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use mesh_model::{ConfigKey, ConfigKind};
use tokio::sync::{mpsc, watch};

use super::convert::Converted;
use super::watch::Update;
use crate::metrics::Metrics;
use crate::push::UpdateKind;
use crate::resource::Resource;
use crate::sources::{send_events, update_kind, SourceError, SourceState};

/// Most updates folded into one publication: bounds how stale the published
/// view gets while a large relist is being applied.
const MAX_BATCH: usize = 1024;

pub struct Store {
    resources: BTreeMap<ConfigKey, Resource>,
    errors: BTreeMap<ConfigKey, SourceError>,
    /// The errors changed since the view was last published.
    errors_changed: bool,
    /// Kinds of the resources newly rejected since they were last counted.
    new_rejections: Vec<ConfigKind>,
    waiting: BTreeSet<ConfigKind>,
    /// Where the objects come from, for reports.
    origin: Arc<Path>,
}

impl Store {
    /// A store that counts as synced once each of `kinds` has been listed.
    pub fn new(kinds: BTreeSet<ConfigKind>, origin: &Path) -> Store {
        Store {
            origin: Arc::from(origin),
            resources: BTreeMap::new(),
            errors: BTreeMap::new(),
            errors_changed: false,
            new_rejections: Vec::new(),
            waiting: kinds,
        }
    }

    pub fn synced(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Applies one update; returns the kinds of the objects it changed.
    pub fn apply(&mut self, update: Update) -> Vec<ConfigKind> {
        let mut changed = Vec::new();
        match update {
            Update::Applied(key, converted) => self.put(key, converted, &mut changed),
            Update::Deleted(key) => {
                self.clear_error(&key);
                if self.resources.remove(&key).is_some() {
                    changed.push(key.kind);
                }
            }
            Update::Listed { kind, items } => {
                self.waiting.remove(&kind);
                let listed: BTreeSet<&ConfigKey> = items.iter().map(|(k, _)| k).collect();
                let gone: Vec<ConfigKey> = self
                    .resources
                    .keys()
                    .chain(self.errors.keys())
                    .filter(|k| k.kind == kind && !listed.contains(k))
                    .cloned()
                    .collect();
                for key in gone {
                    self.clear_error(&key);
                    if self.resources.remove(&key).is_some() {
                        changed.push(kind);
                    }
                }
                for (key, converted) in items {
                    self.put(key, converted, &mut changed);
                }
            }
        }
        changed
    }

    fn put(&mut self, key: ConfigKey, converted: Converted, changed: &mut Vec<ConfigKind>) {
        match converted {
            Ok(resource) => {
                self.clear_error(&key);
                if self.resources.get(&key) != Some(&resource) {
                    self.resources.insert(key.clone(), resource);
                    changed.push(key.kind);
                }
            }
            Err(e) => {
                // Logged once per distinct problem; a resync repeats it silently.
                let error = SourceError::from(e.as_ref());
                if self.errors.get(&key).map(|old| &old.error) != Some(&error.error) {
                    tracing::error!(resource = %key, "invalid config: {e}; its last good version stays in force");
                    self.errors_changed = true;
                    self.new_rejections.push(key.kind);
                }
                self.errors.insert(key, error);
            }
        }
    }

    fn clear_error(&mut self, key: &ConfigKey) {
        if self.errors.remove(key).is_some() {
            self.errors_changed = true;
        }
    }

    /// The view to publish, and forgets that errors changed.
    pub fn publish(&mut self) -> SourceState {
        self.errors_changed = false;
        self.state()
    }

    pub fn state(&self) -> SourceState {
        SourceState {
            resources: self.resources.clone(),
            errors: self.errors.values().cloned().collect(),
            files: Arc::default(),
            origin: Some(self.origin.clone()),
        }
    }
}

/// Applies updates as they come, publishes the view after each batch and
/// sends one event per changed object. No events go out before the first
/// sync: the first snapshot is built from the synced view directly.
pub async fn run(
    mut store: Store,
    mut updates: mpsc::Receiver<Update>,
    state: watch::Sender<Arc<SourceState>>,
    synced: watch::Sender<bool>,
    events: mpsc::Sender<UpdateKind>,
    metrics: Metrics,
) {
    while let Some(first) = updates.recv().await {
        let was_synced = store.synced();
        let mut changed = store.apply(first);
        let mut batch = 1;
        while batch < MAX_BATCH {
            match updates.try_recv() {
                Ok(u) => changed.extend(store.apply(u)),
                Err(_) => break,
            }
            batch += 1;
        }
        for kind in store.new_rejections.drain(..) {
            crate::sources::count_rejected(&metrics, Some(kind));
        }
        if changed.is_empty() && !store.errors_changed && was_synced {
            continue;
        }
        state.send_replace(Arc::new(store.publish()));
        if !was_synced {
            if store.synced() {
                synced.send_replace(true);
            }
            continue;
        }
        if !send_events(changed.into_iter().map(update_kind), &events, &metrics).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configdir::ConfigError;
    use std::path::PathBuf;

    fn svc(name: &str, port: i32) -> (ConfigKey, Converted) {
        let s: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "n"},
            "spec": {"ports": [{"port": port}]}
        }))
        .expect("service");
        let key = super::super::convert::key(ConfigKind::Service, Some("n"), Some(name));
        (key, super::super::convert::service(s))
    }

    fn invalid(key: &ConfigKey) -> Converted {
        Err(Box::new(ConfigError {
            file: PathBuf::from("kubernetes://test"),
            document: None,
            resource: Some(key.clone()),
            field: Some("spec".into()),
            message: "bad".into(),
        }))
    }

    #[test]
    fn a_relist_replaces_what_a_kind_holds_and_keeps_the_last_good_version() {
        let mut store = Store::new([ConfigKind::Service].into(), Path::new("kubernetes://test"));
        assert!(!store.synced());
        let changed = store.apply(Update::Listed {
            kind: ConfigKind::Service,
            items: vec![svc("a", 80), svc("b", 80)],
        });
        assert!(store.synced());
        assert_eq!(changed.len(), 2);

        // An invalid edit of `a` keeps its last good version and is reported.
        let (a, _) = svc("a", 80);
        store.publish();
        assert!(store
            .apply(Update::Applied(a.clone(), invalid(&a)))
            .is_empty());
        assert!(store.errors_changed, "a new error is published");
        assert!(store.resources.contains_key(&a));
        assert_eq!(store.state().errors.len(), 1);
        assert_eq!(
            store.new_rejections.drain(..).collect::<Vec<_>>(),
            [ConfigKind::Service],
            "counted once"
        );
        store.apply(Update::Applied(a.clone(), invalid(&a)));
        assert!(
            store.new_rejections.is_empty(),
            "a resync of the same problem is not counted again"
        );

        // A relist after a broken watch: `b` was deleted meanwhile, `a` is
        // valid again and unchanged, `c` is new.
        let changed = store.apply(Update::Listed {
            kind: ConfigKind::Service,
            items: vec![svc("a", 80), svc("c", 81)],
        });
        assert_eq!(changed, vec![ConfigKind::Service, ConfigKind::Service]);
        let names: Vec<&str> = store.resources.keys().map(|k| k.name.as_str()).collect();
        assert_eq!(names, vec!["a", "c"]);
        assert!(store.state().errors.is_empty());

        // The same object again is no change; a delete is.
        assert!(store
            .apply(Update::Applied(svc("c", 81).0, svc("c", 81).1))
            .is_empty());
        let (c, _) = svc("c", 81);
        assert_eq!(store.apply(Update::Deleted(c)), vec![ConfigKind::Service]);
    }
}

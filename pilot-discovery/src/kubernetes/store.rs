//! The Kubernetes source's view: every object the watches reported, and every
//! object currently rejected. One task owns it, so updates apply in the order
//! the watches sent them and need no lock.
//!
//! With discovery selectors, only the objects of the namespaces they select
//! are published (and only their changes cause events); the others are kept,
//! so relabelling a namespace brings its objects in or out at once, with no
//! relist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use mesh_model::{ConfigKey, ConfigKind};
use tokio::sync::{mpsc, watch};

use super::convert::Converted;
use super::selector::LabelSelector;
use super::watch::Update;
use crate::metrics::Metrics;
use crate::readiness::Pending;
use crate::resource::{Origins, Resource, ResourceMap};
use crate::sources::{send_events, SourceError, SourceEvent, SourceState, Writer};

/// Most updates folded into one publication: bounds how stale the published
/// view gets while a large relist is being applied.
const MAX_BATCH: usize = 1024;

pub struct Store {
    resources: ResourceMap,
    errors: BTreeMap<ConfigKey, SourceError>,
    /// The errors changed since the view was last published.
    errors_changed: bool,
    /// Kinds of the resources newly rejected since they were last counted.
    new_rejections: Vec<ConfigKind>,
    waiting: BTreeSet<ConfigKind>,
    /// Where the objects come from, for reports.
    origin: Arc<Path>,
    /// A namespace is read when any selects its labels; none reads all.
    selectors: Vec<LabelSelector>,
}

impl Store {
    /// A store that counts as synced once each of `kinds` has been listed.
    pub fn new(kinds: BTreeSet<ConfigKind>, origin: &Path, selectors: Vec<LabelSelector>) -> Store {
        Store {
            origin: Arc::from(origin),
            selectors,
            resources: ResourceMap::new(),
            errors: BTreeMap::new(),
            errors_changed: false,
            new_rejections: Vec::new(),
            waiting: kinds,
        }
    }

    pub fn synced(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Whether the discovery selectors pick namespace `ns` (cluster-scoped
    /// objects have none and are always read).
    fn selected(&self, ns: &str) -> bool {
        if self.selectors.is_empty() || ns.is_empty() {
            return true;
        }
        let key = ConfigKey {
            kind: ConfigKind::Namespace,
            namespace: String::new(),
            name: ns.to_string(),
        };
        match self.resources.get(&key) {
            Some(Resource::Namespace(n)) => self.selectors.iter().any(|s| s.matches(&n.labels)),
            _ => false,
        }
    }

    /// Applies one update; returns the kinds of the objects it changed in
    /// the published view.
    pub fn apply(&mut self, update: Update) -> Vec<ConfigKind> {
        let mut changed = Vec::new();
        match update {
            Update::Applied(key, converted) => self.put(key, converted, &mut changed),
            Update::Deleted(key) => self.remove(&key, &mut changed),
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
                    self.remove(&key, &mut changed);
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
                    let was = self.selection_of(&key);
                    self.resources.insert(key.clone(), resource);
                    self.note_change(&key, was, changed);
                }
            }
            Err(e) => {
                // Logged once per distinct problem; a resync repeats it
                // silently, and a namespace not read stays quiet.
                let error = SourceError::from(e.as_ref());
                if self.errors.get(&key).map(|old| &old.error) != Some(&error.error)
                    && self.selected(&key.namespace)
                {
                    tracing::error!(resource = %key, "invalid config: {e}; its last good version stays in force");
                    self.errors_changed = true;
                    self.new_rejections.push(key.kind);
                }
                self.errors.insert(key, error);
            }
        }
    }

    fn remove(&mut self, key: &ConfigKey, changed: &mut Vec<ConfigKind>) {
        self.clear_error(key);
        let was = self.selection_of(key);
        if self.resources.remove(key).is_some() {
            self.note_change(key, was, changed);
        }
    }

    /// For a Namespace, whether the selectors pick it; for the rest, nothing.
    fn selection_of(&self, key: &ConfigKey) -> Option<bool> {
        (key.kind == ConfigKind::Namespace).then(|| self.selected(&key.name))
    }

    /// Records that `key` changed. A namespace whose selection flipped
    /// brings in, or takes out, every object it holds.
    fn note_change(&self, key: &ConfigKey, was: Option<bool>, changed: &mut Vec<ConfigKind>) {
        if let Some(was) = was {
            changed.push(ConfigKind::Namespace);
            if was != self.selected(&key.name) {
                changed.extend(
                    self.resources
                        .keys()
                        .filter(|k| k.namespace == key.name)
                        .map(|k| k.kind),
                );
            }
        } else if self.selected(&key.namespace) {
            changed.push(key.kind);
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
        let resources = if self.selectors.is_empty() {
            self.resources.clone()
        } else {
            self.resources
                .iter()
                .filter(|(k, _)| self.selected(&k.namespace))
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect()
        };
        SourceState {
            resources,
            errors: self
                .errors
                .iter()
                .filter(|(k, _)| self.selected(&k.namespace))
                .map(|(_, e)| e.clone())
                .collect(),
            files: Origins::new(),
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
    writer: Writer,
    synced: watch::Sender<bool>,
    syncing: Pending,
    events: mpsc::Sender<SourceEvent>,
    metrics: Metrics,
) {
    let mut syncing = Some(syncing);
    while let Some(first) = updates.recv().await {
        let seen = tokio::time::Instant::now();
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
            metrics.count_rejected(Some(kind));
        }
        if changed.is_empty() && !store.errors_changed && was_synced {
            continue;
        }
        writer.publish(store.publish());
        if !was_synced {
            if store.synced() {
                synced.send_replace(true);
                syncing.take();
            }
            continue;
        }
        let kinds = changed.into_iter().map(|k| k.info().update);
        if !send_events(kinds, seen, &events, &metrics).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::ConfigError;
    use std::path::PathBuf;

    fn svc(name: &str, port: i32) -> (ConfigKey, Converted) {
        svc_in("n", name, port)
    }

    fn svc_in(ns: &str, name: &str, port: i32) -> (ConfigKey, Converted) {
        let s: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": port}]}
        }))
        .expect("service");
        let key = super::super::convert::key(ConfigKind::Service, Some(ns), Some(name));
        (key, super::super::convert::service(s))
    }

    fn namespace(name: &str, labels: &[(&str, &str)]) -> (ConfigKey, Converted) {
        let info = crate::resource::NamespaceInfo {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let key = super::super::convert::key(ConfigKind::Namespace, None, Some(name));
        (key, Ok(Resource::Namespace(Arc::new(info))))
    }

    fn published_services(store: &Store) -> Vec<String> {
        store
            .state()
            .resources
            .keys()
            .filter(|k| k.kind == ConfigKind::Service)
            .map(|k| format!("{}/{}", k.namespace, k.name))
            .collect()
    }

    #[test]
    fn discovery_selectors_publish_only_the_namespaces_they_pick() {
        let selectors = vec!["mesh=on".parse().expect("selector")];
        let kinds = [ConfigKind::Service, ConfigKind::Namespace].into();
        let mut store = Store::new(kinds, Path::new("kubernetes://test"), selectors);
        store.apply(Update::Listed {
            kind: ConfigKind::Namespace,
            items: vec![namespace("shop", &[("mesh", "on")]), namespace("lab", &[])],
        });
        store.apply(Update::Listed {
            kind: ConfigKind::Service,
            items: vec![svc_in("shop", "web", 80), svc_in("lab", "exp", 80)],
        });
        assert!(store.synced());
        assert_eq!(published_services(&store), ["shop/web"]);

        // A change in a namespace not read causes no event, and its errors
        // are not published.
        let (exp, _) = svc_in("lab", "exp", 81);
        assert!(store
            .apply(Update::Applied(exp.clone(), svc_in("lab", "exp", 81).1))
            .is_empty());
        store.apply(Update::Applied(exp.clone(), invalid(&exp)));
        assert!(store.state().errors.is_empty());
        assert!(store.new_rejections.is_empty(), "not counted either");

        // Labelling the namespace brings its objects in; unlabelling takes
        // them out again.
        let changed = store.apply(Update::Applied(
            namespace("lab", &[("mesh", "on")]).0,
            namespace("lab", &[("mesh", "on")]).1,
        ));
        assert!(changed.contains(&ConfigKind::Service), "{changed:?}");
        assert_eq!(published_services(&store), ["lab/exp", "shop/web"]);
        assert_eq!(store.state().errors.len(), 1, "its rejected edit shows");
        let changed = store.apply(Update::Deleted(namespace("lab", &[]).0));
        assert!(changed.contains(&ConfigKind::Service), "{changed:?}");
        assert_eq!(published_services(&store), ["shop/web"]);
    }

    #[test]
    fn without_selectors_every_namespace_is_read() {
        let kinds = [ConfigKind::Service, ConfigKind::Namespace].into();
        let mut store = Store::new(kinds, Path::new("kubernetes://test"), Vec::new());
        store.apply(Update::Listed {
            kind: ConfigKind::Namespace,
            items: vec![namespace("shop", &[])],
        });
        store.apply(Update::Listed {
            kind: ConfigKind::Service,
            items: vec![svc_in("shop", "web", 80), svc_in("gone", "old", 80)],
        });
        assert_eq!(published_services(&store), ["gone/old", "shop/web"]);
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
        let mut store = Store::new(
            [ConfigKind::Service].into(),
            Path::new("kubernetes://test"),
            Vec::new(),
        );
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

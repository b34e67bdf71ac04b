//! WorkloadEntries by namespace, and within a namespace by label, so each
//! ServiceEntry looks only at entries that can match its selector instead of
//! at every entry in the mesh.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;

use mesh_model::istio::{ServiceEntry, WorkloadEntry};
use mesh_model::Config;

pub type Workload<'a> = &'a Arc<Config<WorkloadEntry>>;

#[derive(Default)]
pub struct WorkloadIndex<'a> {
    namespaces: Vec<Namespace<'a>>,
    positions: HashMap<&'a str, usize>,
}

struct Namespace<'a> {
    name: &'a str,
    /// In the order they were added.
    entries: Vec<Workload<'a>>,
    /// Made on the first lookup: a rebuild that reuses every conversion of
    /// a namespace never needs it.
    by_label: OnceCell<HashMap<(&'a str, &'a str), Vec<Workload<'a>>>>,
}

impl<'a> WorkloadIndex<'a> {
    pub fn add(&mut self, we: Workload<'a>) {
        let ns = we.meta.namespace.as_str();
        // Sources list resources by kind, then namespace: most entries
        // join the namespace the one before them joined.
        let last = self.namespaces.len().checked_sub(1);
        let i = match last {
            Some(i) if self.namespaces[i].name == ns => i,
            _ => *self.positions.entry(ns).or_insert_with(|| {
                self.namespaces.push(Namespace {
                    name: ns,
                    entries: Vec::new(),
                    by_label: OnceCell::new(),
                });
                self.namespaces.len() - 1
            }),
        };
        self.namespaces[i].entries.push(we);
    }

    /// Every namespace with WorkloadEntries, and its entries in the order
    /// they were added.
    pub fn namespaces(&self) -> impl Iterator<Item = (&'a str, &[Workload<'a>])> + '_ {
        self.namespaces
            .iter()
            .map(|n| (n.name, n.entries.as_slice()))
    }

    /// A superset of the entries `se` selects, in the order they were
    /// added; `convert` applies the whole selector.
    pub fn candidates<'s>(&'s self, se: &'a Config<ServiceEntry>) -> &'s [Workload<'a>] {
        let Some(&i) = self.positions.get(se.meta.namespace.as_str()) else {
            return &[];
        };
        let namespace = &self.namespaces[i];
        let first_label = se
            .spec
            .workload_selector
            .as_ref()
            .and_then(|s| s.labels.iter().next());
        let Some((k, v)) = first_label else {
            return &namespace.entries;
        };
        namespace
            .by_label
            .get_or_init(|| {
                let mut by_label: HashMap<_, Vec<_>> = HashMap::new();
                for we in &namespace.entries {
                    for (k, v) in &we.spec.labels {
                        by_label
                            .entry((k.as_str(), v.as_str()))
                            .or_default()
                            .push(*we);
                    }
                }
                by_label
            })
            .get(&(k.as_str(), v.as_str()))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

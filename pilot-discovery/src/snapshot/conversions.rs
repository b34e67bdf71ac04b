//! What each ServiceEntry converted to in the last build, kept so the next
//! build converts only the entries whose inputs changed.
//!
//! Under endpoint churn one WorkloadEntry changes at a time, yet every
//! build used to convert all ServiceEntries again: a copy of every service
//! and endpoint of the mesh, most of the work of a rebuild. An entry's
//! conversion depends only on the entry, the WorkloadEntries it may select
//! and the domain; sources keep the same `Arc` for a resource until it
//! changes, so comparing those pointers tells when a kept result still holds.
//! A namespace whose WorkloadEntries are all the same as last time needs no
//! look at them at all: its entries' candidates cannot have changed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mesh_model::istio::{ServiceEntry, WorkloadEntry};
use mesh_model::{Config, Endpoint, Service};

use super::serviceentry;
use super::workload_index::{Workload, WorkloadIndex};

/// One host of a ServiceEntry: its service and its endpoints, sorted by
/// address and port as the snapshot keeps them.
pub type Converted = (Arc<Service>, Arc<Vec<Endpoint>>);

/// The conversions of the last build, by the address of the entry they
/// came from. Each kept record holds its entry's `Arc`, so that address
/// cannot be reused by another entry while the record exists.
#[derive(Debug, Default)]
pub struct Conversions {
    domain: String,
    kept: HashMap<usize, Record>,
    /// What the build under way has used so far; replaces `kept` when it
    /// ends, so entries that are gone are dropped with the build.
    used: HashMap<usize, Record>,
    /// The WorkloadEntries of each namespace in the last build.
    workloads: HashMap<String, Vec<Arc<Config<WorkloadEntry>>>>,
    /// The namespaces whose WorkloadEntries are the same in this build.
    unchanged: HashSet<String>,
}

#[derive(Debug)]
struct Record {
    entry: Arc<Config<ServiceEntry>>,
    candidates: Vec<Arc<Config<WorkloadEntry>>>,
    hosts: Vec<Converted>,
}

/// Whether `now` holds the very values `kept` does, in the same order.
fn same_arcs<T>(kept: &[Arc<T>], now: &[&Arc<T>]) -> bool {
    kept.len() == now.len() && kept.iter().zip(now).all(|(k, n)| Arc::ptr_eq(k, n))
}

impl Conversions {
    /// Starts a build in `domain` over `workloads`. A different domain
    /// resolves every host differently, so nothing kept holds.
    pub fn begin(&mut self, domain: &str, workloads: &WorkloadIndex<'_>) {
        if self.domain != domain {
            self.domain = domain.to_string();
            self.kept.clear();
        }
        self.used.clear();
        self.unchanged.clear();
        let mut last = std::mem::take(&mut self.workloads);
        for (namespace, entries) in workloads.namespaces() {
            let same = last
                .remove(namespace)
                .filter(|kept| same_arcs(kept, entries));
            let kept = match same {
                Some(kept) => {
                    self.unchanged.insert(namespace.to_string());
                    kept
                }
                None => entries.iter().map(|e| Arc::clone(e)).collect(),
            };
            self.workloads.insert(namespace.to_string(), kept);
        }
    }

    /// The services and endpoints of `entry`: kept from the last build when
    /// neither it nor the WorkloadEntries it may select changed, converted
    /// otherwise.
    pub fn convert<'a>(
        &mut self,
        entry: &'a Arc<Config<ServiceEntry>>,
        workloads: &WorkloadIndex<'a>,
    ) -> &[Converted] {
        let key = Arc::as_ptr(entry) as usize;
        let same_workloads = self.unchanged.contains(entry.meta.namespace.as_str());
        let record = match self.kept.remove(&key) {
            Some(r)
                if Arc::ptr_eq(&r.entry, entry)
                    && (same_workloads
                        || same_arcs(&r.candidates, workloads.candidates(entry))) =>
            {
                r
            }
            _ => {
                let candidates = workloads.candidates(entry);
                Record {
                    entry: entry.clone(),
                    candidates: candidates.iter().map(|c| Arc::clone(c)).collect(),
                    hosts: convert(entry, candidates, &self.domain),
                }
            }
        };
        &self.used.entry(key).or_insert(record).hosts
    }

    /// Ends a build: what it used is what the next one may reuse.
    pub fn finish(&mut self) {
        self.kept = std::mem::take(&mut self.used);
    }

    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.kept.len()
    }
}

fn convert(
    entry: &Config<ServiceEntry>,
    candidates: &[Workload<'_>],
    domain: &str,
) -> Vec<Converted> {
    serviceentry::convert(entry, candidates, domain)
        .into_iter()
        .map(|(service, mut endpoints)| {
            sort_endpoints(&mut endpoints);
            (Arc::new(service), Arc::new(endpoints))
        })
        .collect()
}

/// The snapshot's order of a service's endpoints. Stable, so endpoints at
/// the same address and port keep the order they were found in.
pub fn sort_endpoints(endpoints: &mut [Endpoint]) {
    endpoints.sort_by(|a, b| (&a.address, a.port).cmp(&(&b.address, b.port)));
}

pub fn endpoints_sorted(endpoints: &[Endpoint]) -> bool {
    endpoints.is_sorted_by(|a, b| (&a.address, a.port) <= (&b.address, b.port))
}

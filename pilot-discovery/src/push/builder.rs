//! Turns the end of a debounced burst into a new snapshot and a push of
//! exactly what changed.

use std::sync::Arc;

use mesh_model::MeshSnapshot;
use tokio::sync::watch;

use super::problems::{self, Listed};
use super::{Merged, PushScope};
use crate::metrics::Metrics;
use crate::snapshot::{build_from, Conversions};
use crate::sources::SourceSet;

pub struct SnapshotBuilder {
    domain: String,
    sources: SourceSet,
    current: Arc<MeshSnapshot>,
    /// What the last build converted, for the next to reuse.
    conversions: Conversions,
    metrics: Metrics,
    /// What `/debug/configz` lists of the current snapshot's problems.
    problems: watch::Sender<Arc<Vec<Listed>>>,
}

impl SnapshotBuilder {
    /// Builds the first snapshot (version 1) from what the sources hold.
    pub fn new(
        domain: String,
        sources: SourceSet,
        metrics: Metrics,
        problems: watch::Sender<Arc<Vec<Listed>>>,
    ) -> Self {
        let mut conversions = Conversions::default();
        let current = Arc::new(build_from(&sources, 1, &domain, None, &mut conversions));
        log_snapshot(&current);
        let builder = SnapshotBuilder {
            domain,
            sources,
            current,
            conversions,
            metrics,
            problems,
        };
        builder.report(None, &builder.current);
        builder
    }

    pub fn current(&self) -> Arc<MeshSnapshot> {
        self.current.clone()
    }

    /// Rebuilds from the sources; returns the new snapshot and what a push
    /// of it must send, if the model changed. A burst that changed nothing
    /// in the model (say, a comment edited, or an edit rejected in favour
    /// of the last good version) needs no push.
    pub fn on_burst(&mut self, merged: &Merged) -> Option<(Arc<MeshSnapshot>, PushScope)> {
        let next = build_from(
            &self.sources,
            self.current.version + 1,
            &self.domain,
            Some(&self.current),
            &mut self.conversions,
        );
        let problems_changed = next.problems != self.current.problems;
        if problems_changed {
            self.report(Some(&self.current), &next);
        }
        let Some(scope) = PushScope::for_change(next.changes_since(&self.current)) else {
            tracing::debug!(
                events = merged.total(),
                "no change to the mesh model; nothing to push"
            );
            if problems_changed {
                // The same model: only what is reported about it changed.
                self.current = Arc::new(next);
            }
            return None;
        };
        let next = Arc::new(next);
        if scope.is_full() {
            log_snapshot(&next);
        }
        self.current = next.clone();
        Some((next, scope))
    }

    fn report(&self, old: Option<&MeshSnapshot>, new: &MeshSnapshot) {
        let listed = problems::listed(new, &self.sources.current());
        problems::report(old, new, &listed, &self.metrics);
        self.problems.send_replace(Arc::new(listed));
    }
}

fn log_snapshot(snap: &MeshSnapshot) {
    tracing::info!(
        version = snap.version,
        services = snap.services.len(),
        endpoints = snap.endpoints.values().map(|e| e.len()).sum::<usize>(),
        virtual_services = snap.virtual_services.len(),
        destination_rules = snap.destination_rules.len(),
        problems = snap.problems.len(),
        "snapshot built"
    );
}

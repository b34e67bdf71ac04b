//! Turns the end of a debounced burst into a new snapshot and a push of
//! exactly what changed.

use std::sync::Arc;

use mesh_model::MeshSnapshot;
use tokio::sync::watch;

use super::{Merged, PushScope};
use crate::registry::build_snapshot;
use crate::sources::SourceState;
use crate::xds::hub::XdsHub;

pub struct SnapshotBuilder {
    domain: String,
    sources: watch::Receiver<Arc<SourceState>>,
    current: Arc<MeshSnapshot>,
}

impl SnapshotBuilder {
    /// Builds the first snapshot (version 1) from what the sources hold.
    pub fn new(domain: String, sources: watch::Receiver<Arc<SourceState>>) -> Self {
        let state = sources.borrow().clone();
        let current = Arc::new(build_snapshot(1, &domain, &state.resources));
        log_snapshot(&current);
        SnapshotBuilder {
            domain,
            sources,
            current,
        }
    }

    pub fn current(&self) -> Arc<MeshSnapshot> {
        self.current.clone()
    }

    /// Rebuilds from the sources and publishes what differs. A burst that
    /// changed nothing in the model (say, a comment edited) pushes nothing.
    pub fn on_burst(&mut self, merged: Merged, hub: &XdsHub) {
        let state = self.sources.borrow().clone();
        let next = build_snapshot(self.current.version + 1, &self.domain, &state.resources);
        let Some(scope) = PushScope::for_change(next.changes_since(&self.current)) else {
            tracing::debug!(
                events = merged.total(),
                "no change to the mesh model; nothing to push"
            );
            return;
        };
        let next = Arc::new(next);
        if scope.is_full() {
            log_snapshot(&next);
        }
        self.current = next.clone();
        hub.publish(next, scope, &merged);
    }
}

fn log_snapshot(snap: &MeshSnapshot) {
    tracing::info!(
        version = snap.version,
        services = snap.services.len(),
        endpoints = snap.endpoints.values().map(Vec::len).sum::<usize>(),
        virtual_services = snap.virtual_services.len(),
        destination_rules = snap.destination_rules.len(),
        "snapshot built"
    );
}

//! Turns the end of a debounced burst into a new snapshot and a push of
//! exactly what changed.

use std::sync::Arc;

use mesh_model::MeshSnapshot;

use super::{Merged, PushScope};
use crate::sources::SourceSet;
use crate::xds::hub::XdsHub;

pub struct SnapshotBuilder {
    domain: String,
    sources: SourceSet,
    current: Arc<MeshSnapshot>,
}

impl SnapshotBuilder {
    /// Builds the first snapshot (version 1) from what the sources hold.
    pub fn new(domain: String, sources: SourceSet) -> Self {
        let current = Arc::new(sources.build(1, &domain));
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
        let next = self.sources.build(self.current.version + 1, &self.domain);
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

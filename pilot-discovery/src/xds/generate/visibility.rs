//! What one proxy sees of the mesh: the services its Sidecar resource
//! imports, and what happens to traffic for everything else.

use mesh_model::istio::{OutboundMode, Sidecar};
use mesh_model::{Config, ConfigKey, ConfigKind, MeshSnapshot, NodeType, Service};

use super::proxy::Proxy;

/// A proxy's view; `Copy` so generators pass it around freely.
#[derive(Debug, Clone, Copy)]
pub struct Visibility<'a> {
    sidecar: Option<&'a Config<Sidecar>>,
}

impl<'a> Visibility<'a> {
    /// The view of `proxy`: scoped by the Sidecar that applies to it, or
    /// the whole mesh. Gateways are never scoped by a Sidecar, as in Istio.
    pub fn of(snap: &'a MeshSnapshot, proxy: &Proxy) -> Visibility<'a> {
        let sidecar = match proxy.id.node_type {
            NodeType::Sidecar => snap
                .sidecar_for(proxy.namespace(), proxy.labels(snap))
                .map(AsRef::as_ref),
            NodeType::Router => None,
        };
        Visibility { sidecar }
    }

    pub fn sees(&self, svc: &Service) -> bool {
        self.sidecar.is_none_or(|s| {
            s.spec
                .imports(&s.meta.namespace, &svc.namespace, &svc.hostname)
        })
    }

    pub fn outbound_mode(&self) -> OutboundMode {
        self.sidecar
            .map(|s| s.spec.outbound_mode())
            .unwrap_or_default()
    }

    /// Identifies the view for caching: proxies under the same Sidecar (or
    /// under none) get the same resources.
    pub fn key(&self) -> Option<ConfigKey> {
        self.sidecar.map(|s| s.key(ConfigKind::Sidecar))
    }
}

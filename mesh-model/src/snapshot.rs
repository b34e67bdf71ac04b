use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::host::Hostname;
use crate::istio::{DestinationRule, VirtualService};
use crate::service::Service;

/// One immutable view of the whole mesh. A push reads one snapshot from start
/// to end; a change builds a new one. Shared by `Arc`, never mutated.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MeshSnapshot {
    /// Increases with every snapshot built by one process.
    pub version: u64,
    /// The DNS domain (`cluster.local`) short names are resolved in.
    pub domain: String,
    pub services: BTreeMap<Hostname, Arc<Service>>,
    pub endpoints: BTreeMap<Hostname, Vec<Endpoint>>,
    pub virtual_services: Vec<Arc<Config<VirtualService>>>,
    /// Keyed by the resolved host of each rule.
    pub destination_rules: BTreeMap<Hostname, Arc<Config<DestinationRule>>>,
}

impl MeshSnapshot {
    pub fn service(&self, host: &Hostname) -> Option<&Arc<Service>> {
        self.services.get(host)
    }

    pub fn endpoints(&self, host: &Hostname) -> &[Endpoint] {
        self.endpoints
            .get(host)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn destination_rule(&self, host: &Hostname) -> Option<&Arc<Config<DestinationRule>>> {
        self.destination_rules.get(host)
    }

    /// VirtualServices (for sidecars: those without `gateways`, or bound to
    /// `mesh`) whose hosts include `host`, in the order they were loaded.
    pub fn virtual_services_for<'a>(
        &'a self,
        host: &'a Hostname,
    ) -> impl Iterator<Item = &'a Arc<Config<VirtualService>>> + 'a {
        self.virtual_services.iter().filter(move |vs| {
            let applies_to_mesh =
                vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
            applies_to_mesh
                && vs
                    .spec
                    .hosts
                    .iter()
                    .any(|h| &Hostname::resolve(h, &vs.meta.namespace, &self.domain) == host)
        })
    }
}

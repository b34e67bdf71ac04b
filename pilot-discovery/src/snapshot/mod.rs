//! Builds the platform-independent snapshot from the resources of all
//! sources: Kubernetes objects and ServiceEntries into services and
//! endpoints, the rules that refer to them checked against each other, in
//! Istio's order of precedence.

mod build;
mod conversions;
mod destination_rules;
mod kube;
mod ports;
mod serviceentry;
mod services;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod virtual_services;
mod workload_index;

pub use build::{build_from, build_snapshot, build_snapshot_with};
pub use conversions::Conversions;

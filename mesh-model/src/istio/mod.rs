//! Istio's `networking.istio.io` kinds as plain serde types.
//!
//! Field names follow Istio's YAML (camelCase). Unknown fields are rejected so
//! that a typo, or a feature this version does not implement yet, is an error
//! naming the field rather than a rule silently ignored.
//!
//! Deserialize them from a `serde_json::Value` (YAML is read into one first).

pub mod destination_rule;
pub mod gateway;
pub mod service_entry;
pub mod sidecar;
pub mod string_match;
pub mod virtual_service;
pub mod workload_entry;

pub use destination_rule::{DestinationRule, EffectivePolicy, Subset, TrafficPolicy};
pub use gateway::Gateway;
pub use service_entry::{
    Location, ServiceEntry, ServiceEntryPort, ServiceEntryResolution, WorkloadSelector,
};
pub use sidecar::{OutboundMode, Sidecar};
pub use string_match::{PresenceMatch, StringMatch};
pub use virtual_service::{
    Destination, HttpMatchRequest, HttpRoute, HttpRouteDestination, PortSelector, VirtualService,
};
pub use workload_entry::WorkloadEntry;

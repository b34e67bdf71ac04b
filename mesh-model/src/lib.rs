//! The canonical, platform-independent model of the mesh.
//!
//! Platform adapters (a config folder, a Kubernetes API server) translate their
//! objects into these types; the xDS generators read only these types. This
//! crate knows nothing of Kubernetes, gRPC or Envoy.

pub mod config;
pub mod duration;
pub mod endpoint;
pub mod host;
pub mod identity;
pub mod istio;
pub mod kinds;
pub mod labels;
pub mod proxy;
pub mod service;
pub mod snapshot;
pub mod validation;
pub mod yaml;

pub use config::{Config, ConfigKey, ConfigKind, ConfigMeta};
pub use duration::IstioDuration;
pub use endpoint::{Endpoint, HealthStatus, Locality};
pub use host::Hostname;
pub use identity::{SpiffeId, SpiffeIdError};
pub use kinds::{IstioConfig, KindInfo, UpdateKind};
pub use proxy::{NodeType, ProxyId, ProxyIdError};
pub use service::{Protocol, Resolution, Service, ServicePort};
pub use snapshot::{MeshSnapshot, Problem, Severity, SnapshotChange};

//! pilot-discovery: the mesh control plane.
//!
//! Sources (the config folder) feed the registry, which builds immutable
//! snapshots of the mesh; the xDS server translates a snapshot into Envoy
//! resources for each connected proxy and streams them over ADS.

pub mod configdir;
pub mod http;
pub mod registry;
pub mod server;
pub mod xds;

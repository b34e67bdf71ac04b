//! pilot-agent: the sidecar's entrypoint. Writes the Envoy bootstrap from
//! flags and environment, starts Envoy, and stands between it and the
//! container runtime.

pub mod bootstrap;
pub mod envoy;
pub mod http_client;
pub mod identity;
pub mod status;
pub mod supervisor;

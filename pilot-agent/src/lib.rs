//! pilot-agent: the sidecar's entrypoint. Writes the Envoy bootstrap from
//! flags and environment, starts Envoy, and stands between it and the
//! container runtime: restarts, health checks, hot restarts, drain, readiness.

pub mod admin;
pub mod bootstrap;
pub mod child;
pub mod envoy;
pub mod http_client;
pub mod identity;
pub mod log_level;
pub mod metrics;
pub mod readiness;
pub mod reaper;
pub mod reload;
pub mod signals;
pub mod status;
pub mod supervisor;
pub mod template;
pub mod wait;
pub mod watch;

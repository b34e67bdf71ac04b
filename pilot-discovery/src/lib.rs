//! pilot-discovery: the mesh control plane.
//!
//! Sources (the config folder, a Kubernetes API server) publish what they
//! hold and send events; the debouncer merges bursts of events; the
//! snapshot builder turns each burst into a new immutable snapshot and a
//! push scoped to what changed; the hub fans the push out to every stream,
//! where the SotW or delta state machine turns it into Envoy resources. The
//! modules are layered, each importing only from those below it:
//! ARCHITECTURE.md lists the layers, and `make lint` checks them.

pub mod accept;
pub mod configdir;
pub mod debug;
pub mod debug_access;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod http;
pub mod kubernetes;
pub mod lock;
pub mod memory;
pub mod metrics;
pub mod objects;
pub mod push;
pub mod readiness;
pub mod resource;
pub mod server;
pub mod snapshot;
pub mod sources;
pub mod tls;
pub mod xds;

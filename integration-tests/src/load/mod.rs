//! The xDS load client behind `xds-load`, `make bench` and the smoke test:
//! many simulated sidecars on real ADS streams.

pub mod fleet;
pub mod grpc;
pub mod lite;
pub mod proxy;
pub mod record;
pub mod scale;
pub mod scan;
pub mod server;

pub use fleet::{Expect, Fleet};
pub use proxy::Flavour;
pub use scale::Scale;
pub use server::MeshServer;

//! Envoy xDS, in the order data flows: generators turn a snapshot into
//! Envoy resources (`generate`), a push context caches them per snapshot
//! (`context`), the SotW and delta state machines decide what each stream
//! is sent (`protocol`), and the ADS server streams it (`server`). The small
//! files here are what all of them share.

pub mod context;
pub mod digest;
pub mod generate;
pub mod hashing;
pub mod intern;
pub mod protocol;
pub mod server;
pub mod wire;

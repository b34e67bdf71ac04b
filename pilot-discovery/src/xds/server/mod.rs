//! The ADS gRPC service: streams, their framing, the hub that fans pushes
//! out to them, and who the peer's certificate says it is.

pub mod ads;
pub mod grpc;
pub mod hub;
pub mod identity;
pub mod stream;

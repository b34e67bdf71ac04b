//! Envoy xDS: generators that turn a snapshot into Envoy resources, the
//! protocol state machines, and the ADS server that streams them.

pub mod ads;
pub mod cds;
mod cluster_policy;
mod common;
pub mod context;
pub mod delta;
pub mod eds;
mod gateway;
pub mod generate;
pub mod grpc;
mod hashing;
mod held;
pub mod hub;
pub mod identity;
mod inbound;
pub mod intern;
pub mod lds;
pub mod names;
pub mod proxy;
pub mod rds;
pub mod response;
mod route;
pub mod sotw;
pub mod state;
pub mod stream;
mod tcp;
pub mod visibility;
mod wire;

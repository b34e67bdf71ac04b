//! Envoy resources from a snapshot and the proxy asking: one generator per
//! xDS type, listed in `generators`, and the pieces they are built of.

pub mod cds;
mod cluster_policy;
mod common;
pub mod eds;
pub mod gateway;
pub mod generator;
pub mod generators;
mod inbound;
pub mod lds;
mod listener;
pub mod named;
pub mod names;
pub mod proxy;
pub mod rds;
mod route;
mod tcp;
pub mod visibility;

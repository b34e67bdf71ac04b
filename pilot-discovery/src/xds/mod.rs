//! Envoy xDS: generators that turn a snapshot into Envoy resources, and the
//! ADS server that streams them.

pub mod ads;
pub mod cds;
mod common;
pub mod connection;
pub mod eds;
pub mod generate;
pub mod lds;
pub mod names;
pub mod proxy;
pub mod rds;

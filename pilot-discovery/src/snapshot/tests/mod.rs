//! Tests of the snapshot builder through its front door: resources in,
//! snapshot out. Kept apart from the files the builder is made of, which
//! they test together.

mod build;
mod conversions;
mod destination_rules;
mod ports;
mod services;
mod virtual_services;

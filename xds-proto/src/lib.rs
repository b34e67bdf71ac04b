//! Envoy v3 xDS wire types for the rest of the workspace.
//!
//! The generated code comes from the `envoy-types` crate; this crate pins one
//! copy of it, names the type URLs the discovery protocol uses, and packs and
//! unpacks `google.protobuf.Any` so callers never spell a type URL by hand.

mod any;
pub mod type_url;

pub use any::{pack, unpack, AnyError};
pub use envoy_types::pb;

/// `google.protobuf` well-known types as Envoy's generated code uses them.
pub use envoy_types::pb::google::protobuf;

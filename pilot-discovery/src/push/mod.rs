//! From source events to pushes: debouncing, rebuilding the snapshot, and
//! the scope of each push.

pub mod builder;
pub mod debounce;
pub mod problems;
pub mod scope;

pub use builder::SnapshotBuilder;
pub use debounce::{DebounceConfig, Merged};
pub use scope::PushScope;

//! The xDS protocols, per stream: what a proxy subscribed to, was sent and
//! acknowledged, and what a request or a push must send it, for
//! state-of-the-world (`sotw`) and incremental (`delta`) ADS.

pub mod delta;
pub mod encode;
pub mod held;
pub mod response;
pub mod sotw;
pub mod state;

//! VirtualService HTTP rules as Envoy routes: their matches, then what to
//! do (forward, redirect or answer) and the policies on the way.

pub mod action;
pub mod default_route;
pub mod matching;
pub mod policy;
pub mod translate;

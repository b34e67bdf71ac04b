//! What the server needs to know of one xDS type, as one row of the
//! generator table (`generators.rs`): its type URL and short name, how
//! proxies subscribe to it, what of the mesh it is pushed for, how its
//! resources are shared between proxies, and the functions that generate
//! them.

use std::collections::BTreeSet;

use mesh_model::{Hostname, MeshSnapshot};

use super::named::Named;
use super::proxy::Proxy;

/// The names a proxy asked for, for named types; wildcard types ignore it.
pub type Names<'a> = &'a mut dyn Iterator<Item = &'a str>;

/// The names of a type's resources that the endpoints of these services
/// shape.
pub type EndpointNames = fn(&MeshSnapshot, &BTreeSet<Hostname>) -> Vec<String>;

/// One xDS type's row.
#[derive(Debug, Clone, Copy)]
pub struct Generator {
    pub type_url: &'static str,
    /// `cds`, `eds`, ...: in logs, metric labels and debug pages.
    pub short_name: &'static str,
    /// Served whole: the proxy gets every resource of the type, whatever
    /// it names (CDS, LDS). Otherwise only those it subscribes to by name.
    pub wildcard: bool,
    /// For a type an endpoint-only push also sends: the names of its
    /// resources that the endpoints of these services shape. `None`: only
    /// full pushes send the type.
    pub endpoint_push: Option<EndpointNames>,
    /// How its resources are shared between proxies, which is how the push
    /// context caches them.
    pub cache: Cache,
    /// What every proxy of the same shape gets alike, of the names it asked
    /// for where the type is named.
    pub shared: fn(&MeshSnapshot, &Proxy, Names<'_>) -> Vec<Named>,
    /// What only this proxy gets (its own workload's inbound resources).
    pub own: fn(&MeshSnapshot, &Proxy) -> Vec<Named>,
}

/// How one type's resources are shared between proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// One whole list per proxy shape, plus what each proxy has alone.
    List(ShapeOf),
    /// One resource per name, the same for every proxy.
    Name,
    /// One resource per name and proxy shape.
    NameAndShape(ShapeOf),
}

/// Which of a proxy's traits a type's resources depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeOf {
    /// Whether it binds its own listeners (local mode) and the Sidecar
    /// that scopes it.
    Scope,
    /// That, and its namespace (VirtualServices follow `exportTo`) and, for
    /// a gateway, the Gateways that select it.
    Full,
}

/// For rows whose proxies have nothing of their own.
pub fn nothing_own(_: &MeshSnapshot, _: &Proxy) -> Vec<Named> {
    Vec::new()
}

//! One snapshot and the resources generated from it, shared by every stream.
//!
//! Most of what a proxy receives does not depend on which proxy it is:
//! endpoints are the same for every proxy; clusters differ only by the
//! Sidecar resource that scopes the proxy and its interception mode,
//! listeners and routes also by its namespace. Each of those is generated
//! and encoded once per snapshot, the first time a proxy needs it, and every
//! other proxy of the same shape gets the same bytes. A new snapshot starts
//! with an empty cache; the old one is freed with the last push that uses it.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::hash::Hash;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};

use mesh_model::{ConfigKey, ConfigKind, MeshSnapshot, NodeType};
use xds_proto::type_url;

use super::generate::gateway;
use super::generate::generators::{endpoint_clusters, generate, generate_own, generate_shared};
use super::generate::named::{set_digest, Named};
use super::generate::proxy::Proxy;
use super::generate::visibility::Visibility;
use super::hashing::NameMap;
use super::intern::Names;
use crate::lock::lock;
use crate::push::PushScope;

/// A push's scope and the clusters whose endpoints it sends.
type ScopeClusters = (Arc<PushScope>, Arc<[String]>);

/// A map of lazily generated values. The map lock is held only to find or
/// add a cell; generation runs outside it, and streams that want the same
/// cell at the same time wait for the first one instead of repeating it.
struct Cells<K, V> {
    cells: Mutex<NameMap<K, Arc<OnceLock<V>>>>,
}

impl<K: Eq + Hash, V: Clone> Cells<K, V> {
    fn new() -> Self {
        Cells {
            cells: Mutex::new(NameMap::default()),
        }
    }

    fn cell(&self, key: K) -> Arc<OnceLock<V>> {
        lock(&self.cells).entry(key).or_default().clone()
    }

    fn get(&self, key: K, make: impl FnOnce() -> V) -> V {
        self.cell(key).get_or_init(make).clone()
    }

    /// As [`Cells::get`] while fewer than `max` cells exist or `key`'s does;
    /// `None` once the map is full.
    fn get_bounded(&self, key: K, max: usize, make: impl FnOnce() -> V) -> Option<V> {
        let cell = {
            let mut map = lock(&self.cells);
            if map.len() >= max && !map.contains_key(&key) {
                return None;
            }
            map.entry(key).or_default().clone()
        };
        Some(cell.get_or_init(make).clone())
    }
}

impl<V: Clone> Cells<String, V> {
    /// The values for `names`, taking the map lock once for all of them and
    /// copying a name only when its cell is new: a proxy asks for thousands
    /// of endpoints at a time.
    fn get_all<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
        make: impl Fn(&str) -> V,
    ) -> Vec<V> {
        let cells: Vec<(&str, Arc<OnceLock<V>>)> = {
            let mut map = lock(&self.cells);
            names
                .into_iter()
                .map(|n| {
                    let cell = match map.get(n) {
                        Some(c) => c.clone(),
                        None => map.entry(n.to_string()).or_default().clone(),
                    };
                    (n, cell)
                })
                .collect()
        };
        cells
            .into_iter()
            .map(|(n, cell)| cell.get_or_init(|| make(n)).clone())
            .collect()
    }
}

/// What makes two proxies' clusters, listeners and routes differ: whether
/// the proxy binds its listeners itself (local mode), its namespace
/// (VirtualServices follow `exportTo`), the Sidecar that scopes it and, for
/// a gateway, the Gateways that select it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    local_mode: bool,
    namespace: String,
    sidecar: Option<ConfigKey>,
    gateways: Option<Vec<ConfigKey>>,
}

/// One generated list of resources, shared by every proxy of one shape,
/// with the digest of the set.
#[derive(Debug, Default)]
pub struct Listed {
    items: Vec<Arc<Named>>,
    digest: u64,
    /// Each resource's version by name, for the delta streams that hold the
    /// list (`Held`); made the first time one looks a name up.
    versions: OnceLock<NameMap<Arc<str>, u64>>,
}

impl Listed {
    pub fn new(items: Vec<Arc<Named>>) -> Self {
        let digest = set_digest(&items);
        Listed {
            items,
            digest,
            versions: OnceLock::new(),
        }
    }

    pub fn items(&self) -> &[Arc<Named>] {
        &self.items
    }

    /// The [`set_digest`] of the list.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The version (digest) of the resource named `name` in the list.
    pub fn version_of(&self, name: &str) -> Option<u64> {
        self.versions
            .get_or_init(|| {
                self.items
                    .iter()
                    .map(|r| (r.name.clone(), r.digest))
                    .collect()
            })
            .get(name)
            .copied()
    }
}

pub type SharedList = Arc<Listed>;

/// The resources of one type for one proxy: a list shared with the
/// proxies like it, and the ones only it has.
#[derive(Debug, Default)]
pub struct ResourceSet {
    shared: SharedList,
    own: Vec<Arc<Named>>,
}

impl ResourceSet {
    /// The [`set_digest`] of every resource in the set, without a pass over
    /// the shared ones.
    pub fn digest(&self) -> u64 {
        self.shared.digest.wrapping_add(set_digest(&self.own))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Named>> {
        self.shared.items.iter().chain(&self.own)
    }

    pub fn new(shared: SharedList, own: Vec<Arc<Named>>) -> Self {
        ResourceSet { shared, own }
    }

    /// The part shared with proxies like this one.
    pub fn shared(&self) -> &SharedList {
        &self.shared
    }

    /// The part only this proxy has.
    pub fn own(&self) -> &[Arc<Named>] {
        &self.own
    }

    pub fn into_vec(self) -> Vec<Arc<Named>> {
        let mut out = self.shared.items.clone();
        out.extend(self.own);
        out
    }
}

impl From<Vec<Arc<Named>>> for ResourceSet {
    fn from(own: Vec<Arc<Named>>) -> Self {
        ResourceSet {
            shared: SharedList::default(),
            own,
        }
    }
}

/// How many distinct settled endpoint subscriptions one snapshot keeps a
/// list for. Proxies scoped alike subscribe alike, so a mesh has a handful;
/// past the bound, a proxy's list is assembled for it alone and not kept.
const MAX_ENDPOINT_LISTS: usize = 64;

/// A subscription and its endpoints. Subscriptions are shared between
/// streams with the same names (`Names`), so one is known by its address;
/// holding it here keeps that address from being reused.
struct Subscription {
    names: Names,
    list: SharedList,
}

pub struct PushContext {
    snapshot: Arc<MeshSnapshot>,
    /// Clusters, which do not depend on the namespace.
    clusters: Cells<(bool, Option<ConfigKey>), SharedList>,
    listeners: Cells<Shape, SharedList>,
    /// Endpoints, by cluster name.
    endpoints: Cells<String, Arc<Named>>,
    /// Whole endpoint lists, by subscription: most proxies subscribe to
    /// the same clusters, thousands of them.
    endpoint_lists: Cells<u64, Arc<Subscription>>,
    /// Routes, by route configuration name.
    routes: Cells<(String, Shape), Arc<Named>>,
    /// The endpoint clusters of the last partial push's services. Every
    /// stream of one push asks for the same ones; the scope is held, so
    /// its identity cannot be reused by another.
    scope_clusters: Mutex<Option<ScopeClusters>>,
}

impl PushContext {
    pub fn new(snapshot: Arc<MeshSnapshot>) -> Self {
        PushContext {
            snapshot,
            clusters: Cells::new(),
            listeners: Cells::new(),
            endpoints: Cells::new(),
            endpoint_lists: Cells::new(),
            routes: Cells::new(),
            scope_clusters: Mutex::new(None),
        }
    }

    /// The clusters whose endpoints a partial push of `scope` sends (every
    /// port and subset of its services); `None` for a full push. Made once
    /// per push, not once per stream.
    pub fn scope_clusters(&self, scope: &Arc<PushScope>) -> Option<Arc<[String]>> {
        let hosts = scope.endpoints()?;
        let mut last = lock(&self.scope_clusters);
        if let Some((held, names)) = last.as_ref() {
            if Arc::ptr_eq(held, scope) {
                return Some(names.clone());
            }
        }
        let names: Arc<[String]> = endpoint_clusters(&self.snapshot, hosts).into();
        *last = Some((scope.clone(), names.clone()));
        Some(names)
    }

    pub fn snapshot(&self) -> &Arc<MeshSnapshot> {
        &self.snapshot
    }

    /// The resources of `t` for `proxy`, as [`generate`] makes them, from
    /// the cache where another proxy already needed the same.
    pub fn resources<N: Borrow<str> + Ord>(
        &self,
        proxy: &Proxy,
        t: &str,
        names: &BTreeSet<N>,
    ) -> Vec<Arc<Named>> {
        let one = |name: &str| {
            let only = BTreeSet::from([name]);
            let mut made = generate(&self.snapshot, proxy, t, &only);
            // Generators return exactly one resource per requested name.
            Arc::new(
                made.pop()
                    .unwrap_or_else(|| Named::new(name, Default::default())),
            )
        };
        if let Some(set) = self.shared_and_own(proxy, t, names) {
            return set.into_vec();
        }
        match t {
            type_url::ENDPOINT => self
                .endpoints
                .get_all(names.iter().map(|n| n.borrow()), one),
            type_url::ROUTE => {
                let shape = self.shape(proxy);
                names
                    .iter()
                    .map(|n| {
                        let n: &str = n.borrow();
                        self.routes.get((n.to_string(), shape.clone()), || one(n))
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// What [`PushContext::resources`] gives for a stream's whole
    /// subscription, shared where proxies alike share it, with the set's
    /// digest computed once for all of them.
    pub fn resource_set(&self, proxy: &Proxy, t: &str, names: &Names) -> ResourceSet {
        if let Some(set) = self.shared_and_own(proxy, t, names) {
            return set;
        }
        // A subscription still changing (a proxy connecting, step by step)
        // is its stream's alone: a kept list would be used by no other
        // stream, and a thousand proxies connecting at once would fill the
        // bound with them before any settled.
        if t != type_url::ENDPOINT || !names.is_shared() {
            return self.resources(proxy, t, names).into();
        }
        let make = || {
            Arc::new(Subscription {
                names: names.clone(),
                list: Arc::new(Listed::new(self.resources(proxy, t, names))),
            })
        };
        let key = names.address() as u64;
        match self
            .endpoint_lists
            .get_bounded(key, MAX_ENDPOINT_LISTS, make)
        {
            Some(sub) if sub.names.is(names) => ResourceSet {
                shared: sub.list.clone(),
                own: Vec::new(),
            },
            _ => self.resources(proxy, t, names).into(),
        }
    }

    /// Clusters and listeners: one list per proxy shape, and the proxy's
    /// own inbound ones. `None` for the other types.
    fn shared_and_own<N: Borrow<str> + Ord>(
        &self,
        proxy: &Proxy,
        t: &str,
        names: &BTreeSet<N>,
    ) -> Option<ResourceSet> {
        let all = || {
            let made = generate_shared(&self.snapshot, proxy, t, names);
            Arc::new(Listed::new(shared(made)))
        };
        let shared = match t {
            type_url::CLUSTER => {
                let sidecar = Visibility::of(&self.snapshot, proxy).key();
                self.clusters.get((proxy.is_local_mode(), sidecar), all)
            }
            type_url::LISTENER => self.listeners.get(self.shape(proxy), all),
            _ => return None,
        };
        let own = generate_own(&self.snapshot, proxy, t)
            .into_iter()
            .map(Arc::new)
            .collect();
        Some(ResourceSet { shared, own })
    }

    fn shape(&self, proxy: &Proxy) -> Shape {
        Shape {
            local_mode: proxy.is_local_mode(),
            namespace: proxy.namespace().to_string(),
            sidecar: Visibility::of(&self.snapshot, proxy).key(),
            gateways: (proxy.id.node_type == NodeType::Router).then(|| {
                gateway::selected(&self.snapshot, proxy)
                    .map(|g| g.key(ConfigKind::Gateway))
                    .collect()
            }),
        }
    }
}

fn shared(made: Vec<Named>) -> Vec<Arc<Named>> {
    made.into_iter().map(Arc::new).collect()
}

impl Deref for PushContext {
    type Target = MeshSnapshot;
    fn deref(&self) -> &MeshSnapshot {
        &self.snapshot
    }
}

impl std::fmt::Debug for PushContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushContext")
            .field("version", &self.snapshot.version)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::snapshot::testing::snapshot_of;
    use crate::xds::generate::proxy::tests::local_proxy;

    /// A context over an empty mesh at `version`.
    pub(crate) fn empty(version: u64) -> PushContext {
        PushContext::new(Arc::new(MeshSnapshot {
            version,
            domain: "cluster.local".into(),
            ..Default::default()
        }))
    }

    const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: shop}
spec:
  hosts: [a.shop.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: shop}
spec:
  hosts: [a]
  exportTo: ["."]
  http:
  - route: [{destination: {host: a}, weight: 100}]
"#;

    fn proxy(ns: &str) -> Proxy {
        local_proxy("127.0.0.1", ns)
    }

    /// Every type the context caches; routes are asked for by route name,
    /// the others by cluster name.
    const TYPES: [&str; 4] = [
        type_url::CLUSTER,
        type_url::LISTENER,
        type_url::ENDPOINT,
        type_url::ROUTE,
    ];

    #[test]
    fn cached_resources_equal_fresh_ones_and_are_shared() {
        let snap = Arc::new(snapshot_of(MESH));
        let ctx = PushContext::new(snap.clone());
        let names = BTreeSet::from(["outbound|80||a.shop.svc.cluster.local".to_string()]);
        let routes = BTreeSet::from(["80".to_string()]);
        for t in TYPES {
            let wanted = if t == type_url::ROUTE {
                &routes
            } else {
                &names
            };
            for p in [proxy("shop"), proxy("web")] {
                let cached = ctx.resources(&p, t, wanted);
                let fresh = generate(&snap, &p, t, wanted);
                assert_eq!(cached.len(), fresh.len(), "{t}");
                for (c, f) in cached.iter().zip(&fresh) {
                    assert_eq!(c.resource, f.resource, "{t} for {}", p.namespace());
                }
            }
        }
        // Same proxy shape, same allocation.
        let a = ctx.resources(&proxy("shop"), type_url::CLUSTER, &names);
        let b = ctx.resources(&proxy("web"), type_url::CLUSTER, &names);
        assert!(Arc::ptr_eq(&a[0], &b[0]));
        // Routes differ by namespace: the VirtualService is exported to `shop` only.
        let shop = ctx.resources(&proxy("shop"), type_url::ROUTE, &routes);
        let web = ctx.resources(&proxy("web"), type_url::ROUTE, &routes);
        assert_ne!(shop[0].resource, web[0].resource);
    }

    #[test]
    fn a_partial_push_names_its_clusters_once_for_every_stream() {
        let ctx = PushContext::new(Arc::new(snapshot_of(MESH)));
        let host = mesh_model::Hostname::new("a.shop.svc.cluster.local");
        let scope = Arc::new(PushScope::Endpoints(BTreeSet::from([host.clone()])));
        let first = ctx.scope_clusters(&scope).expect("a partial push");
        assert_eq!(
            *first,
            ["outbound|80||a.shop.svc.cluster.local".to_string()]
        );
        // Another stream of the same push gets the same names, not a copy.
        let again = ctx.scope_clusters(&scope).expect("a partial push");
        assert!(Arc::ptr_eq(&first, &again));
        // An equal scope of another push (a merged one) gets its own.
        let other = Arc::new(PushScope::Endpoints(BTreeSet::from([host])));
        let second = ctx.scope_clusters(&other).expect("a partial push");
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(first, second);
        let unknown = mesh_model::Hostname::new("b.shop.svc.cluster.local");
        let unknown = Arc::new(PushScope::Endpoints(BTreeSet::from([unknown])));
        assert!(ctx
            .scope_clusters(&unknown)
            .expect("a partial push")
            .is_empty());
        assert!(ctx.scope_clusters(&Arc::new(PushScope::Full)).is_none());
    }

    #[test]
    fn resource_sets_hold_what_resources_do_and_share_endpoint_lists() {
        let snap = Arc::new(snapshot_of(MESH));
        let ctx = PushContext::new(snap.clone());
        let cluster = crate::xds::intern::intern("outbound|80||a.shop.svc.cluster.local");
        let names = Names::new(BTreeSet::from([cluster.clone()]));
        let routes = Names::new(BTreeSet::from([crate::xds::intern::intern("80")]));
        for t in TYPES {
            let wanted = if t == type_url::ROUTE {
                &routes
            } else {
                &names
            };
            let p = proxy("shop");
            let set = ctx.resource_set(&p, t, wanted);
            let listed: Vec<_> = ctx.resources(&p, t, &**wanted);
            assert_eq!(set.digest(), set_digest(&listed), "{t}");
            let from_set: Vec<_> = set.iter().map(|r| r.resource.clone()).collect();
            let from_list: Vec<_> = listed.iter().map(|r| r.resource.clone()).collect();
            assert_eq!(from_set, from_list, "{t}");
            assert_eq!(set.into_vec().len(), listed.len(), "{t}");
        }
        // Two streams subscribed alike get one list.
        let alike = Names::new(BTreeSet::from([cluster.clone()]));
        let a = ctx.resource_set(&proxy("shop"), type_url::ENDPOINT, &names);
        let b = ctx.resource_set(&proxy("web"), type_url::ENDPOINT, &alike);
        assert!(Arc::ptr_eq(&a.shared, &b.shared));
        assert_eq!(a.shared.items.len(), 1);
        // A subscription not yet settled is listed for its stream alone,
        // however many there are, and takes none of the kept lists.
        for i in 0..=MAX_ENDPOINT_LISTS {
            let connecting = Names::own(BTreeSet::from([crate::xds::intern::intern(&format!(
                "outbound|{i}||connecting"
            ))]));
            let own = ctx.resource_set(&proxy("shop"), type_url::ENDPOINT, &connecting);
            assert!(own.shared.items.is_empty());
            assert_eq!(own.own.len(), 1);
        }
        assert_eq!(lock(&ctx.endpoint_lists.cells).len(), 1);
        // Past the bound, lists are made per stream, and still right.
        for i in 0..MAX_ENDPOINT_LISTS {
            let other = Names::new(BTreeSet::from([crate::xds::intern::intern(&format!(
                "outbound|{i}||x"
            ))]));
            ctx.resource_set(&proxy("shop"), type_url::ENDPOINT, &other);
        }
        let late = Names::new(BTreeSet::from([
            cluster,
            crate::xds::intern::intern("outbound|1||late"),
        ]));
        let c = ctx.resource_set(&proxy("shop"), type_url::ENDPOINT, &late);
        assert!(c.shared.items.is_empty());
        assert_eq!(c.own.len(), 2);
        assert_eq!(lock(&ctx.endpoint_lists.cells).len(), MAX_ENDPOINT_LISTS);
    }
}

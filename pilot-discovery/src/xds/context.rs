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

use super::generate::gateway;
use super::generate::generator::{Cache, Generator, ShapeOf};
use super::generate::generators::{generate_shared, generator, GENERATORS};
use super::generate::named::{set_digest, Named};
use super::generate::proxy::Proxy;
use super::generate::visibility::Visibility;
use super::hashing::NameMap;
use super::intern::Names;
use crate::lock::lock;
use crate::push::PushScope;

/// A partial push's scope and, for each type it sends, the names it
/// touches (by index in the generator table), made as streams ask.
type ScopeNames = (Arc<PushScope>, Vec<Option<Arc<[String]>>>);

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

/// What makes two proxies' resources differ: whether the proxy binds its
/// listeners itself (local mode), its namespace (VirtualServices follow
/// `exportTo`), the Sidecar that scopes it and, for a gateway, the Gateways
/// that select it. A type that depends on less leaves the rest default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
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

/// How many distinct settled subscriptions (to endpoints, or any named
/// type shared by every proxy) one snapshot keeps a list for. Proxies scoped
/// alike subscribe alike, so a mesh has a handful; past the bound, a
/// proxy's list is assembled for it alone and not kept.
const MAX_SUBSCRIPTION_LISTS: usize = 64;

/// A subscription and its resources. Subscriptions are shared between
/// streams with the same names (`Names`), so one is known by its address;
/// holding it here keeps that address from being reused.
struct Subscription {
    names: Names,
    list: SharedList,
}

/// The cache of one type, as its generator row shares its resources.
enum TypeCache {
    Lists(Cells<Shape, SharedList>),
    ByName(Cells<String, Arc<Named>>),
    ByNameAndShape(Cells<(String, Shape), Arc<Named>>),
}

impl TypeCache {
    fn new(cache: Cache) -> Self {
        match cache {
            Cache::List(_) => TypeCache::Lists(Cells::new()),
            Cache::Name => TypeCache::ByName(Cells::new()),
            Cache::NameAndShape(_) => TypeCache::ByNameAndShape(Cells::new()),
        }
    }
}

pub struct PushContext {
    snapshot: Arc<MeshSnapshot>,
    /// One cache per row of the generator table, in its order.
    caches: Vec<TypeCache>,
    /// Whole lists of resources shared by every proxy, by type and
    /// subscription: most proxies subscribe to the same endpoints,
    /// thousands of them.
    subscriptions: Cells<(usize, u64), Arc<Subscription>>,
    /// What the last partial push touches. Every stream of one push asks
    /// for the same; the scope is held, so its identity cannot be reused by
    /// another.
    scope_names: Mutex<Option<ScopeNames>>,
}

impl PushContext {
    pub fn new(snapshot: Arc<MeshSnapshot>) -> Self {
        PushContext {
            snapshot,
            caches: GENERATORS.iter().map(|g| TypeCache::new(g.cache)).collect(),
            subscriptions: Cells::new(),
            scope_names: Mutex::new(None),
        }
    }

    /// The names of type `t` that a partial push of `scope` sends (for
    /// endpoints: every port and subset cluster of its services); `None`
    /// for a full push, and for a type partial pushes do not send. Made
    /// once per push and type, not once per stream.
    pub fn scope_names(&self, scope: &Arc<PushScope>, t: &str) -> Option<Arc<[String]>> {
        let hosts = scope.endpoints()?;
        let (i, g) = generator(t)?;
        let names_of = g.endpoint_push?;
        let mut last = lock(&self.scope_names);
        let held = match last.as_mut() {
            Some((held, names)) if Arc::ptr_eq(held, scope) => names,
            _ => &mut last.insert((scope.clone(), vec![None; GENERATORS.len()])).1,
        };
        Some(
            held[i]
                .get_or_insert_with(|| names_of(&self.snapshot, hosts).into())
                .clone(),
        )
    }

    pub fn snapshot(&self) -> &Arc<MeshSnapshot> {
        &self.snapshot
    }

    /// The resources of `t` for `proxy`, as [`generate`] makes them, from
    /// the cache where another proxy already needed the same.
    ///
    /// [`generate`]: super::generate::generators::generate
    pub fn resources<N: Borrow<str> + Ord>(
        &self,
        proxy: &Proxy,
        t: &str,
        names: &BTreeSet<N>,
    ) -> Vec<Arc<Named>> {
        let Some((i, g)) = generator(t) else {
            return Vec::new();
        };
        let one = |name: &str| {
            let mut made = generate_shared(g, &self.snapshot, proxy, &BTreeSet::from([name]));
            // Generators return exactly one resource per requested name.
            Arc::new(
                made.pop()
                    .unwrap_or_else(|| Named::new(name, Default::default())),
            )
        };
        match &self.caches[i] {
            TypeCache::Lists(cells) => self.shared_and_own(cells, g, proxy, names).into_vec(),
            TypeCache::ByName(cells) => cells.get_all(names.iter().map(|n| n.borrow()), one),
            TypeCache::ByNameAndShape(cells) => {
                let shape = self.shape(proxy, g);
                names
                    .iter()
                    .map(|n| {
                        let n: &str = n.borrow();
                        cells.get((n.to_string(), shape.clone()), || one(n))
                    })
                    .collect()
            }
        }
    }

    /// What [`PushContext::resources`] gives for a stream's whole
    /// subscription, shared where proxies alike share it, with the set's
    /// digest computed once for all of them.
    pub fn resource_set(&self, proxy: &Proxy, t: &str, names: &Names) -> ResourceSet {
        let Some((i, g)) = generator(t) else {
            return ResourceSet::default();
        };
        match &self.caches[i] {
            TypeCache::Lists(cells) => return self.shared_and_own(cells, g, proxy, names),
            TypeCache::ByName(_) => {}
            TypeCache::ByNameAndShape(_) => return self.resources(proxy, t, names).into(),
        }
        // A subscription still changing (a proxy connecting, step by step)
        // is its stream's alone: a kept list would be used by no other
        // stream, and a thousand proxies connecting at once would fill the
        // bound with them before any settled.
        if !names.is_shared() {
            return self.resources(proxy, t, names).into();
        }
        let make = || {
            Arc::new(Subscription {
                names: names.clone(),
                list: Arc::new(Listed::new(self.resources(proxy, t, names))),
            })
        };
        let key = (i, names.address() as u64);
        match self
            .subscriptions
            .get_bounded(key, MAX_SUBSCRIPTION_LISTS, make)
        {
            Some(sub) if sub.names.is(names) => ResourceSet {
                shared: sub.list.clone(),
                own: Vec::new(),
            },
            _ => self.resources(proxy, t, names).into(),
        }
    }

    /// A listed type (clusters, listeners): one list per proxy shape, and
    /// the proxy's own resources.
    fn shared_and_own<N: Borrow<str> + Ord>(
        &self,
        cells: &Cells<Shape, SharedList>,
        g: &Generator,
        proxy: &Proxy,
        names: &BTreeSet<N>,
    ) -> ResourceSet {
        let all = || {
            let made = generate_shared(g, &self.snapshot, proxy, names);
            Arc::new(Listed::new(shared(made)))
        };
        let shared = cells.get(self.shape(proxy, g), all);
        let own = (g.own)(&self.snapshot, proxy)
            .into_iter()
            .map(Arc::new)
            .collect();
        ResourceSet { shared, own }
    }

    /// What of `proxy` the resources of `g` depend on.
    fn shape(&self, proxy: &Proxy, g: &Generator) -> Shape {
        let of = match g.cache {
            Cache::List(of) | Cache::NameAndShape(of) => of,
            Cache::Name => return Shape::default(),
        };
        let scope = Shape {
            local_mode: proxy.is_local_mode(),
            sidecar: Visibility::of(&self.snapshot, proxy).key(),
            ..Shape::default()
        };
        match of {
            ShapeOf::Scope => scope,
            ShapeOf::Full => Shape {
                namespace: proxy.namespace().to_string(),
                gateways: (proxy.id.node_type == NodeType::Router).then(|| {
                    gateway::selected(&self.snapshot, proxy)
                        .map(|g| g.key(ConfigKind::Gateway))
                        .collect()
                }),
                ..scope
            },
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
    use xds_proto::type_url;

    use super::*;
    use crate::snapshot::testing::snapshot_of;
    use crate::xds::generate::generators::generate;
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
        let first = ctx
            .scope_names(&scope, type_url::ENDPOINT)
            .expect("a partial push");
        assert_eq!(
            *first,
            ["outbound|80||a.shop.svc.cluster.local".to_string()]
        );
        // Another stream of the same push gets the same names, not a copy.
        let again = ctx
            .scope_names(&scope, type_url::ENDPOINT)
            .expect("a partial push");
        assert!(Arc::ptr_eq(&first, &again));
        // An equal scope of another push (a merged one) gets its own.
        let other = Arc::new(PushScope::Endpoints(BTreeSet::from([host])));
        let second = ctx
            .scope_names(&other, type_url::ENDPOINT)
            .expect("a partial push");
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(first, second);
        let unknown = mesh_model::Hostname::new("b.shop.svc.cluster.local");
        let unknown = Arc::new(PushScope::Endpoints(BTreeSet::from([unknown])));
        assert!(ctx
            .scope_names(&unknown, type_url::ENDPOINT)
            .expect("a partial push")
            .is_empty());
        assert!(ctx
            .scope_names(&Arc::new(PushScope::Full), type_url::ENDPOINT)
            .is_none());
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
        for i in 0..=MAX_SUBSCRIPTION_LISTS {
            let connecting = Names::own(BTreeSet::from([crate::xds::intern::intern(&format!(
                "outbound|{i}||connecting"
            ))]));
            let own = ctx.resource_set(&proxy("shop"), type_url::ENDPOINT, &connecting);
            assert!(own.shared.items.is_empty());
            assert_eq!(own.own.len(), 1);
        }
        assert_eq!(lock(&ctx.subscriptions.cells).len(), 1);
        // Past the bound, lists are made per stream, and still right.
        for i in 0..MAX_SUBSCRIPTION_LISTS {
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
        assert_eq!(lock(&ctx.subscriptions.cells).len(), MAX_SUBSCRIPTION_LISTS);
    }
}

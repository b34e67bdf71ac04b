//! The connected proxies and the current snapshot: where pushes fan out.
//!
//! Each stream has one pending push slot. Publishing a change merges into the
//! slot instead of queueing, so a proxy that is slow to take pushes gets one
//! push covering everything it missed, never a backlog.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use mesh_model::MeshSnapshot;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::lock::lock;
use crate::metrics::Metrics;
use mesh_model::UpdateKind;

use crate::push::{Merged, PushScope};
use crate::xds::context::PushContext;
use crate::xds::intern;
use crate::xds::protocol::state::ConnState;

/// One push to one connection.
#[derive(Debug, Clone)]
pub struct Push {
    pub snapshot: Arc<PushContext>,
    /// Shared by every stream the push goes to: one set of hostnames, not
    /// one copy per proxy.
    pub scope: Arc<PushScope>,
    /// When the first source event behind this push arrived; convergence
    /// time is measured from here.
    pub started: Instant,
}

impl Push {
    /// Folds a newer push into this pending one: the newest snapshot, the
    /// union of the scopes, the earliest start.
    pub fn merge(self, newer: Push) -> Push {
        Push {
            snapshot: newer.snapshot,
            scope: Arc::new(
                Arc::unwrap_or_clone(self.scope).merge(Arc::unwrap_or_clone(newer.scope)),
            ),
            started: self.started.min(newer.started),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Pushes generated at the same time, across all streams.
    pub push_throttle: usize,
    /// How long a response may wait for room in a stream's buffer before the
    /// stream is given up as stuck.
    pub send_timeout: Duration,
    /// The most resource bytes in one delta response; a bigger change goes
    /// in several.
    pub part_bytes: usize,
}

/// Istio's `PILOT_PUSH_THROTTLE` default, scaled to the machine: generation is
/// CPU-bound, so more concurrent pushes than a few per core only add memory.
pub fn default_push_throttle() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 10).clamp(10, 100)
}

/// One ADS stream.
#[derive(Debug)]
pub struct ConnHandle {
    pub id: u64,
    /// `sotw` or `delta`.
    pub flavour: &'static str,
    pub peer: Option<SocketAddr>,
    pub connected_at: SystemTime,
    pub state: Mutex<ConnState>,
    pending: Mutex<Option<Push>>,
    wake: Notify,
}

impl ConnHandle {
    fn enqueue(&self, push: Push) {
        let mut slot = lock(&self.pending);
        *slot = Some(match slot.take() {
            Some(pending) => pending.merge(push),
            None => push,
        });
        drop(slot);
        self.wake.notify_one();
    }

    /// Waits until a push may be pending.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    pub fn take_pending(&self) -> Option<Push> {
        lock(&self.pending).take()
    }
}

/// What the last pushes did, for `/debug/push_status`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushStatus {
    /// Snapshot version in force.
    pub version: u64,
    /// Changes pushed since start.
    pub pushes: u64,
    pub full_pushes: u64,
    pub eds_pushes: u64,
    pub last: Option<LastPush>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastPush {
    pub version: u64,
    pub full: bool,
    /// For endpoint-only pushes, the services whose endpoints changed.
    pub eds_services: Vec<String>,
    /// Pods whose labels changed: their proxies got a full push.
    pub relabelled_pods: Vec<String>,
    /// Source events merged into this push, by kind.
    pub events: BTreeMap<UpdateKind, usize>,
    pub debounce_ms: f64,
    pub proxies: usize,
    pub at_unix_ms: u128,
}

pub struct XdsHub {
    current: RwLock<Option<Arc<PushContext>>>,
    conns: Mutex<BTreeMap<u64, Arc<ConnHandle>>>,
    next_id: AtomicU64,
    throttle: Semaphore,
    pub config: HubConfig,
    pub metrics: Metrics,
    status: Mutex<PushStatus>,
}

impl XdsHub {
    pub fn new(config: HubConfig, metrics: Metrics) -> Self {
        XdsHub {
            current: RwLock::new(None),
            conns: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            throttle: Semaphore::new(config.push_throttle.max(1)),
            config,
            metrics,
            status: Mutex::new(PushStatus::default()),
        }
    }

    /// The snapshot in force; `None` until the sources have loaded.
    pub fn snapshot(&self) -> Option<Arc<PushContext>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn connections(&self) -> Vec<Arc<ConnHandle>> {
        lock(&self.conns).values().cloned().collect()
    }

    pub fn push_status(&self) -> PushStatus {
        lock(&self.status).clone()
    }

    pub async fn push_permit(&self) -> Option<SemaphorePermit<'_>> {
        self.throttle.acquire().await.ok()
    }

    /// Adds a stream; it is removed when the returned guard drops.
    pub fn register(
        self: &Arc<Self>,
        flavour: &'static str,
        peer: Option<SocketAddr>,
    ) -> Registration {
        let handle = Arc::new(ConnHandle {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            flavour,
            peer,
            connected_at: SystemTime::now(),
            state: Mutex::new(ConnState::with_part_bytes(self.config.part_bytes)),
            pending: Mutex::new(None),
            wake: Notify::new(),
        });
        lock(&self.conns).insert(handle.id, handle.clone());
        self.metrics.xds_clients.inc();
        Registration {
            hub: self.clone(),
            handle,
        }
    }

    /// Installs the first snapshot: from now on streams are accepted.
    pub fn install_first(&self, snap: Arc<MeshSnapshot>) {
        self.metrics.services.set(gauge(snap.services.len()));
        lock(&self.status).version = snap.version;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            Some(Arc::new(PushContext::new(snap)));
    }

    /// Installs `snap` and queues a push of `scope` to every stream. A stream
    /// registered after the snapshot is installed reads it on its own, so no
    /// stream misses it.
    pub fn publish(&self, snap: Arc<MeshSnapshot>, scope: PushScope, merged: &Merged) {
        let now = Instant::now();
        self.metrics
            .debounce_time
            .observe(now.duration_since(merged.first).as_secs_f64());
        self.metrics.services.set(gauge(snap.services.len()));
        let snap = Arc::new(PushContext::new(snap));
        // Names nothing holds any more (resources of snapshots no stream
        // uses, ended subscriptions) are freed once per snapshot.
        intern::sweep();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(snap.clone());

        let conns = self.connections();
        let scope = Arc::new(scope);
        for c in &conns {
            c.enqueue(Push {
                snapshot: snap.clone(),
                scope: scope.clone(),
                started: merged.first,
            });
        }
        let eds_services: Vec<String> = scope
            .endpoints()
            .into_iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        let relabelled_pods: Vec<String> = match scope.as_ref() {
            PushScope::Pods { pods, .. } => pods.iter().cloned().collect(),
            _ => Vec::new(),
        };
        tracing::info!(
            version = snap.version,
            full = scope.is_full(),
            eds_services = eds_services.len(),
            relabelled_pods = relabelled_pods.len(),
            events = merged.total(),
            proxies = conns.len(),
            "push"
        );
        let mut status = lock(&self.status);
        status.version = snap.version;
        status.pushes += 1;
        if scope.is_full() {
            status.full_pushes += 1;
        } else {
            status.eds_pushes += 1;
        }
        status.last = Some(LastPush {
            version: snap.version,
            full: scope.is_full(),
            eds_services,
            relabelled_pods,
            events: merged.counts.clone(),
            debounce_ms: now.duration_since(merged.first).as_secs_f64() * 1000.0,
            proxies: conns.len(),
            at_unix_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
        });
    }

    /// The handle of the stream serving `node_id`, the newest if several.
    pub fn find_proxy(&self, node_id: &str) -> Option<Arc<ConnHandle>> {
        self.connections().into_iter().rev().find(|c| {
            lock(&c.state)
                .proxy
                .as_ref()
                .is_some_and(|p| p.node_id == node_id)
        })
    }

    /// Names of the proxies connected, for logs and tests.
    pub fn proxy_ids(&self) -> BTreeSet<String> {
        self.connections()
            .iter()
            .filter_map(|c| lock(&c.state).proxy.as_ref().map(|p| p.node_id.clone()))
            .collect()
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Keeps a stream in the hub; dropping it removes the stream.
pub struct Registration {
    hub: Arc<XdsHub>,
    pub handle: Arc<ConnHandle>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.hub.conns).remove(&self.handle.id);
        self.hub.metrics.xds_clients.dec();
        let state = lock(&self.handle.state);
        if let Some(p) = &state.proxy {
            tracing::info!(node = %p.node_id, connection = self.handle.id, "proxy disconnected");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_model::Hostname;

    fn hub() -> Arc<XdsHub> {
        Arc::new(XdsHub::new(
            HubConfig {
                push_throttle: 2,
                send_timeout: Duration::from_secs(1),
                part_bytes: crate::xds::protocol::state::PART_BYTES,
            },
            Metrics::new().expect("metrics"),
        ))
    }

    fn snap(version: u64) -> Arc<MeshSnapshot> {
        Arc::new(MeshSnapshot {
            version,
            ..Default::default()
        })
    }

    fn burst() -> Merged {
        Merged {
            first: Instant::now(),
            last: Instant::now(),
            counts: BTreeMap::from([(UpdateKind::Eds, 1)]),
        }
    }

    fn context(version: u64) -> Arc<PushContext> {
        Arc::new(crate::xds::context::tests::empty(version))
    }

    fn hosts(names: &[&str]) -> BTreeSet<Hostname> {
        names.iter().map(|n| Hostname::new(*n)).collect()
    }

    fn eds(host: &str) -> PushScope {
        PushScope::Endpoints(BTreeSet::from([Hostname::new(host)]))
    }

    #[test]
    fn pushes_waiting_for_a_stream_merge_into_one() {
        let hub = hub();
        hub.install_first(snap(1));
        let reg = hub.register("sotw", None);
        hub.publish(snap(2), eds("a"), &burst());
        hub.publish(snap(3), eds("b"), &burst());
        let pending = reg.handle.take_pending().expect("one pending push");
        assert_eq!(pending.snapshot.version, 3);
        assert_eq!(*pending.scope, eds("a").merge(eds("b")));
        assert!(
            reg.handle.take_pending().is_none(),
            "only one push was queued"
        );
        assert_eq!(hub.push_status().pushes, 2);
        assert_eq!(hub.metrics.xds_clients.get(), 1);
        drop(reg);
        assert_eq!(hub.metrics.xds_clients.get(), 0);
        assert!(hub.connections().is_empty());
    }

    #[tokio::test]
    async fn concurrent_pushes_are_bounded_by_the_throttle() {
        let hub = hub(); // push_throttle: 2
        let a = hub.push_permit().await.expect("permit");
        let _b = hub.push_permit().await.expect("permit");
        let third = tokio::time::timeout(Duration::from_millis(50), hub.push_permit()).await;
        assert!(third.is_err(), "a third push ran while two were generating");
        drop(a);
        let third = tokio::time::timeout(Duration::from_secs(5), hub.push_permit()).await;
        assert!(third.is_ok_and(|p| p.is_some()), "a permit freed up");
    }

    #[test]
    fn merged_push_keeps_the_newest_snapshot_and_earliest_start() {
        let t0 = Instant::now();
        let old = Push {
            snapshot: context(1),
            scope: Arc::new(PushScope::Endpoints(hosts(&["a"]))),
            started: t0,
        };
        let new = Push {
            snapshot: context(2),
            scope: Arc::new(PushScope::Endpoints(hosts(&["b"]))),
            started: t0 + std::time::Duration::from_millis(5),
        };
        let m = old.merge(new);
        assert_eq!(m.snapshot.version, 2);
        assert_eq!(m.started, t0);
        assert_eq!(*m.scope, PushScope::Endpoints(hosts(&["a", "b"])));
    }
}

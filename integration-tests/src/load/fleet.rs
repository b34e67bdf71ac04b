//! Many simulated proxies against one server, and the checks and figures
//! taken over all of them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::proxy::{run, Flavour, Shared, SimProxy};
use super::record::{Record, TYPES};
use crate::synth::namespace;

const POLL: Duration = Duration::from_millis(10);

pub struct Fleet {
    pub proxies: Vec<Arc<SimProxy>>,
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// How many resources of each type every proxy must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    pub clusters: usize,
    pub endpoints: usize,
    pub listeners: usize,
    pub routes: usize,
}

impl Fleet {
    /// Opens `count` streams as distinct sidecars spread over `namespaces`,
    /// all at once, or `rate` per second when given.
    pub fn start(
        addr: SocketAddr,
        count: usize,
        flavour: Flavour,
        namespaces: usize,
        rate: Option<f64>,
    ) -> Fleet {
        Fleet::start_as("load", addr, count, flavour, namespaces, rate)
    }

    /// As [`Fleet::start`], with pods named `<prefix>-<n>`, so that two
    /// fleets on one server never share a node id.
    pub fn start_as(
        prefix: &str,
        addr: SocketAddr,
        count: usize,
        flavour: Flavour,
        namespaces: usize,
        rate: Option<f64>,
    ) -> Fleet {
        let shared = Arc::new(Shared::default());
        let (stop, stop_rx) = watch::channel(false);
        let proxies: Vec<Arc<SimProxy>> = (0..count)
            .map(|i| {
                let ns = namespace(i % namespaces.max(1));
                Arc::new(SimProxy::new(
                    format!("sidecar~127.0.0.1~{prefix}-{i:05}.{ns}~{ns}.svc.cluster.local"),
                    ns,
                    shared.names.clone(),
                ))
            })
            .collect();
        let mut tasks = JoinSet::new();
        let gap = rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r));
        let first = tokio::time::Instant::now();
        for (i, p) in proxies.iter().enumerate() {
            let (p, shared, stop_rx) = (p.clone(), shared.clone(), stop_rx.clone());
            let at = gap.map(|g| first + g * u32::try_from(i).unwrap_or(u32::MAX));
            tasks.spawn(async move {
                if let Some(at) = at {
                    tokio::time::sleep_until(at).await;
                }
                run(p, addr, flavour, shared, stop_rx).await;
            });
        }
        Fleet {
            proxies,
            shared,
            stop,
            tasks,
        }
    }

    pub fn complete(&self) -> usize {
        self.shared.complete.load(Ordering::Relaxed)
    }

    /// Waits until every proxy holds a complete config; fails at once if a
    /// stream fails.
    pub async fn wait_complete(&self, timeout: Duration) -> anyhow::Result<()> {
        self.wait_until("every proxy holds a complete config", timeout, |f| {
            f.complete() == f.proxies.len()
        })
        .await
    }

    /// Polls `done` over the fleet until it holds or `timeout` passes. A
    /// failed stream ends the wait with its error.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Fleet) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.failed.load(Ordering::Relaxed) > 0 {
                anyhow::bail!("{what}: a stream failed: {}", self.first_error());
            }
            if done(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{what}: not within {timeout:?} ({} of {} proxies complete)",
                    self.complete(),
                    self.proxies.len()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn first_error(&self) -> String {
        self.proxies
            .iter()
            .find_map(|p| {
                p.record()
                    .error
                    .as_ref()
                    .map(|e| format!("{}: {e}", p.node_id))
            })
            .unwrap_or_default()
    }

    pub fn set_recording(&self, on: bool) {
        self.shared.recording.store(on, Ordering::Relaxed);
    }

    /// Forgets the arrivals recorded so far.
    pub fn clear_arrivals(&self) {
        for p in &self.proxies {
            p.record().arrivals.clear();
        }
    }

    /// Protobuf bytes and responses received, over all proxies.
    pub fn received(&self) -> (u64, u64) {
        self.proxies.iter().fold((0, 0), |(bytes, n), p| {
            let r = p.record();
            (bytes + r.bytes, n + r.responses)
        })
    }

    pub fn total_bytes(&self) -> u64 {
        self.received().0
    }

    /// Per proxy, the time from starting to connect until its config was
    /// complete; proxies that never completed are left out.
    pub fn connect_times(&self) -> Vec<Duration> {
        self.proxies
            .iter()
            .filter_map(|p| {
                let r = p.record();
                Some(r.complete?.duration_since(r.started?))
            })
            .collect()
    }

    /// Whether `f` holds for every proxy.
    pub fn all(&self, mut f: impl FnMut(&SimProxy, &Record) -> bool) -> bool {
        self.proxies.iter().all(|p| f(p, &p.record()))
    }

    /// Runs `f` over every proxy's record.
    pub fn each<T>(&self, mut f: impl FnMut(&SimProxy, &Record) -> T) -> Vec<T> {
        self.proxies.iter().map(|p| f(p, &p.record())).collect()
    }

    /// Every proxy is complete, holds the expected number of resources of
    /// each type, and holds exactly what every other proxy of its namespace
    /// holds.
    pub fn check_consistent(&self, expect: Expect) -> anyhow::Result<()> {
        let want = [
            expect.clusters,
            expect.endpoints,
            expect.listeners,
            expect.routes,
        ];
        let mut by_namespace: BTreeMap<String, (String, [(usize, u64); 4])> = BTreeMap::new();
        for p in &self.proxies {
            let rec = p.record();
            if let Some(e) = &rec.error {
                anyhow::bail!("{}: stream failed: {e}", p.node_id);
            }
            anyhow::ensure!(rec.is_complete(), "{}: config incomplete", p.node_id);
            let prints: [(usize, u64); 4] = std::array::from_fn(|t| rec.fingerprint(t));
            for (t, (count, _)) in prints.iter().enumerate() {
                anyhow::ensure!(
                    *count == want[t],
                    "{}: holds {count} of {}, expected {}",
                    p.node_id,
                    TYPES[t],
                    want[t]
                );
            }
            match by_namespace.get(&p.namespace) {
                None => {
                    by_namespace.insert(p.namespace.clone(), (p.node_id.clone(), prints));
                }
                Some((first, theirs)) => {
                    for t in 0..TYPES.len() {
                        anyhow::ensure!(
                            prints[t] == theirs[t],
                            "{} and {first} hold different {}",
                            p.node_id,
                            TYPES[t]
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Closes every stream and waits for the proxies to finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

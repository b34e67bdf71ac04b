//! One simulated sidecar: an ADS stream that subscribes the way Envoy does
//! (clusters and listeners as wildcards, then the endpoints and routes they
//! name), ACKs every response at once and records what it holds.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use prost::bytes::Bytes;
use prost::Message;
use tokio::sync::watch;
use xds_proto::pb::envoy::config::core::v3::Node;
use xds_proto::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};

use super::grpc::{Inbound, Outbound};
use super::lite::{digest, facts, ResponseView};
use super::record::{
    dependent, type_byte, type_index, Arrival, NameTable, Record, CDS, EDS, LDS, RDS, TYPES,
};

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// Envoy's default HTTP/2 stream and connection window.
const ENVOY_WINDOW: u32 = 256 << 20;

/// Tries to open a stream before the proxy is reported failed.
const CONNECT_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Sotw,
    Delta,
}

impl std::str::FromStr for Flavour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sotw" => Ok(Flavour::Sotw),
            "delta" => Ok(Flavour::Delta),
            other => Err(format!("unknown xDS flavour {other:?} (sotw or delta)")),
        }
    }
}

/// State every proxy of a fleet shares with the driver.
#[derive(Debug, Default)]
pub struct Shared {
    pub connected: AtomicUsize,
    pub complete: AtomicUsize,
    pub failed: AtomicUsize,
    /// Record each arriving resource with its time.
    pub recording: AtomicBool,
    /// The names every proxy's subscriptions refer to.
    pub names: Arc<NameTable>,
}

/// One proxy: who it is and what it holds.
#[derive(Debug)]
pub struct SimProxy {
    pub node_id: String,
    pub namespace: String,
    record: Mutex<Record>,
}

impl SimProxy {
    pub fn new(node_id: String, namespace: String, names: Arc<NameTable>) -> Self {
        SimProxy {
            node_id,
            namespace,
            record: Mutex::new(Record::new(names)),
        }
    }

    pub fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A sidecar node in local mode (as the test client presents it), with its
/// namespace in the metadata.
pub fn node(id: &str, namespace: &str) -> Node {
    use xds_proto::protobuf::{value::Kind, Value};
    let mut node = crate::ads_client::node(id);
    if let Some(meta) = node.metadata.as_mut() {
        meta.fields.insert(
            "NAMESPACE".to_string(),
            Value {
                kind: Some(Kind::StringValue(namespace.to_string())),
            },
        );
    }
    node
}

/// Runs the proxy until `stop` turns true or the stream ends. Failures are
/// recorded on the proxy and counted in `shared`, never panics.
pub async fn run(
    proxy: Arc<SimProxy>,
    addr: SocketAddr,
    flavour: Flavour,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    proxy.record().started = Some(Instant::now());
    let mut backoff = Duration::from_millis(50);
    let mut attempts = 0;
    let result = loop {
        attempts += 1;
        let r = tokio::select! {
            r = stream(&proxy, addr, flavour, &shared) => r,
            _ = stop.wait_for(|s| *s) => Ok(()),
        };
        // A stream that never opened is retried with backoff, as Envoy
        // does when a burst of connections overflows the server's accept
        // queue; a stream that fails once open is a failure to report.
        let never_opened = proxy.record().connected.is_none();
        match r {
            Err(e) if never_opened && attempts < CONNECT_ATTEMPTS => {
                tracing::debug!(node = %proxy.node_id, error = %e, "retrying connect");
                proxy.record().retries += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            other => break other,
        }
    };
    if let Err(e) = result {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        proxy.record().error = Some(format!("{e:#}"));
    }
}

async fn stream(
    proxy: &SimProxy,
    addr: SocketAddr,
    flavour: Flavour,
    shared: &Shared,
) -> anyhow::Result<()> {
    // Flow-control windows as Envoy advertises them by default (256 MiB),
    // so the server sends as it would to a real sidecar rather than
    // waiting for a window update every 64 KiB.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .initial_stream_window_size(ENVOY_WINDOW)
        .initial_connection_window_size(ENVOY_WINDOW)
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    match flavour {
        Flavour::Sotw => sotw(proxy, &channel, shared).await,
        Flavour::Delta => delta(proxy, &channel, shared).await,
    }
}

/// Opens an ADS stream at `path` whose first requests are `first`, and
/// marks the proxy connected. Envoy's order: clusters, then listeners, the
/// node on the first request only.
async fn open<Req: Message>(
    proxy: &SimProxy,
    shared: &Shared,
    channel: &tonic::transport::Channel,
    path: &'static str,
    first: impl Fn(Option<Node>, &str) -> Req,
) -> anyhow::Result<(Outbound, Inbound)> {
    let node = node(&proxy.node_id, &proxy.namespace);
    let requests = [first(Some(node), TYPES[CDS]), first(None, TYPES[LDS])];
    let (tx, inbound) = super::grpc::open(channel, path, &requests).await?;
    mark_connected(proxy, shared);
    Ok((tx, inbound))
}

async fn sotw(
    proxy: &SimProxy,
    channel: &tonic::transport::Channel,
    shared: &Shared,
) -> anyhow::Result<()> {
    let (tx, mut inbound) = open(proxy, shared, channel, SOTW_PATH, |node, t| {
        DiscoveryRequest {
            node,
            type_url: t.to_string(),
            ..Default::default()
        }
    })
    .await?;
    // The last nonce and version per type, for ACKs and subscription updates.
    let mut acked: [(String, String); 4] = Default::default();
    while let Some(msg) = inbound.next().await? {
        let resp = ResponseView::sotw(&msg).context("undecodable response")?;
        let t = type_index(resp.type_url)
            .with_context(|| format!("response of unknown type {}", resp.type_url))?;
        let (subscribed, follow_up) = apply_sotw(proxy, shared, t, &resp, &msg)?;
        acked[t] = (resp.version.to_string(), resp.nonce.to_string());
        tx.send(&DiscoveryRequest {
            version_info: resp.version.to_string(),
            resource_names: subscribed,
            type_url: resp.type_url.to_string(),
            response_nonce: resp.nonce.to_string(),
            ..Default::default()
        })
        .await?;
        if let Some((d, names)) = follow_up {
            tx.send(&DiscoveryRequest {
                version_info: acked[d].0.clone(),
                resource_names: names,
                type_url: TYPES[d].to_string(),
                response_nonce: acked[d].1.clone(),
                ..Default::default()
            })
            .await?;
        }
        check_complete(proxy, shared);
    }
    anyhow::bail!("the server ended the stream")
}

async fn delta(
    proxy: &SimProxy,
    channel: &tonic::transport::Channel,
    shared: &Shared,
) -> anyhow::Result<()> {
    let (tx, mut inbound) = open(proxy, shared, channel, DELTA_PATH, |node, t| {
        DeltaDiscoveryRequest {
            node,
            type_url: t.to_string(),
            ..Default::default()
        }
    })
    .await?;
    while let Some(msg) = inbound.next().await? {
        let resp = ResponseView::delta(&msg).context("undecodable response")?;
        let t = type_index(resp.type_url)
            .with_context(|| format!("response of unknown type {}", resp.type_url))?;
        let follow_up = apply_delta(proxy, shared, t, &resp, &msg)?;
        tx.send(&DeltaDiscoveryRequest {
            type_url: resp.type_url.to_string(),
            response_nonce: resp.nonce.to_string(),
            ..Default::default()
        })
        .await?;
        if let Some(req) = follow_up {
            tx.send(&req).await?;
        }
        check_complete(proxy, shared);
    }
    anyhow::bail!("the server ended the stream")
}

/// Takes in a state-of-the-world response of type `t`. Returns the names to
/// ACK it with, and the dependent type's new subscription if it changed.
#[allow(clippy::type_complexity)]
fn apply_sotw(
    proxy: &SimProxy,
    shared: &Shared,
    t: usize,
    resp: &ResponseView<'_>,
    msg: &Bytes,
) -> anyhow::Result<(Vec<String>, Option<(usize, Vec<String>)>)> {
    let mut rec = proxy.record();
    let recording = shared.recording.load(Ordering::Relaxed);
    if t == CDS || t == LDS {
        // Clusters and listeners arrive whole: what is missing is gone.
        rec.resources[t].clear();
        rec.clear_needs(t);
    }
    let now = Instant::now();
    for value in resp.resources() {
        let value = value.with_context(|| format!("undecodable response of {}", resp.type_url))?;
        hold(&mut rec, t, value, msg, recording, now)?;
    }
    note_response(&mut rec, t, resp.len() as u64);
    let subscribed = match t {
        EDS | RDS => rec.subscribed(t),
        _ => Vec::new(),
    };
    let follow_up =
        dependent(t).and_then(|d| rec.update_subscription(t).map(|_| (d, rec.subscribed(d))));
    Ok((subscribed, follow_up))
}

/// Takes in a delta response of type `t`. Returns the request that changes
/// the dependent type's subscription, if it changed.
fn apply_delta(
    proxy: &SimProxy,
    shared: &Shared,
    t: usize,
    resp: &ResponseView<'_>,
    msg: &Bytes,
) -> anyhow::Result<Option<DeltaDiscoveryRequest>> {
    let mut rec = proxy.record();
    let recording = shared.recording.load(Ordering::Relaxed);
    let now = Instant::now();
    for value in resp.resources() {
        let value = value.with_context(|| format!("undecodable response of {}", resp.type_url))?;
        hold(&mut rec, t, value, msg, recording, now)?;
    }
    for name in resp.removed() {
        let name = name.with_context(|| format!("undecodable response of {}", resp.type_url))?;
        let key = digest(name);
        rec.resources[t].remove(&key);
        if dependent(t).is_some() {
            rec.drop_needs(t, key);
        }
        if recording {
            rec.arrivals.push(arrival(t, key, now));
        }
    }
    note_response(&mut rec, t, resp.len() as u64);
    Ok(dependent(t).and_then(|d| {
        let (subscribe, unsubscribe) = rec.update_subscription(t)?;
        Some(DeltaDiscoveryRequest {
            type_url: TYPES[d].to_string(),
            resource_names_subscribe: subscribe,
            resource_names_unsubscribe: unsubscribe,
            ..Default::default()
        })
    }))
}

fn arrival(t: usize, name: u64, at: Instant) -> Arrival {
    Arrival {
        at,
        type_index: type_byte(t),
        name,
    }
}

/// Stores one resource of type `t`, encoded as `bytes` inside the
/// response `msg`.
fn hold(
    rec: &mut Record,
    t: usize,
    bytes: &[u8],
    msg: &Bytes,
    recording: bool,
    now: Instant,
) -> anyhow::Result<()> {
    let f = facts(TYPES[t], bytes).with_context(|| format!("undecodable {}", TYPES[t]))?;
    let key = digest(f.name);
    rec.resources[t].insert(key, digest(bytes));
    if dependent(t).is_some() {
        // Names are views of `msg`, kept as such without a copy.
        rec.set_needs(t, key, &f.needs, |n| msg.slice_ref(n));
    }
    if recording {
        rec.arrivals.push(arrival(t, key, now));
    }
    Ok(())
}

fn note_response(rec: &mut Record, t: usize, size: u64) {
    rec.bytes += size;
    rec.responses += 1;
    rec.seen[t] = true;
}

fn mark_connected(proxy: &SimProxy, shared: &Shared) {
    proxy.record().connected = Some(Instant::now());
    shared.connected.fetch_add(1, Ordering::Relaxed);
}

/// Marks the proxy complete the first time it holds everything it needs;
/// called right after the ACK went out.
fn check_complete(proxy: &SimProxy, shared: &Shared) {
    let mut rec = proxy.record();
    if rec.complete.is_none() && rec.is_complete() {
        rec.complete = Some(Instant::now());
        shared.complete.fetch_add(1, Ordering::Relaxed);
    }
}

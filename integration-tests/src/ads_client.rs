//! A raw ADS client for protocol tests: sends exactly the requests a test
//! writes and hands back every response, with deadlines on every wait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use pilot_discovery_types::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// Envoy types used by the client, re-exported for tests.
pub mod pilot_discovery_types {
    pub use xds_proto::pb::envoy::config::core::v3::Node;
    pub use xds_proto::pb::envoy::service::discovery::v3::{
        aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
        DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
    };
    pub use xds_proto::pb::google::rpc::Status as RpcStatus;
    pub use xds_proto::protobuf::{value::Kind, Struct, Value};
    pub use xds_proto::type_url;
}

pub const WAIT: Duration = Duration::from_secs(20);

/// A node as a sidecar in local mode presents it.
pub fn node(id: &str) -> Node {
    let mut fields = std::collections::HashMap::new();
    fields.insert(
        "INTERCEPTION_MODE".to_string(),
        Value {
            kind: Some(Kind::StringValue("NONE".into())),
        },
    );
    Node {
        id: id.into(),
        metadata: Some(Struct { fields }),
        ..Default::default()
    }
}

/// A sidecar node id in namespace `default`.
pub fn sidecar_id(pod: &str) -> String {
    format!("sidecar~127.0.0.1~{pod}.default~default.svc.cluster.local")
}

async fn client(
    addr: SocketAddr,
) -> anyhow::Result<AggregatedDiscoveryServiceClient<tonic::transport::Channel>> {
    client_with_window(addr, None).await
}

/// `window`: HTTP/2 flow-control windows in bytes; `None` keeps the defaults
/// (megabytes). A small window makes a client that stops reading block the
/// server quickly, as a stuck proxy would.
async fn client_with_window(
    addr: SocketAddr,
    window: Option<u32>,
) -> anyhow::Result<AggregatedDiscoveryServiceClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .initial_stream_window_size(window)
        .initial_connection_window_size(window)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    Ok(AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX))
}

/// How a wait for the next message ended.
#[derive(Debug)]
pub enum Next<T> {
    Message(T),
    /// The server closed the stream with this status (OK when it just ended).
    Closed(tonic::Status),
}

async fn next<T>(stream: &mut Streaming<T>, timeout: Duration) -> anyhow::Result<Next<T>> {
    match tokio::time::timeout(timeout, stream.message()).await {
        Err(_) => anyhow::bail!("no message from the server within {timeout:?}"),
        Ok(Ok(Some(m))) => Ok(Next::Message(m)),
        Ok(Ok(None)) => Ok(Next::Closed(tonic::Status::ok("stream ended"))),
        Ok(Err(status)) => Ok(Next::Closed(status)),
    }
}

/// One state-of-the-world ADS stream.
pub struct SotwStream {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl SotwStream {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        Self::open_with_window(addr, None).await
    }

    /// Opens a stream whose HTTP/2 windows are `window` bytes.
    pub async fn open_with_window(addr: SocketAddr, window: Option<u32>) -> anyhow::Result<Self> {
        Self::connect(addr, window).await.context("stream refused")
    }

    /// Opens a stream as sidecar `pod`, subscribes to `t` with `names`, and
    /// returns the stream with the first response (not yet ACKed).
    pub async fn start(
        addr: SocketAddr,
        pod: &str,
        t: &str,
        names: &[&str],
    ) -> anyhow::Result<(Self, DiscoveryResponse)> {
        Self::start_with_window(addr, None, pod, t, names).await
    }

    /// As [`SotwStream::start`], with HTTP/2 windows of `window` bytes.
    pub async fn start_with_window(
        addr: SocketAddr,
        window: Option<u32>,
        pod: &str,
        t: &str,
        names: &[&str],
    ) -> anyhow::Result<(Self, DiscoveryResponse)> {
        let mut s = Self::open_with_window(addr, window).await?;
        s.subscribe_as(node(&sidecar_id(pod)), t, names).await?;
        let first = s.recv_type(t).await?;
        Ok((s, first))
    }

    /// Opens a stream; fails with the server's status if it refuses it.
    pub async fn try_open(addr: SocketAddr) -> Result<Self, tonic::Status> {
        Self::connect(addr, None).await
    }

    async fn connect(addr: SocketAddr, window: Option<u32>) -> Result<Self, tonic::Status> {
        let c = client_with_window(addr, window)
            .await
            .map_err(|e| tonic::Status::unknown(format!("{e:#}")))?;
        Self::open_on(c).await
    }

    /// Opens a stream on a channel the caller set up (TLS, say).
    pub async fn over(channel: tonic::transport::Channel) -> Result<Self, tonic::Status> {
        Self::open_on(AggregatedDiscoveryServiceClient::new(channel)).await
    }

    async fn open_on(
        mut c: AggregatedDiscoveryServiceClient<tonic::transport::Channel>,
    ) -> Result<Self, tonic::Status> {
        let (tx, rx) = mpsc::channel(16);
        let resp = c
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await?;
        Ok(SotwStream {
            tx,
            rx: resp.into_inner(),
        })
    }

    pub async fn send(&self, req: DiscoveryRequest) -> anyhow::Result<()> {
        self.tx
            .send(req)
            .await
            .map_err(|_| anyhow::anyhow!("request stream closed"))
    }

    /// Sends a request for `t` with `names` answering `nonce`.
    pub async fn request(&self, t: &str, names: &[&str], nonce: &str) -> anyhow::Result<()> {
        self.send(DiscoveryRequest {
            type_url: t.into(),
            resource_names: names.iter().map(ToString::to_string).collect(),
            response_nonce: nonce.into(),
            ..Default::default()
        })
        .await
    }

    /// The first request of a stream, carrying the node.
    pub async fn subscribe_as(&self, node: Node, t: &str, names: &[&str]) -> anyhow::Result<()> {
        self.send(DiscoveryRequest {
            node: Some(node),
            type_url: t.into(),
            resource_names: names.iter().map(ToString::to_string).collect(),
            ..Default::default()
        })
        .await
    }

    /// ACKs `resp`, keeping `names` subscribed.
    pub async fn ack(&self, resp: &DiscoveryResponse, names: &[&str]) -> anyhow::Result<()> {
        self.send(DiscoveryRequest {
            type_url: resp.type_url.clone(),
            version_info: resp.version_info.clone(),
            resource_names: names.iter().map(ToString::to_string).collect(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        })
        .await
    }

    pub async fn next(&mut self) -> anyhow::Result<Next<DiscoveryResponse>> {
        next(&mut self.rx, WAIT).await
    }

    /// The next response; fails if the stream closes or nothing comes in time.
    pub async fn recv(&mut self) -> anyhow::Result<DiscoveryResponse> {
        match self.next().await? {
            Next::Message(m) => Ok(m),
            Next::Closed(s) => anyhow::bail!("stream closed: {s}"),
        }
    }

    /// The next response, which must be of type `t`.
    pub async fn recv_type(&mut self, t: &str) -> anyhow::Result<DiscoveryResponse> {
        let r = self.recv().await?;
        anyhow::ensure!(
            r.type_url == t,
            "expected a {} response, got {} (version {})",
            pilot_discovery::xds::generate::generators::short_name(t),
            pilot_discovery::xds::generate::generators::short_name(&r.type_url),
            r.version_info
        );
        Ok(r)
    }
}

/// One delta ADS stream.
pub struct DeltaStream {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
}

impl DeltaStream {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(16);
        let resp = client(addr)
            .await?
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .context("stream refused")?;
        Ok(DeltaStream {
            tx,
            rx: resp.into_inner(),
        })
    }

    /// Opens a stream as sidecar `pod`, subscribes to `t` (wildcard when
    /// `subscribe` is empty), and returns it with the first response.
    pub async fn start(
        addr: SocketAddr,
        pod: &str,
        t: &str,
        subscribe: &[&str],
    ) -> anyhow::Result<(Self, DeltaDiscoveryResponse)> {
        let mut s = Self::open(addr).await?;
        s.subscribe_as(node(&sidecar_id(pod)), t, subscribe, &BTreeMap::new())
            .await?;
        let first = s.recv_type(t).await?;
        Ok((s, first))
    }

    pub async fn send(&self, req: DeltaDiscoveryRequest) -> anyhow::Result<()> {
        self.tx
            .send(req)
            .await
            .map_err(|_| anyhow::anyhow!("request stream closed"))
    }

    /// The first request for `t`, with the node and the versions held.
    pub async fn subscribe_as(
        &self,
        node: Node,
        t: &str,
        subscribe: &[&str],
        initial: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        self.send(DeltaDiscoveryRequest {
            node: Some(node),
            type_url: t.into(),
            resource_names_subscribe: subscribe.iter().map(ToString::to_string).collect(),
            initial_resource_versions: initial.clone().into_iter().collect(),
            ..Default::default()
        })
        .await
    }

    pub async fn request(
        &self,
        t: &str,
        subscribe: &[&str],
        unsubscribe: &[&str],
        nonce: &str,
    ) -> anyhow::Result<()> {
        self.send(DeltaDiscoveryRequest {
            type_url: t.into(),
            resource_names_subscribe: subscribe.iter().map(ToString::to_string).collect(),
            resource_names_unsubscribe: unsubscribe.iter().map(ToString::to_string).collect(),
            response_nonce: nonce.into(),
            ..Default::default()
        })
        .await
    }

    pub async fn ack(&self, resp: &DeltaDiscoveryResponse) -> anyhow::Result<()> {
        self.request(&resp.type_url, &[], &[], &resp.nonce).await
    }

    pub async fn next(&mut self) -> anyhow::Result<Next<DeltaDiscoveryResponse>> {
        next(&mut self.rx, WAIT).await
    }

    pub async fn recv(&mut self) -> anyhow::Result<DeltaDiscoveryResponse> {
        match self.next().await? {
            Next::Message(m) => Ok(m),
            Next::Closed(s) => anyhow::bail!("stream closed: {s}"),
        }
    }

    pub async fn recv_type(&mut self, t: &str) -> anyhow::Result<DeltaDiscoveryResponse> {
        let r = self.recv().await?;
        anyhow::ensure!(
            r.type_url == t,
            "expected a {} response, got {}",
            pilot_discovery::xds::generate::generators::short_name(t),
            pilot_discovery::xds::generate::generators::short_name(&r.type_url)
        );
        Ok(r)
    }
}

/// Names of the resources in a SotW response (decoding only the names).
pub fn sotw_names(r: &DiscoveryResponse) -> Vec<String> {
    use prost::Message;
    use xds_proto::pb::envoy::config::{
        cluster::v3::Cluster, endpoint::v3::ClusterLoadAssignment, listener::v3::Listener,
        route::v3::RouteConfiguration,
    };
    r.resources
        .iter()
        .filter_map(|a| {
            let v = a.value.as_slice();
            match a.type_url.as_str() {
                type_url::CLUSTER => Cluster::decode(v).ok().map(|c| c.name),
                type_url::ENDPOINT => ClusterLoadAssignment::decode(v)
                    .ok()
                    .map(|c| c.cluster_name),
                type_url::LISTENER => Listener::decode(v).ok().map(|l| l.name),
                type_url::ROUTE => RouteConfiguration::decode(v).ok().map(|r| r.name),
                _ => None,
            }
        })
        .collect()
}

/// Names of the resources in a delta response.
pub fn delta_names(r: &DeltaDiscoveryResponse) -> Vec<String> {
    r.resources.iter().map(|r| r.name.clone()).collect()
}

/// The port of a socket address, as listeners and endpoints carry it.
pub fn port_of(address: Option<&xds_proto::pb::envoy::config::core::v3::Address>) -> Option<u32> {
    use xds_proto::pb::envoy::config::core::v3::{address, socket_address::PortSpecifier};
    match address?.address.as_ref()? {
        address::Address::SocketAddress(s) => match s.port_specifier {
            Some(PortSpecifier::PortValue(p)) => Some(p),
            _ => None,
        },
        _ => None,
    }
}

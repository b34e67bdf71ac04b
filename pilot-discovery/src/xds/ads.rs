//! The gRPC Aggregated Discovery Service: both flavours, one task per stream.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use xds_proto::pb::envoy::service::discovery::v3::{
    aggregated_discovery_service_server::AggregatedDiscoveryService, DeltaDiscoveryRequest,
    DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};

use super::hub::{lock, XdsHub};
use super::identity;
use super::stream::{serve, Delta, Flavour, Sotw};

/// Responses queued per stream before the stream's task waits for the proxy
/// to read. Small: each may be megabytes, and a proxy that is not reading
/// must not make the server hold many of them.
const STREAM_BUFFER: usize = 4;

pub struct AdsService {
    hub: Arc<XdsHub>,
    shutdown: watch::Receiver<bool>,
}

impl AdsService {
    pub fn new(hub: Arc<XdsHub>, shutdown: watch::Receiver<bool>) -> Self {
        AdsService { hub, shutdown }
    }

    fn start<F: Flavour>(
        &self,
        request: Request<Streaming<F::Request>>,
    ) -> Result<ReceiverStream<Result<F::Response, Status>>, Status> {
        let Some(snapshot) = self.hub.snapshot() else {
            return Err(Status::unavailable(
                "pilot-discovery is not ready: its config sources are still loading",
            ));
        };
        if *self.shutdown.borrow() {
            return Err(Status::unavailable("pilot-discovery is shutting down"));
        }
        let peer = request.remote_addr();
        let certs = request.peer_certs();
        let identity = identity::of_peer(certs.as_deref().map(Vec::as_slice)).map_err(|e| {
            tracing::warn!(?peer, error = %e, "refusing a client certificate");
            Status::permission_denied(e.to_string())
        })?;
        let registration = self.hub.register(F::NAME, peer);
        lock(&registration.handle.state).peer_identity = identity;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(serve::<F>(
            self.hub.clone(),
            registration,
            request.into_inner(),
            tx,
            snapshot,
            self.shutdown.clone(),
        ));
        Ok(ReceiverStream::new(rx))
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        self.start::<Sotw>(request).map(Response::new)
    }

    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        self.start::<Delta>(request).map(Response::new)
    }
}

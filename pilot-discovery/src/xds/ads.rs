//! The gRPC Aggregated Discovery Service: one task per stream.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use mesh_model::MeshSnapshot;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use xds_proto::pb::envoy::service::discovery::v3::{
    aggregated_discovery_service_server::AggregatedDiscoveryService, DeltaDiscoveryRequest,
    DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};

use super::connection::{Connection, Decision};

/// Responses queued per stream before the stream's task waits for the
/// client to read; a slow client slows only itself.
const STREAM_BUFFER: usize = 16;

pub struct AdsService {
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
}

impl AdsService {
    pub fn new(snapshots: watch::Receiver<Arc<MeshSnapshot>>) -> Self {
        AdsService { snapshots }
    }
}

type DeltaStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let inbound = request.into_inner();
        tokio::spawn(serve_stream(inbound, tx, self.snapshots.clone()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "incremental (delta) ADS is not served yet; configure the proxy for state-of-the-world ADS (api_type GRPC)",
        ))
    }
}

async fn serve_stream(
    mut inbound: Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    mut snapshots: watch::Receiver<Arc<MeshSnapshot>>,
) {
    let mut conn = Connection::default();
    snapshots.borrow_and_update();
    loop {
        tokio::select! {
            msg = inbound.message() => {
                let req = match msg {
                    Ok(Some(req)) => req,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(%status, "stream ended with an error");
                        break;
                    }
                };
                match conn.on_request(&req) {
                    Ok(Decision::Respond(t)) => {
                        let snap = snapshots.borrow().clone();
                        if let Some(resp) = conn.respond(&snap, &t) {
                            if tx.send(Ok(resp)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Ok(Decision::Nothing) => {}
                    Err(status) => {
                        tracing::warn!(%status, "rejecting stream");
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                }
            }
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break; // the server is shutting down
                }
                let snap = snapshots.borrow_and_update().clone();
                for resp in conn.on_push(&snap) {
                    if tx.send(Ok(resp)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    if let Some(p) = conn.proxy() {
        tracing::info!(node = %p.node_id, "proxy disconnected");
    }
}

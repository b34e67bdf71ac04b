//! The task behind one ADS stream: reads requests, takes pushes, sends
//! responses. The same loop serves both protocol flavours.

use std::sync::Arc;

use prost::Message;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::Status;
use xds_proto::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};

use super::grpc::Requests;
use super::hub::{Push, Registration, XdsHub};
use crate::lock::lock;
use crate::xds::context::PushContext;
use crate::xds::generate::generators::short_name;
use crate::xds::protocol::encode::Encode;
use crate::xds::protocol::response::{DeltaResponse, SotwResponse};
use crate::xds::protocol::state::ConnState;
use crate::xds::protocol::{delta, sotw};

/// One ADS protocol flavour.
pub trait Flavour: Send + 'static {
    type Request: Message + Default + Send + Sync + 'static;
    type Response: Encode + Send + Sync + 'static;
    const NAME: &'static str;

    fn on_request(
        state: &mut ConnState,
        req: &Self::Request,
        snap: &PushContext,
    ) -> Result<Vec<Self::Response>, Status>;
    fn on_push(state: &mut ConnState, push: &Push) -> Vec<Self::Response>;
    /// The type a request rejects, if it is a NACK.
    fn nacked_type(req: &Self::Request) -> Option<&str>;
    fn type_url(resp: &Self::Response) -> &str;
}

pub struct Sotw;

impl Flavour for Sotw {
    type Request = DiscoveryRequest;
    type Response = SotwResponse;
    const NAME: &'static str = "sotw";

    fn on_request(
        state: &mut ConnState,
        req: &DiscoveryRequest,
        snap: &PushContext,
    ) -> Result<Vec<SotwResponse>, Status> {
        sotw::on_request(state, req, snap)
    }
    fn on_push(state: &mut ConnState, push: &Push) -> Vec<SotwResponse> {
        sotw::on_push(state, &push.snapshot, &push.scope)
    }
    fn nacked_type(req: &DiscoveryRequest) -> Option<&str> {
        req.error_detail.as_ref().map(|_| req.type_url.as_str())
    }
    fn type_url(resp: &SotwResponse) -> &str {
        &resp.type_url
    }
}

pub struct Delta;

impl Flavour for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaResponse;
    const NAME: &'static str = "delta";

    fn on_request(
        state: &mut ConnState,
        req: &DeltaDiscoveryRequest,
        snap: &PushContext,
    ) -> Result<Vec<DeltaResponse>, Status> {
        delta::on_request(state, req, snap)
    }
    fn on_push(state: &mut ConnState, push: &Push) -> Vec<DeltaResponse> {
        delta::on_push(state, &push.snapshot, &push.scope)
    }
    fn nacked_type(req: &DeltaDiscoveryRequest) -> Option<&str> {
        req.error_detail.as_ref().map(|_| req.type_url.as_str())
    }
    fn type_url(resp: &DeltaResponse) -> &str {
        &resp.type_url
    }
}

/// Why a stream stopped being served.
#[derive(Debug)]
enum Stop {
    /// The proxy went away or the server is stopping.
    Closed,
    /// The proxy stopped reading: a response waited past the send timeout.
    Stuck,
}

pub type Outbound<R> = mpsc::Sender<Result<R, Status>>;

/// Serves one stream until the proxy leaves, gets stuck, or the server stops.
pub async fn serve<F: Flavour>(
    hub: Arc<XdsHub>,
    registration: Registration,
    mut inbound: Requests<F::Request>,
    tx: Outbound<F::Response>,
    snapshot: Arc<PushContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let handle = registration.handle.clone();
    let mut snap = snapshot;
    let stop = loop {
        tokio::select! {
            msg = inbound.message() => {
                let req = match msg {
                    Ok(Some(req)) => req,
                    Ok(None) => break Stop::Closed,
                    Err(status) => {
                        if status.code() == tonic::Code::OutOfRange {
                            tracing::warn!(connection = handle.id, peer = ?handle.peer, %status, "refusing an oversized request");
                        } else {
                            tracing::debug!(connection = handle.id, %status, "stream ended with an error");
                        }
                        // Say why the stream ends (a proxy that went away
                        // never reads it).
                        let _ = tx.try_send(Err(status));
                        break Stop::Closed;
                    }
                };
                if let Some(t) = F::nacked_type(&req) {
                    hub.metrics.rejects.with_label_values(&[short_name(t)]).inc();
                }
                let t0 = Instant::now();
                let out = F::on_request(&mut lock(&handle.state), &req, &snap);
                match out {
                    Ok(responses) => {
                        if let Err(stop) = send_all::<F>(&hub, &tx, responses, t0, None).await {
                            break stop;
                        }
                    }
                    Err(status) => {
                        tracing::warn!(connection = handle.id, peer = ?handle.peer, %status, "rejecting stream");
                        let _ = tx.send(Err(status)).await;
                        break Stop::Closed;
                    }
                }
            }
            () = handle.woken() => {
                let Some(push) = handle.take_pending() else { continue };
                snap = push.snapshot.clone();
                let Some(permit) = hub.push_permit().await else { break Stop::Closed };
                let t0 = Instant::now();
                let responses = F::on_push(&mut lock(&handle.state), &push);
                drop(permit);
                if let Err(stop) = send_all::<F>(&hub, &tx, responses, t0, Some(push.started)).await {
                    break stop;
                }
            }
            () = until_stopped(&mut shutdown) => {
                // Tell the proxy why, so it reconnects (to another replica)
                // rather than treating the stream as failed.
                let _ = tx.try_send(Err(Status::unavailable("pilot-discovery is shutting down")));
                break Stop::Closed;
            }
        }
    };
    if let Stop::Stuck = stop {
        tracing::warn!(
            connection = handle.id,
            node = lock(&handle.state).node_id(),
            timeout = ?hub.config.send_timeout,
            "proxy stopped reading its stream; no longer serving it"
        );
    }
    drop(registration);
}

/// Completes once the server is stopping.
pub async fn until_stopped(rx: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it here.
    let _ = rx.wait_for(|stopping| *stopping).await;
}

/// Queues responses on the stream. The buffer is small and bounded: a proxy
/// that stops reading fills it, and once a response has waited for the send
/// timeout the stream is given up rather than holding more for it.
async fn send_all<F: Flavour>(
    hub: &XdsHub,
    tx: &Outbound<F::Response>,
    responses: Vec<F::Response>,
    t0: Instant,
    started: Option<Instant>,
) -> Result<(), Stop> {
    if responses.is_empty() {
        return Ok(());
    }
    for resp in responses {
        let t = short_name(F::type_url(&resp));
        let size = resp.encoded_len();
        match tx.send_timeout(Ok(resp), hub.config.send_timeout).await {
            Ok(()) => {
                hub.metrics.pushes.with_label_values(&[t]).inc();
                hub.metrics
                    .config_size
                    .with_label_values(&[t])
                    .observe(size as f64);
                hub.metrics
                    .push_time
                    .with_label_values(&[t])
                    .observe(t0.elapsed().as_secs_f64());
            }
            Err(SendTimeoutError::Timeout(_)) => {
                hub.metrics
                    .pushes
                    .with_label_values(&[&format!("{t}_senderr")])
                    .inc();
                return Err(Stop::Stuck);
            }
            Err(SendTimeoutError::Closed(_)) => return Err(Stop::Closed),
        }
    }
    if let Some(started) = started {
        hub.metrics
            .convergence_time
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(())
}

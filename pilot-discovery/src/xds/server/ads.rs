//! The gRPC Aggregated Discovery Service: both flavours, one task per stream.
//!
//! Served as a plain HTTP service rather than through tonic's generated
//! server, so that requests and responses are framed by `grpc.rs`, which
//! keeps no buffer between messages (see there for why).

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, watch};
use tonic::codegen::{http, Service};
use tonic::server::NamedService;
use tonic::{Request, Status};

use super::grpc::{Requests, ResponseBody};
use super::hub::XdsHub;
use super::identity;
use super::stream::{serve, Delta, Flavour, Sotw};
use crate::lock::lock;

/// The largest request accepted. Requests are small; this only bounds what a
/// misbehaving client can make the server buffer.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// The largest response sent; a stream whose response would be bigger is
/// ended with `RESOURCE_EXHAUSTED` instead.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

const SERVICE: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// Responses queued per stream before the stream's task waits for the proxy
/// to read. Small: each may be megabytes, and a proxy that is not reading
/// must not make the server hold many of them.
const STREAM_BUFFER: usize = 4;

#[derive(Clone)]
pub struct AdsService {
    hub: Arc<XdsHub>,
    shutdown: watch::Receiver<bool>,
}

impl AdsService {
    pub fn new(hub: Arc<XdsHub>, shutdown: watch::Receiver<bool>) -> Self {
        AdsService { hub, shutdown }
    }

    /// Starts the stream's task; the response streams what it sends.
    fn open<F: Flavour>(
        &self,
        request: http::Request<tonic::body::Body>,
    ) -> http::Response<tonic::body::Body> {
        let (parts, body) = request.into_parts();
        let requests = Requests::new(body, MAX_REQUEST_BYTES);
        let request = Request::from_http(http::Request::from_parts(parts, requests));
        match self.start::<F>(request) {
            Ok(responses) => ResponseBody::new(responses, MAX_RESPONSE_BYTES).into_response(),
            Err(status) => status.into_http(),
        }
    }

    fn start<F: Flavour>(
        &self,
        request: Request<Requests<F::Request>>,
    ) -> Result<mpsc::Receiver<Result<F::Response, Status>>, Status> {
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
        Ok(rx)
    }
}

impl NamedService for AdsService {
    const NAME: &'static str = SERVICE;
}

impl Service<http::Request<tonic::body::Body>> for AdsService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let response = match request.uri().path() {
            SOTW_PATH => self.open::<Sotw>(request),
            DELTA_PATH => self.open::<Delta>(request),
            path => Status::unimplemented(format!("no such method: {path}")).into_http(),
        };
        ready(Ok(response))
    }
}

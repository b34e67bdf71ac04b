//! The HTTP endpoints, served on both the http address (`--http-addr`) and the
//! monitoring address (`--monitoring-addr`): readiness, Prometheus metrics and
//! the debug pages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::debug::{self, DebugState};

/// What every endpoint that needs the first snapshot answers before it exists.
pub const NOT_READY: &str = "not ready: sources are still loading\n";

/// Set once every source has loaded and the first snapshot is built.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn mark_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AppState {
    readiness: Readiness,
    debug: DebugState,
}

impl axum::extract::FromRef<AppState> for DebugState {
    fn from_ref(s: &AppState) -> DebugState {
        s.debug.clone()
    }
}

pub fn router(readiness: Readiness, debug: DebugState) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/debug/syncz", get(debug::syncz))
        .route("/debug/adsz", get(debug::adsz))
        .route("/debug/configz", get(debug::configz))
        .route("/debug/registryz", get(debug::registryz))
        .route("/debug/endpointz", get(debug::endpointz))
        .route("/debug/config_dump", get(debug::config_dump))
        .route("/debug/push_status", get(debug::push_status))
        .with_state(AppState { readiness, debug })
}

async fn ready(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, NOT_READY)
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.debug.hub.metrics.render(),
    )
}

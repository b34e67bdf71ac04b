//! The agent's status server (`--status-port`): readiness as Kubernetes
//! probes it, answered from Envoy's own admin `/ready`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;

use crate::http_client::{self, HttpError};

const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router(admin_port: u16) -> Router {
    Router::new()
        .route("/healthz/ready", get(ready))
        .with_state(admin_port)
}

async fn ready(State(admin_port): State<u16>) -> (StatusCode, String) {
    match envoy_state(admin_port).await {
        Ok(state) if state == "LIVE" => (StatusCode::OK, "LIVE\n".into()),
        Ok(state) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Envoy is {state}\n"),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Envoy admin unreachable: {e}\n"),
        ),
    }
}

/// Envoy's server state (`LIVE`, `PRE_INITIALIZING`, ...) from admin `/ready`.
async fn envoy_state(admin_port: u16) -> Result<String, HttpError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let resp = http_client::get(addr, "127.0.0.1", "/ready", ADMIN_TIMEOUT).await?;
    Ok(resp.body.trim().to_string())
}

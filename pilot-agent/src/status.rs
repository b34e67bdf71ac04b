//! The agent's status server (`--status-port`): `/healthz/ready` for the
//! kubelet, `/stats/prometheus` for scrapers, and two commands, `POST
//! /quitquitquit` and `POST /drain`, accepted from loopback only since they
//! stop or drain the proxy.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, watch};

use crate::admin::Admin;
use crate::metrics;
use crate::readiness::Readiness;
use crate::supervisor::{Control, Status};

struct Shared {
    admin: Admin,
    readiness: Readiness,
    last_ready: AtomicBool,
    status: watch::Receiver<Status>,
    control: mpsc::Sender<Control>,
}

pub fn router(
    admin: Admin,
    status: watch::Receiver<Status>,
    control: mpsc::Sender<Control>,
) -> Router {
    let shared = Arc::new(Shared {
        admin,
        readiness: Readiness::new(admin),
        last_ready: AtomicBool::new(false),
        status,
        control,
    });
    Router::new()
        .route("/healthz/ready", get(ready))
        .route("/stats/prometheus", get(prometheus))
        .route("/quitquitquit", post(quit))
        .route("/drain", post(drain))
        .with_state(shared)
}

/// Serves `router` on `listener`, passing peer addresses for the loopback check.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

async fn ready(State(s): State<Arc<Shared>>) -> (StatusCode, String) {
    let status = s.status.borrow().clone();
    let result = s.readiness.check(&status).await;
    s.last_ready.store(result.is_ok(), Ordering::Relaxed);
    match result {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn prometheus(State(s): State<Arc<Shared>>) -> (StatusCode, String) {
    let status = s.status.borrow().clone();
    let mut text = metrics::render(&status, s.last_ready.load(Ordering::Relaxed));
    match s.admin.prometheus().await {
        Ok(envoy) => text.push_str(&envoy),
        Err(e) => tracing::debug!(error = %e, "Envoy's metrics are unavailable"),
    }
    (StatusCode::OK, text)
}

fn is_loopback(peer: &SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

async fn command(s: &Shared, peer: SocketAddr, c: Control) -> (StatusCode, String) {
    if !is_loopback(&peer) {
        tracing::warn!(%peer, command = ?c, "refused a command from outside the pod");
        return (
            StatusCode::FORBIDDEN,
            "only accepted from loopback\n".into(),
        );
    }
    match s.control.send(c).await {
        Ok(()) => (StatusCode::OK, "OK\n".into()),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down\n".into(),
        ),
    }
}

async fn quit(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> (StatusCode, String) {
    command(&s, peer, Control::Quit).await
}

async fn drain(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> (StatusCode, String) {
    command(&s, peer, Control::Drain).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_forms() {
        for ok in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(is_loopback(&ok.parse().expect("addr")), "{ok}");
        }
        for no in [
            "10.0.0.1:1",
            "[::ffff:10.0.0.1]:1",
            "[fe80::1]:1",
            "0.0.0.0:1",
        ] {
            assert!(!is_loopback(&no.parse().expect("addr")), "{no}");
        }
    }
}

//! The HTTP endpoints, served on both the http address (`--http-addr`) and the
//! monitoring address (`--monitoring-addr`): readiness, Prometheus metrics and
//! the debug pages.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{middleware, Router};

use crate::debug::{self, DebugState};
use crate::debug_access::{self, DebugAccess};
use crate::readiness::Readiness;

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

/// The pages; the debug ones only for the callers `access` lets in. Serve
/// it with the peer's address (`into_make_service_with_connect_info`).
pub fn router(readiness: Readiness, debug: DebugState, access: DebugAccess) -> Router {
    let debug_pages = Router::new()
        .route("/debug/syncz", get(debug::syncz))
        .route("/debug/adsz", get(debug::adsz))
        .route("/debug/configz", get(debug::configz))
        .route("/debug/registryz", get(debug::registryz))
        .route("/debug/endpointz", get(debug::endpointz))
        .route("/debug/config_dump", get(debug::config_dump))
        .route("/debug/push_status", get(debug::push_status))
        .route_layer(middleware::from_fn_with_state(access, debug_access::guard));
    Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(debug_pages)
        .with_state(AppState { readiness, debug })
}

/// 200 once nothing is pending; else 503 naming what is, one task a line:
/// `not ready: waiting for config folder /etc/istio/config`.
async fn ready(State(s): State<AppState>) -> (StatusCode, String) {
    let pending = s.readiness.pending();
    if pending.is_empty() {
        return (StatusCode::OK, "ready\n".to_string());
    }
    let body: String = pending
        .iter()
        .map(|task| format!("not ready: waiting for {task}\n"))
        .collect();
    (StatusCode::SERVICE_UNAVAILABLE, body)
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.debug.hub.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use axum::http::Request;
    use tower::ServiceExt;

    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::sources::SourceSet;
    use crate::xds::server::hub::{HubConfig, XdsHub};

    fn app(peer: &str, access: DebugAccess) -> Router {
        let hub = XdsHub::new(
            HubConfig {
                push_throttle: 1,
                send_timeout: Duration::from_secs(1),
                part_bytes: crate::xds::protocol::state::PART_BYTES,
            },
            Metrics::new().expect("metrics"),
        );
        let debug = DebugState {
            hub: Arc::new(hub),
            sources: SourceSet::default(),
            problems: tokio::sync::watch::channel(Arc::new(Vec::new())).1,
        };
        let peer: SocketAddr = peer.parse().expect("address");
        let readiness = Readiness::default();
        // Held pending for the app's life: these tests run before it is ready.
        std::mem::forget(readiness.register("test sources"));
        router(readiness, debug, access).layer(MockConnectInfo(peer))
    }

    async fn status(app: Router, path: &str, token: Option<&str>) -> StatusCode {
        let mut req = Request::get(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        app.oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("response")
            .status()
    }

    #[tokio::test]
    async fn debug_pages_refuse_callers_off_the_machine_and_nothing_else_does() {
        let remote = || app("10.0.0.7:40000", DebugAccess::loopback_only());
        for page in ["/debug/configz", "/debug/config_dump", "/debug/syncz"] {
            assert_eq!(status(remote(), page, None).await, StatusCode::FORBIDDEN);
        }
        assert_eq!(status(remote(), "/metrics", None).await, StatusCode::OK);
        assert_eq!(
            status(remote(), "/ready", None).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "readiness answers anyone (not ready yet here)"
        );
        let local = app("127.0.0.1:40000", DebugAccess::loopback_only());
        assert_eq!(status(local, "/debug/syncz", None).await, StatusCode::OK);

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "let-me-in\n").expect("write");
        let with_token = || {
            app(
                "10.0.0.7:40000",
                DebugAccess::with_token_file(&file).expect("token"),
            )
        };
        assert_eq!(
            status(with_token(), "/debug/syncz", None).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(with_token(), "/debug/syncz", Some("guess")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(with_token(), "/debug/syncz", Some("let-me-in")).await,
            StatusCode::OK
        );
    }
}

//! Upstream HTTP servers that answer every request with their version;
//! `/delay/<ms>` answers after that many milliseconds, for in-flight tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;

use crate::{port_holders, ports};

/// An in-process HTTP server on loopback; stops when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    pub version: String,
    /// Requests being answered right now.
    pub in_flight: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// On `127.0.0.1:port`, a port fixed in advance (the demo's).
    pub async fn start(port: u16, version: &str) -> anyhow::Result<Upstream> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| {
                format!(
                    "upstream {version} cannot listen on 127.0.0.1:{port} ({})",
                    port_holders::describe(port)
                )
            })?;
        Self::serve(listener, version)
    }

    /// On `ip` (an address of the loopback interface), at a free port bound
    /// at once (`ports::listener_on`).
    pub async fn start_free(ip: &str, version: &str) -> anyhow::Result<Upstream> {
        let listener = ports::listener_on(ip)
            .with_context(|| format!("upstream {version} cannot listen on {ip}"))?;
        Self::serve(tokio::net::TcpListener::from_std(listener)?, version)
    }

    fn serve(listener: tokio::net::TcpListener, version: &str) -> anyhow::Result<Upstream> {
        let addr = listener.local_addr()?;
        let body = version.to_string();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counter = in_flight.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let body = body.clone();
            let counter = counter.clone();
            async move {
                let delay = uri
                    .path()
                    .strip_prefix("/delay/")
                    .and_then(|ms| ms.parse::<u64>().ok());
                if let Some(ms) = delay {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    counter.fetch_sub(1, Ordering::SeqCst);
                }
                body
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Upstream {
            addr,
            version: version.to_string(),
            in_flight,
            task,
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

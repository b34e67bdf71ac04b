//! Upstream HTTP servers that answer every request with their version;
//! `/delay/<ms>` answers after that many milliseconds, for in-flight tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;

/// An in-process HTTP server on loopback; stops when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    pub version: String,
    /// Requests being answered right now.
    pub in_flight: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Upstream {
    pub async fn start(port: u16, version: &str) -> anyhow::Result<Upstream> {
        Self::start_on("127.0.0.1", port, version).await
    }

    /// As [`Upstream::start`], on `ip` (an address of the loopback interface).
    pub async fn start_on(ip: &str, port: u16, version: &str) -> anyhow::Result<Upstream> {
        let listener = tokio::net::TcpListener::bind((ip, port))
            .await
            .with_context(|| format!("upstream {version} cannot listen on {ip}:{port}"))?;
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

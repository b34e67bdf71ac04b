//! Upstream HTTP servers that answer every request with their version.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::task::JoinHandle;

/// An in-process HTTP server on loopback; stops when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    pub version: String,
    task: JoinHandle<()>,
}

impl Upstream {
    pub async fn start(port: u16, version: &str) -> anyhow::Result<Upstream> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("upstream {version} cannot listen on 127.0.0.1:{port}"))?;
        let addr = listener.local_addr()?;
        let body = version.to_string();
        let app = axum::Router::new().fallback(move || {
            let body = body.clone();
            async move { body }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Upstream {
            addr,
            version: version.to_string(),
            task,
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

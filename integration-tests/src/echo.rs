//! Upstream servers for traffic tests: each answers with a JSON document of
//! what it received (method, path, host, headers) and its own name, so a
//! test sees through Envoy what routing, rewrites and header edits did.
//!
//! A request may ask for a delay with `x-echo-delay-ms`; a server may be
//! made to fail, always or every other time, to exercise retries and
//! outlier detection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

/// How a server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with the echo document.
    Echo,
    /// This status on every request.
    AlwaysFail(u16),
    /// 503 on the 1st, 3rd, 5th... request, 200 on the others.
    FailEveryOther,
}

/// What the server saw, as it answers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Echo {
    pub server: String,
    pub method: String,
    /// Path and query, as received.
    pub path: String,
    pub host: String,
    /// The HTTP version the request came in, as `HTTP/1.1` or `HTTP/2.0`.
    #[serde(default)]
    pub version: String,
    /// Lower-cased names; repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
}

pub struct EchoServer {
    pub addr: SocketAddr,
    pub name: String,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Echo>>>,
    task: JoinHandle<()>,
}

impl EchoServer {
    pub async fn start(name: &str, behaviour: Behaviour) -> anyhow::Result<EchoServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .with_context(|| format!("echo server {name} cannot listen"))?;
        let addr = listener.local_addr()?;
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = (name.to_string(), hits.clone(), seen.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (name, hits, seen) = state.clone();
            async move { answer(req, &name, behaviour, &hits, &seen).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(EchoServer {
            addr,
            name: name.to_string(),
            hits,
            seen,
            task,
        })
    }

    /// A server that answers every request with 200 and the echo document.
    pub async fn plain(name: &str) -> anyhow::Result<EchoServer> {
        Self::start(name, Behaviour::Echo).await
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Every request received so far, oldest first.
    pub fn seen(&self) -> Vec<Echo> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request,
    name: &str,
    behaviour: Behaviour,
    hits: &AtomicUsize,
    seen: &Mutex<Vec<Echo>>,
) -> axum::response::Response {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers
            .entry(k.as_str().to_string())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let echo = Echo {
        server: name.to_string(),
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_string(), ToString::to_string),
        host: headers
            .get("host")
            .cloned()
            .or_else(|| req.uri().authority().map(ToString::to_string))
            .unwrap_or_default(),
        version: format!("{:?}", req.version()),
        headers,
    };
    let n = hits.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut s) = seen.lock() {
        s.push(echo.clone());
    }
    if let Some(ms) = echo
        .headers
        .get("x-echo-delay-ms")
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = match behaviour {
        Behaviour::Echo => 200,
        Behaviour::AlwaysFail(code) => code,
        Behaviour::FailEveryOther if n.is_multiple_of(2) => 503,
        Behaviour::FailEveryOther => 200,
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_string(&echo).unwrap_or_default();
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// A TCP server that writes its name and a newline to every connection,
/// then closes it: which server a connection reached, without HTTP.
pub struct TcpNameServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TcpNameServer {
    pub async fn start(name: &str) -> anyhow::Result<TcpNameServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .with_context(|| format!("tcp server {name} cannot listen"))?;
        let addr = listener.local_addr()?;
        let line = format!("{name}\n");
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let line = line.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let _ = conn.write_all(line.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Ok(TcpNameServer { addr, task })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for TcpNameServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects to `addr` and reads the name a [`TcpNameServer`] behind it
/// writes; an empty string when the connection closed with nothing.
pub async fn tcp_name(addr: SocketAddr) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        let mut out = String::new();
        conn.read_to_string(&mut out).await?;
        anyhow::Ok(out.trim().to_string())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .with_context(|| format!("no answer from {addr}"))?
}

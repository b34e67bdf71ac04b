//! A minimal HTTP/1.1 GET for talking to local endpoints (Envoy's admin,
//! listeners under test) without pulling in a full client stack.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Responses larger than this are cut off with an error: these endpoints
/// answer with small documents, and a runaway one must not exhaust memory.
const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP to {addr}: {source}")]
    Http {
        addr: SocketAddr,
        #[source]
        source: hyper::Error,
    },
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("response from {addr} is larger than {MAX_BODY} bytes")]
    TooLarge { addr: SocketAddr },
    #[error("no response from {addr} within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `GET path` on `addr` with the given `Host` header, on a fresh connection.
pub async fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<Response, HttpError> {
    request(Method::GET, addr, host, path, timeout).await
}

/// `POST path` with an empty body, as Envoy's admin commands want.
pub async fn post(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<Response, HttpError> {
    request(Method::POST, addr, host, path, timeout).await
}

async fn request(
    method: Method,
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<Response, HttpError> {
    tokio::time::timeout(timeout, send(method, addr, host, path))
        .await
        .map_err(|_| HttpError::Timeout { addr, timeout })?
}

async fn send(
    method: Method,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<Response, HttpError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| HttpError::Connect { addr, source })?;
    let http = |source| HttpError::Http { addr, source };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let driver = tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host)
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await.map_err(http)?;
    let status = resp.status().as_u16();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| HttpError::TooLarge { addr })?
        .to_bytes();
    driver.abort();
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

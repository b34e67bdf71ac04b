//! An HTTP/1.1 client for traffic tests: any method, request headers, and
//! the response's headers, on a fresh connection per request.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::HeaderMap;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::echo::Echo;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The upstream's echo document, if an echo server answered.
    pub fn echo(&self) -> Option<Echo> {
        serde_json::from_str(&self.body).ok()
    }

    /// The name of the echo server that answered, or `HTTP <status>`.
    pub fn who(&self) -> String {
        match self.echo() {
            Some(e) if self.status == 200 => e.server,
            _ => format!("HTTP {}", self.status),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request to send; build with [`Call::get`] and the setters.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub host: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Call {
    pub fn get(host: &str, path: &str) -> Call {
        Call {
            method: "GET".to_string(),
            host: host.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
        }
    }

    pub fn method(mut self, method: &str) -> Call {
        self.method = method.to_string();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub async fn send(&self, addr: SocketAddr) -> anyhow::Result<Reply> {
        tokio::time::timeout(TIMEOUT, self.send_inner(addr))
            .await
            .with_context(|| format!("no answer from {addr} within {TIMEOUT:?}"))?
    }

    async fn send_inner(&self, addr: SocketAddr) -> anyhow::Result<Reply> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(self.method.as_str())
            .uri(self.path.as_str())
            .header(hyper::header::HOST, self.host.as_str());
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = sender
            .send_request(req.body(Empty::<Bytes>::new())?)
            .await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        driver.abort();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

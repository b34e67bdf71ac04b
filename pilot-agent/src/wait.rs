//! `pilot-agent wait`: blocks until the proxy is ready, for containers that
//! must not start before their sidecar can carry traffic.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::http_client;

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("URL {0:?} must look like http://HOST:PORT/PATH")]
    Url(String),
    #[error("cannot resolve {host}: {detail}")]
    Resolve { host: String, detail: String },
    #[error("not ready after {timeout:?}; last answer: {last}")]
    Timeout { timeout: Duration, last: String },
}

/// Host (with port) and path of a plain `http://` URL.
fn split_url(url: &str) -> Result<(String, String), WaitError> {
    let bad = || WaitError::Url(url.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || !authority.contains(':') {
        return Err(bad());
    }
    Ok((authority.to_string(), path.to_string()))
}

/// Polls `url` every `period` until it answers 200, or `timeout` passes.
pub async fn wait_ready(
    url: &str,
    timeout: Duration,
    period: Duration,
    request_timeout: Duration,
) -> Result<(), WaitError> {
    let (authority, path) = split_url(url)?;
    let addr: SocketAddr = tokio::net::lookup_host(&authority)
        .await
        .map_err(|e| WaitError::Resolve {
            host: authority.clone(),
            detail: e.to_string(),
        })?
        .next()
        .ok_or_else(|| WaitError::Resolve {
            host: authority.clone(),
            detail: "no address".into(),
        })?;
    let deadline = Instant::now() + timeout;
    loop {
        let last = match http_client::get(addr, &authority, &path, request_timeout).await {
            Ok(r) if r.status == 200 => return Ok(()),
            Ok(r) => format!("HTTP {}: {}", r.status, r.body.trim()),
            Err(e) => e.to_string(),
        };
        if Instant::now() + period > deadline {
            return Err(WaitError::Timeout { timeout, last });
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://127.0.0.1:15021/healthz/ready").expect("ok"),
            ("127.0.0.1:15021".into(), "/healthz/ready".into())
        );
        assert_eq!(split_url("http://localhost:15020").expect("ok").1, "/");
        for bad in [
            "https://x:1/",
            "http://nohost/",
            "127.0.0.1:1/x",
            "http:///x",
        ] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn gives_up_with_the_last_reason() {
        // Nothing listens on port 1.
        let e = wait_ready(
            "http://127.0.0.1:1/healthz/ready",
            Duration::from_millis(300),
            Duration::from_millis(100),
            Duration::from_millis(100),
        )
        .await
        .expect_err("times out");
        assert!(e.to_string().contains("connect to 127.0.0.1:1"), "{e}");
    }
}

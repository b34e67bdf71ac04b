//! Envoy's admin API on `127.0.0.1:<admin-port>`: what the agent asks of it
//! (state, restart epoch, counters) and the commands it sends (drain).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::http_client::{self, HttpError, Response};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("Envoy admin unreachable: {0}")]
    Unreachable(#[from] HttpError),
    #[error("Envoy admin {path} answered HTTP {status}: {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    #[error("Envoy admin {path} answered something unexpected: {detail}")]
    Malformed { path: String, detail: String },
}

/// What `/server_info` says about the Envoy answering on the admin port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `LIVE`, `DRAINING`, `PRE_INITIALIZING` or `INITIALIZING`.
    pub state: String,
    /// The hot restart epoch of the process that answered: during a hot
    /// restart the admin port moves from the old epoch to the new one.
    pub epoch: u32,
}

impl ServerInfo {
    pub fn is_live(&self) -> bool {
        self.state == "LIVE"
    }
}

#[derive(Deserialize)]
struct RawServerInfo {
    state: String,
    command_line_options: RawOptions,
}

#[derive(Deserialize)]
struct RawOptions {
    #[serde(default)]
    restart_epoch: u32,
}

/// A handle on one admin port.
#[derive(Debug, Clone, Copy)]
pub struct Admin {
    addr: SocketAddr,
    timeout: Duration,
}

impl Admin {
    pub fn new(port: u16, timeout: Duration) -> Admin {
        Admin {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            timeout,
        }
    }

    async fn call(&self, post: bool, path: &str) -> Result<Response, AdminError> {
        let resp = if post {
            http_client::post(self.addr, "127.0.0.1", path, self.timeout).await?
        } else {
            http_client::get(self.addr, "127.0.0.1", path, self.timeout).await?
        };
        if resp.status != 200 {
            return Err(AdminError::Status {
                path: path.to_string(),
                status: resp.status,
                body: resp.body.trim().to_string(),
            });
        }
        Ok(resp)
    }

    pub async fn server_info(&self) -> Result<ServerInfo, AdminError> {
        const PATH: &str = "/server_info";
        let resp = self.call(false, PATH).await?;
        let raw: RawServerInfo =
            serde_json::from_str(&resp.body).map_err(|e| AdminError::Malformed {
                path: PATH.into(),
                detail: e.to_string(),
            })?;
        Ok(ServerInfo {
            state: raw.state,
            epoch: raw.command_line_options.restart_epoch,
        })
    }

    /// Counters and gauges whose names match the regex `filter`.
    pub async fn stats(&self, filter: &str) -> Result<BTreeMap<String, u64>, AdminError> {
        let path = format!("/stats?filter={}", encode_query(filter));
        let resp = self.call(false, &path).await?;
        Ok(parse_stats(&resp.body))
    }

    /// Envoy's own metrics in Prometheus text format.
    pub async fn prometheus(&self) -> Result<String, AdminError> {
        Ok(self.call(false, "/stats/prometheus").await?.body)
    }

    /// Starts a graceful drain: listeners keep accepting for the drain time
    /// while connections are told to close; `inbound_only` leaves a
    /// sidecar's outbound listeners alone so the app can still call out.
    pub async fn drain_listeners(&self, inbound_only: bool) -> Result<(), AdminError> {
        let path = if inbound_only {
            "/drain_listeners?graceful&inboundonly"
        } else {
            "/drain_listeners?graceful"
        };
        self.call(true, path).await.map(|_| ())
    }
}

/// Parses `/stats` text (`name: value` per line), keeping integer values;
/// histogram lines are not integers and are skipped.
pub fn parse_stats(body: &str) -> BTreeMap<String, u64> {
    body.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            Some((name.trim().to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Percent-encodes what a regex may contain that a query string may not.
fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_text_is_parsed() {
        let s = parse_stats(
            "cluster_manager.cds.update_success: 3\nserver.state: 0\n\
             cluster.x.upstream_rq_time: P0(nan,1) P25(nan,2)\nbroken line\n",
        );
        assert_eq!(s.get("cluster_manager.cds.update_success"), Some(&3));
        assert_eq!(s.get("server.state"), Some(&0));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn regexes_are_encoded_for_the_query() {
        assert_eq!(encode_query("^a\\.b$|c"), "%5Ea%5C.b%24%7Cc");
    }
}

//! pilot-discovery as a child process on free loopback ports, with helpers
//! for its HTTP surfaces (`/debug/*`, `/metrics`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use pilot_agent::http_client;
use serde_json::Value;

use crate::binaries::workspace_binary;
use crate::port_holders;
use crate::ports::free_port;
use crate::process::Proc;
use crate::wait;

const STARTUP: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Discovery {
    pub proc: Proc,
    pub grpc: u16,
    pub http: u16,
    pub monitoring: u16,
}

impl Discovery {
    /// Starts pilot-discovery on `config_dir` with `extra` flags, logging to
    /// `log`; returns once `/ready` answers 200.
    pub async fn start(config_dir: &Path, log: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_on(free_port()?, config_dir, log, extra).await
    }

    /// As [`Discovery::start`], serving xDS on `grpc` (a port a proxy may
    /// already be trying to reach).
    pub async fn start_on(
        grpc: u16,
        config_dir: &Path,
        log: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut args = vec!["--config-dir", path_str(config_dir)?];
        args.extend_from_slice(extra);
        let mut d = Self::spawn(grpc, log, &args)?;
        if let Err(e) = d.wait_ready().await {
            // A port taken by another process is the usual reason it exits.
            let ports = [d.grpc, d.http, d.monitoring].map(port_holders::describe);
            return Err(e.context(format!(
                "pilot-discovery did not start; its ports: {}",
                ports.join("; ")
            )));
        }
        Ok(d)
    }

    /// Starts pilot-discovery with exactly `args` (besides its addresses)
    /// and does not wait for it to be ready.
    pub fn spawn(grpc: u16, log: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let (http, monitoring) = (free_port()?, free_port()?);
        let mut cmd = Command::new(workspace_binary("pilot-discovery")?);
        cmd.arg("discovery")
            .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--monitoring-addr", &format!("127.0.0.1:{monitoring}")])
            .args(args);
        let proc = Proc::spawn("pilot-discovery", cmd, log)?;
        Ok(Discovery {
            proc,
            grpc,
            http,
            monitoring,
        })
    }

    /// Waits until `/ready` answers 200.
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let ready_addr = SocketAddr::from(([127, 0, 0, 1], self.http));
        let proc = &mut self.proc;
        wait::until("pilot-discovery /ready", STARTUP, || {
            let running = proc.check_running();
            async move {
                running?;
                let r = http_client::get(ready_addr, "127.0.0.1", "/ready", REQUEST_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((r.status == 200).then_some(()))
            }
        })
        .await
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.grpc))
    }

    /// GET `path` on the monitoring port.
    pub async fn get(&self, path: &str) -> anyhow::Result<http_client::Response> {
        get_on(self.monitoring, path).await
    }

    /// GET `path` on the monitoring port as JSON, expecting 200.
    pub async fn json(&self, path: &str) -> anyhow::Result<Value> {
        json_on(self.monitoring, path).await
    }

    /// One sample from `/metrics`, e.g. `pilot_xds_pushes{type="eds"}`; 0
    /// when the series does not exist yet.
    pub async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        let text = self.get("/metrics").await?.body;
        Ok(metric_value(&text, series).unwrap_or(0.0))
    }
}

/// The objects `/debug/configz` lists, as `Kind namespace/name`.
pub fn configz_keys(configz: &Value) -> Vec<String> {
    configz["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{} {}/{}",
                r["kind"].as_str().unwrap_or(""),
                r["namespace"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not valid UTF-8", p.display()))
}

pub async fn get_on(port: u16, path: &str) -> anyhow::Result<http_client::Response> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Ok(http_client::get(addr, "127.0.0.1", path, REQUEST_TIMEOUT).await?)
}

pub async fn json_on(port: u16, path: &str) -> anyhow::Result<Value> {
    let r = get_on(port, path).await?;
    anyhow::ensure!(
        r.status == 200,
        "{path} answered HTTP {}: {}",
        r.status,
        r.body
    );
    serde_json::from_str(&r.body).with_context(|| format!("{path} is not JSON: {}", r.body))
}

/// The value of `series` in a Prometheus text exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

impl std::ops::Deref for Discovery {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl std::ops::DerefMut for Discovery {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

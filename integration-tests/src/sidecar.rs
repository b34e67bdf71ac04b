//! pilot-agent running Envoy as a sidecar in local mode (no iptables): its
//! outbound listeners bind 127.0.0.1:<service port>.

use std::path::Path;
use std::process::Command;

use crate::binaries::workspace_binary;
use crate::ports::free_port;

/// The ADS flavour the sidecar speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Xds {
    Sotw,
    Delta,
}

impl Xds {
    pub fn flag(self) -> &'static str {
        match self {
            Xds::Sotw => "sotw",
            Xds::Delta => "delta",
        }
    }
}

/// The sidecar's own ports.
#[derive(Debug, Clone, Copy)]
pub struct SidecarPorts {
    pub admin: u16,
    pub status: u16,
    /// Envoy's Prometheus listener.
    pub stats: u16,
    /// Envoy's readiness listener (forwards to the agent's status port).
    pub readiness: u16,
}

impl SidecarPorts {
    pub fn free() -> anyhow::Result<SidecarPorts> {
        Ok(SidecarPorts {
            admin: free_port()?,
            status: free_port()?,
            stats: free_port()?,
            readiness: free_port()?,
        })
    }
}

/// The pilot-agent command line for a sidecar of pod `pod` in `namespace`,
/// fetching config from discovery's xDS port `grpc` and writing its
/// bootstrap under `config_path`.
pub fn agent_command(
    grpc: u16,
    xds: Xds,
    envoy: &Path,
    config_path: &Path,
    ports: SidecarPorts,
    pod: &str,
    namespace: &str,
) -> anyhow::Result<Command> {
    proxy_command(
        "sidecar",
        grpc,
        xds,
        envoy,
        config_path,
        ports,
        pod,
        namespace,
    )
}

/// As [`agent_command`], for a proxy of `kind` (`sidecar` or `router`).
#[allow(clippy::too_many_arguments)]
pub fn proxy_command(
    kind: &str,
    grpc: u16,
    xds: Xds,
    envoy: &Path,
    config_path: &Path,
    ports: SidecarPorts,
    pod: &str,
    namespace: &str,
) -> anyhow::Result<Command> {
    let mut cmd = Command::new(workspace_binary("pilot-agent")?);
    cmd.args(["proxy", kind])
        .args(["--discovery-address", &format!("127.0.0.1:{grpc}")])
        .args(["--xds-type", xds.flag()])
        .arg("--envoy-binary")
        .arg(envoy)
        .arg("--config-path")
        .arg(config_path)
        .args(["--admin-port", &ports.admin.to_string()])
        .args(["--status-port", &ports.status.to_string()])
        .args(["--stats-port", &ports.stats.to_string()])
        .args(["--readiness-port", &ports.readiness.to_string()])
        .args(["--bind-address", "127.0.0.1"])
        .args(["--concurrency", "1"])
        .env("POD_NAME", pod)
        .env("POD_NAMESPACE", namespace)
        .env("INSTANCE_IP", "127.0.0.1")
        .env("ISTIO_META_INTERCEPTION_MODE", "NONE");
    Ok(cmd)
}

//! The Envoy bootstrap: who the proxy is, where its admin listens, and how it
//! reaches the discovery server. Everything else arrives over ADS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::identity::Identity;

/// File name Istio's agent uses, so tooling that looks for it finds it.
pub const BOOTSTRAP_FILE: &str = "envoy-rev.json";

#[derive(Debug, Clone)]
pub struct BootstrapConfig {
    pub identity: Identity,
    pub service_cluster: String,
    /// `host:port` of pilot-discovery's xDS server.
    pub discovery_address: String,
    pub admin_port: u16,
    pub xds_type: XdsType,
}

/// Which ADS flavour Envoy speaks to the discovery server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum XdsType {
    /// State of the world: every response carries the full set of a type.
    Sotw,
    /// Incremental: only what changed, and what was removed (Istio's default since 1.22).
    #[default]
    Delta,
}

impl XdsType {
    /// The `api_type` of Envoy's `ads_config`.
    pub fn api_type(self) -> &'static str {
        match self {
            XdsType::Sotw => "GRPC",
            XdsType::Delta => "DELTA_GRPC",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("discovery address {0:?} must be HOST:PORT")]
    DiscoveryAddress(String),
    #[error("cannot write bootstrap {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn split_host_port(addr: &str) -> Result<(String, u16), BootstrapError> {
    let bad = || BootstrapError::DiscoveryAddress(addr.to_string());
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok((sa.ip().to_string(), sa.port()));
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

pub fn render(cfg: &BootstrapConfig) -> Result<Value, BootstrapError> {
    let (xds_host, xds_port) = split_host_port(&cfg.discovery_address)?;
    let ads = json!({ "ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3" });
    Ok(json!({
        "node": {
            "id": cfg.identity.node_id(),
            "cluster": cfg.service_cluster,
            "metadata": cfg.identity.metadata,
        },
        "admin": {
            // Envoy's admin API can reconfigure and stop the proxy: loopback only.
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": cfg.admin_port } }
        },
        "dynamic_resources": {
            "lds_config": ads,
            "cds_config": ads,
            "ads_config": {
                "api_type": cfg.xds_type.api_type(),
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [ { "envoy_grpc": { "cluster_name": "xds-grpc" } } ]
            }
        },
        "static_resources": {
            "clusters": [{
                "name": "xds-grpc",
                "type": "STRICT_DNS",
                "dns_lookup_family": "V4_PREFERRED",
                "connect_timeout": "1s",
                "lb_policy": "ROUND_ROBIN",
                // The control plane connection must never be shed by
                // Envoy's default circuit breaker limits.
                "circuit_breakers": { "thresholds": [
                    { "priority": "DEFAULT", "max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000 },
                    { "priority": "HIGH", "max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000 }
                ]},
                "upstream_connection_options": { "tcp_keepalive": { "keepalive_time": 300 } },
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": { "http2_protocol_options": {} }
                    }
                },
                "load_assignment": {
                    "cluster_name": "xds-grpc",
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                        "socket_address": { "address": xds_host, "port_value": xds_port }
                    }}}]}]
                }
            }]
        }
    }))
}

/// Writes the bootstrap as readable JSON, readable by its owner only: it
/// names the control plane and, later, credentials.
pub fn write(dir: &Path, bootstrap: &Value) -> Result<PathBuf, BootstrapError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let path = dir.join(BOOTSTRAP_FILE);
    let err = |source| BootstrapError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let text = serde_json::to_string_pretty(bootstrap).map_err(|e| err(e.into()))?;
    // Write to a temporary name, then rename: Envoy never sees half a file.
    let tmp = dir.join(format!(".{BOOTSTRAP_FILE}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.write_all(b"\n").map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Identity, NodeKind};
    use std::collections::BTreeMap;

    fn cfg(addr: &str) -> BootstrapConfig {
        let env: BTreeMap<String, String> = [("ISTIO_META_INTERCEPTION_MODE", "NONE")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BootstrapConfig {
            identity: Identity::from_env(NodeKind::Sidecar, "cluster.local", &env)
                .expect("identity"),
            service_cluster: "istio-proxy".into(),
            discovery_address: addr.into(),
            admin_port: 15000,
            xds_type: XdsType::Sotw,
        }
    }

    #[test]
    fn renders_node_admin_and_xds_cluster() {
        let b = render(&cfg("istiod.istio-system.svc:15010")).expect("renders");
        assert_eq!(
            b["node"]["id"],
            "sidecar~127.0.0.1~localhost.default~default.svc.cluster.local"
        );
        assert_eq!(b["node"]["metadata"]["INTERCEPTION_MODE"], "NONE");
        assert_eq!(
            b["admin"]["address"]["socket_address"]["address"],
            "127.0.0.1"
        );
        let sa = &b["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
            ["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
        assert_eq!(sa["address"], "istiod.istio-system.svc");
        assert_eq!(sa["port_value"], 15010);
        assert_eq!(b["dynamic_resources"]["ads_config"]["api_type"], "GRPC");
        let mut delta = cfg("127.0.0.1:15010");
        delta.xds_type = XdsType::Delta;
        let b = render(&delta).expect("renders");
        assert_eq!(
            b["dynamic_resources"]["ads_config"]["api_type"],
            "DELTA_GRPC"
        );
    }

    #[test]
    fn bad_discovery_addresses() {
        for bad in ["nohost", ":15010", "host:0", "host:99999", "host:port"] {
            assert!(render(&cfg(bad)).is_err(), "{bad}");
        }
        assert!(render(&cfg("[::1]:15010")).is_ok());
    }

    #[test]
    fn written_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = render(&cfg("127.0.0.1:15010")).expect("renders");
        let path = write(&dir.path().join("etc"), &b).expect("writes");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(back, b);
    }
}

//! The Envoy bootstrap: who the proxy is, where its admin listens, how it
//! reaches the discovery server, and the agent's own listeners (Prometheus
//! stats, readiness). Everything else arrives over ADS.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::identity::Identity;
use crate::template::{self, TemplateError, Vars};

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
    /// Envoy's Prometheus listener (`/stats/prometheus`); 0 leaves it out.
    pub stats_port: u16,
    /// Envoy's readiness listener (`/healthz/ready`, answered by the agent's
    /// status port); 0 leaves it out.
    pub readiness_port: u16,
    pub status_port: u16,
    /// Address the Prometheus and readiness listeners bind.
    pub bind_address: IpAddr,
    /// TLS to the discovery server; plaintext when `None`.
    pub xds_tls: Option<XdsTls>,
    /// The overload manager's limit on downstream connections, all listeners together.
    pub max_downstream_connections: u64,
    /// Cluster-name stats tags recognise `<name>.svc.<domain>` hostnames.
    pub domain: String,
}

/// How Envoy checks the discovery server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdsTls {
    /// PEM file of the root certificates the server's chain must lead to.
    pub root_cert: PathBuf,
    /// Name the server's certificate must carry (SAN); also sent as SNI.
    pub server_name: String,
    /// The certificate and key files Envoy proves the proxy's identity with.
    pub client_cert: Option<(PathBuf, PathBuf)>,
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
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("cannot read bootstrap override {path}: {source}")]
    ReadOverride {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bootstrap override {path} is not YAML or JSON: {source}")]
    ParseOverride {
        path: PathBuf,
        // Boxed: the parser's error is large, and this one is rare.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
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

/// The host part of a discovery address (`HOST:PORT`).
pub fn discovery_host(addr: &str) -> Result<String, BootstrapError> {
    split_host_port(addr).map(|(host, _)| host)
}

fn socket(address: impl std::fmt::Display, port: u16) -> Value {
    json!({ "socket_address": { "address": address.to_string(), "port_value": port } })
}

fn static_cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": socket("127.0.0.1", port) } }] }]
        }
    })
}

/// A listener that forwards one path to one cluster, and nothing else.
fn path_listener(name: &str, bind: IpAddr, port: u16, path: &str, cluster: &str) -> Value {
    json!({
        "name": name,
        "address": socket(bind, port),
        "filter_chains": [{ "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "codec_type": "AUTO",
                "route_config": { "virtual_hosts": [{
                    "name": name,
                    "domains": ["*"],
                    "routes": [{ "match": { "path": path }, "route": { "cluster": cluster } }]
                }]},
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
                }]
            }
        }]}]
    })
}

/// Tags that turn Istio's stat names into labels. Envoy's default cluster
/// tag stops at the first dot, which would cut `outbound|9080||x.ns.svc...`.
fn stats_tags(domain: &str) -> Value {
    let domain = domain.replace('.', r"\.");
    json!([
        { "tag_name": "cluster_name", "regex": format!(r"^cluster\.((.+?(\..+?\.svc\.{domain})?)\.)") },
        { "tag_name": "response_code_class", "regex": r"_rq(_(\dxx))$" },
        { "tag_name": "response_code", "regex": r"_rq(_(\d{3}))$" },
        { "tag_name": "http_conn_manager_prefix", "regex": r"^http\.(([^.]+)\.)" },
        { "tag_name": "listener_address", "regex": r"^listener\.((\d+\.\d+\.\d+\.\d+_\d+|[^.]+)\.)" }
    ])
}

fn xds_transport_socket(tls: &XdsTls) -> Value {
    let mut socket = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": tls.server_name,
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "validation_context": {
                    "trusted_ca": { "filename": tls.root_cert.display().to_string() },
                    "match_typed_subject_alt_names": [{
                        "san_type": "DNS",
                        "matcher": { "exact": tls.server_name }
                    }]
                }
            }
        }
    });
    if let Some((cert, key)) = &tls.client_cert {
        // File names only: Envoy reads the key itself.
        socket["typed_config"]["common_tls_context"]["tls_certificates"] = json!([{
            "certificate_chain": { "filename": cert.display().to_string() },
            "private_key": { "filename": key.display().to_string() }
        }]);
    }
    socket
}

pub fn render(cfg: &BootstrapConfig) -> Result<Value, BootstrapError> {
    let (xds_host, xds_port) = split_host_port(&cfg.discovery_address)?;
    let ads = json!({ "ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3" });
    let mut b = json!({
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
        },
        "stats_config": { "use_all_default_tags": false, "stats_tags": stats_tags(&cfg.domain) },
        "overload_manager": { "resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                "max_active_downstream_connections": cfg.max_downstream_connections
            }
        }]}
    });
    let statics = &mut b["static_resources"];
    if let Some(tls) = &cfg.xds_tls {
        statics["clusters"][0]["transport_socket"] = xds_transport_socket(tls);
    }
    let mut listeners = Vec::new();
    let mut clusters = Vec::new();
    if cfg.stats_port != 0 {
        listeners.push(path_listener(
            "prometheus_stats",
            cfg.bind_address,
            cfg.stats_port,
            "/stats/prometheus",
            "prometheus_stats",
        ));
        clusters.push(static_cluster("prometheus_stats", cfg.admin_port));
    }
    if cfg.readiness_port != 0 && cfg.status_port != 0 {
        listeners.push(path_listener(
            "readiness",
            cfg.bind_address,
            cfg.readiness_port,
            "/healthz/ready",
            "agent",
        ));
        clusters.push(static_cluster("agent", cfg.status_port));
    }
    if let Some(all) = statics["clusters"].as_array_mut() {
        all.extend(clusters);
    }
    statics["listeners"] = Value::Array(listeners);
    Ok(b)
}

/// Where the bootstrap comes from besides the flags.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// A custom template instead of the built-in bootstrap.
    pub template: Option<PathBuf>,
    /// Merged on top of the result, as Envoy's `--config-yaml`.
    pub overlay: Option<PathBuf>,
}

/// The values a custom template can use.
pub fn template_vars(cfg: &BootstrapConfig) -> Result<Vars, BootstrapError> {
    let (host, port) = split_host_port(&cfg.discovery_address)?;
    let builtin = render(cfg)?;
    Ok([
        ("node_id", json!(cfg.identity.node_id())),
        ("cluster", json!(cfg.service_cluster)),
        ("metadata", Value::Object(cfg.identity.metadata.clone())),
        ("admin_port", json!(cfg.admin_port)),
        ("discovery_address", json!(cfg.discovery_address)),
        ("discovery_host", json!(host)),
        ("discovery_port", json!(port)),
        ("xds_api_type", json!(cfg.xds_type.api_type())),
        ("stats_port", json!(cfg.stats_port)),
        ("readiness_port", json!(cfg.readiness_port)),
        ("status_port", json!(cfg.status_port)),
        ("bind_address", json!(cfg.bind_address.to_string())),
        // The built-in pieces, so a template can keep them whole.
        (
            "xds_cluster",
            builtin["static_resources"]["clusters"][0].clone(),
        ),
        (
            "builtin_listeners",
            builtin["static_resources"]["listeners"].clone(),
        ),
        (
            "builtin_clusters",
            builtin["static_resources"]["clusters"].clone(),
        ),
        ("stats_config", builtin["stats_config"].clone()),
        ("overload_manager", builtin["overload_manager"].clone()),
    ]
    .into_iter()
    .collect())
}

/// The bootstrap `proxy` writes: the built-in one or the template, with the
/// override merged on top.
pub fn build(cfg: &BootstrapConfig, sources: &Sources) -> Result<Value, BootstrapError> {
    let mut b = match &sources.template {
        Some(path) => template::render_file(path, &template_vars(cfg)?)?,
        None => render(cfg)?,
    };
    if let Some(path) = &sources.overlay {
        let text =
            std::fs::read_to_string(path).map_err(|source| BootstrapError::ReadOverride {
                path: path.clone(),
                source,
            })?;
        let options = serde_saphyr::options! { with_snippet: false, strict_booleans: true };
        let over: Value =
            serde_saphyr::from_str_with_options(&text, options).map_err(|source| {
                BootstrapError::ParseOverride {
                    path: path.clone(),
                    source: Box::new(source),
                }
            })?;
        merge(&mut b, over);
    }
    Ok(b)
}

/// Merges `over` into `base` as protobuf's MergeFrom (and so Envoy's
/// `--config-yaml`) does: objects field by field, lists appended, anything
/// else replaced.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => merge_objects(b, o),
        (Value::Array(b), Value::Array(o)) => b.extend(o),
        (b, o) => *b = o,
    }
}

fn merge_objects(base: &mut Map<String, Value>, over: Map<String, Value>) {
    for (k, v) in over {
        match base.get_mut(&k) {
            Some(existing) => merge(existing, v),
            None => {
                base.insert(k, v);
            }
        }
    }
}

/// Writes the bootstrap as `<dir>/envoy-rev.json`; see [`write_file`].
pub fn write(dir: &Path, bootstrap: &Value) -> Result<PathBuf, BootstrapError> {
    let path = dir.join(BOOTSTRAP_FILE);
    write_file(&path, bootstrap)?;
    Ok(path)
}

/// Writes a bootstrap as readable JSON, readable by its owner only (it
/// names the control plane and may name credentials), through a temporary
/// file and a rename so Envoy never reads half a file.
pub fn write_file(path: &Path, bootstrap: &Value) -> Result<(), BootstrapError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let err = |source| BootstrapError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let text = serde_json::to_string_pretty(bootstrap).map_err(|e| err(e.into()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
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
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
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
            stats_port: 15090,
            readiness_port: 15021,
            status_port: 15020,
            bind_address: IpAddr::from([0, 0, 0, 0]),
            xds_tls: None,
            max_downstream_connections: 100_000,
            domain: "cluster.local".into(),
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

    fn listener<'a>(b: &'a Value, name: &str) -> &'a Value {
        b["static_resources"]["listeners"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["name"] == name))
            .unwrap_or(&Value::Null)
    }

    #[test]
    fn prometheus_and_readiness_listeners_route_one_path_each() {
        let b = render(&cfg("127.0.0.1:15010")).expect("renders");
        let prom = listener(&b, "prometheus_stats");
        assert_eq!(prom["address"]["socket_address"]["port_value"], 15090);
        assert_eq!(prom["address"]["socket_address"]["address"], "0.0.0.0");
        let route = &prom["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
            ["virtual_hosts"][0]["routes"][0];
        assert_eq!(route["match"]["path"], "/stats/prometheus");
        assert_eq!(route["route"]["cluster"], "prometheus_stats");
        let ready = listener(&b, "readiness");
        assert_eq!(ready["address"]["socket_address"]["port_value"], 15021);
        let clusters = b["static_resources"]["clusters"]
            .as_array()
            .expect("clusters");
        let agent = clusters
            .iter()
            .find(|c| c["name"] == "agent")
            .expect("agent cluster");
        assert_eq!(
            agent["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["port_value"],
            15020
        );
        assert_eq!(
            b["overload_manager"]["resource_monitors"][0]["typed_config"]
                ["max_active_downstream_connections"],
            100_000
        );

        let mut off = cfg("127.0.0.1:15010");
        off.stats_port = 0;
        off.readiness_port = 0;
        let b = render(&off).expect("renders");
        assert_eq!(b["static_resources"]["listeners"], json!([]));
        assert_eq!(
            b["static_resources"]["clusters"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn tls_to_discovery_checks_the_server_name() {
        let mut c = cfg("istiod.istio-system.svc:15012");
        c.xds_tls = Some(XdsTls {
            root_cert: "/etc/certs/root-cert.pem".into(),
            server_name: "istiod.istio-system.svc".into(),
            client_cert: None,
        });
        let b = render(&c).expect("renders");
        let tls = &b["static_resources"]["clusters"][0]["transport_socket"]["typed_config"];
        assert_eq!(tls["sni"], "istiod.istio-system.svc");
        let v = &tls["common_tls_context"]["validation_context"];
        assert_eq!(v["trusted_ca"]["filename"], "/etc/certs/root-cert.pem");
        assert_eq!(
            v["match_typed_subject_alt_names"][0]["matcher"]["exact"],
            "istiod.istio-system.svc"
        );
        assert!(tls["common_tls_context"].get("tls_certificates").is_none());
        c.xds_tls = c.xds_tls.map(|t| XdsTls {
            client_cert: Some((
                "/etc/certs/cert-chain.pem".into(),
                "/etc/certs/key.pem".into(),
            )),
            ..t
        });
        let b = render(&c).expect("renders");
        let own = &b["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]
            ["common_tls_context"]["tls_certificates"][0];
        assert_eq!(
            own["certificate_chain"]["filename"],
            "/etc/certs/cert-chain.pem"
        );
        assert_eq!(own["private_key"]["filename"], "/etc/certs/key.pem");
        let plain = render(&cfg("istiod.istio-system.svc:15010")).expect("renders");
        assert!(plain["static_resources"]["clusters"][0]
            .get("transport_socket")
            .is_none());
    }

    #[test]
    fn override_merges_like_envoy_config_yaml() {
        let dir = tempfile::tempdir().expect("tempdir");
        let over = dir.path().join("over.yaml");
        std::fs::write(
            &over,
            "admin:\n  address: {socket_address: {port_value: 19000}}\n\
             static_resources:\n  clusters: [{name: extra}]\n\
             layered_runtime: {layers: [{name: rt, static_layer: {a: 1}}]}\n",
        )
        .expect("write");
        let sources = Sources {
            template: None,
            overlay: Some(over.clone()),
        };
        let b = build(&cfg("127.0.0.1:15010"), &sources).expect("builds");
        assert_eq!(b["admin"]["address"]["socket_address"]["port_value"], 19000);
        assert_eq!(
            b["admin"]["address"]["socket_address"]["address"], "127.0.0.1",
            "merged, not replaced"
        );
        let names: Vec<&Value> = b["static_resources"]["clusters"]
            .as_array()
            .expect("clusters")
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names.first(), Some(&&json!("xds-grpc")));
        assert_eq!(names.last(), Some(&&json!("extra")), "lists are appended");
        assert_eq!(b["layered_runtime"]["layers"][0]["name"], "rt");

        std::fs::write(&over, "admin: [unclosed").expect("write");
        let e = build(&cfg("127.0.0.1:15010"), &sources).expect_err("bad yaml");
        assert!(e.to_string().contains("over.yaml"), "{e}");
    }

    #[test]
    fn template_replaces_the_builtin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = dir.path().join("t.json");
        std::fs::write(
            &t,
            r#"{"node": {"id": "{{ node_id }}", "cluster": "{{ cluster }}", "metadata": "{{ metadata }}"},
                "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": "{{ admin_port }}"}}},
                "static_resources": {"clusters": ["{{ xds_cluster }}"]}}"#,
        )
        .expect("write");
        let b = build(
            &cfg("127.0.0.1:15010"),
            &Sources {
                template: Some(t),
                overlay: None,
            },
        )
        .expect("builds");
        assert_eq!(b["admin"]["address"]["socket_address"]["port_value"], 15000);
        assert_eq!(b["static_resources"]["clusters"][0]["name"], "xds-grpc");
        assert_eq!(b["node"]["metadata"]["INTERCEPTION_MODE"], "NONE");
        assert!(
            b.get("dynamic_resources").is_none(),
            "only what the template says"
        );
    }
}

//! The example mesh, running: pilot-discovery on a copy of a config folder,
//! the upstream versions it names, and pilot-agent with a real Envoy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use pilot_agent::http_client;
use serde_json::Value;

use crate::binaries::envoy;
use crate::discovery::Discovery;
use crate::ports::{ensure_free, free_port};
use crate::process::Proc;
use crate::sidecar::{agent_command, SidecarPorts};

pub use crate::sidecar::Xds;
use crate::upstream::Upstream;
use crate::wait;

/// Ports the example folder (`examples/mesh`) uses.
pub const SERVICE_PORT: u16 = 9080;
pub const REVIEWS_V1_PORT: u16 = 19081;
pub const REVIEWS_V2_PORT: u16 = 19082;
pub const RATINGS_PORT: u16 = 19083;

pub const REVIEWS_HOST: &str = "reviews.default.svc.cluster.local";
pub const RATINGS_HOST: &str = "ratings.default.svc.cluster.local";

const STARTUP: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPlan {
    /// Use the folder's ports as written (the demo).
    AsWritten,
    /// Rewrite the folder's ports to free ones, so tests run side by side.
    Free,
}

/// The port numbers in use, as written in the folder → as running.
#[derive(Debug, Clone)]
pub struct Ports {
    pub service: u16,
    pub reviews_v1: u16,
    pub reviews_v2: u16,
    pub ratings: u16,
    pub admin: u16,
    pub status: u16,
    /// Envoy's Prometheus listener.
    pub stats: u16,
    /// Envoy's readiness listener (forwards to the agent's status port).
    pub readiness: u16,
}

/// How the sidecar is run.
#[derive(Debug, Clone)]
pub struct MeshOptions {
    pub xds: Xds,
    /// More pilot-agent flags. The harness sets a 1 s termination drain
    /// unless these set `--termination-drain-duration`.
    pub agent_args: Vec<String>,
    /// Run this instead of Envoy (a wrapper around it, say).
    pub envoy_binary: Option<PathBuf>,
    /// More pilot-discovery flags.
    pub discovery_args: Vec<String>,
}

impl Default for MeshOptions {
    fn default() -> Self {
        MeshOptions {
            xds: Xds::Delta,
            agent_args: Vec::new(),
            envoy_binary: None,
            discovery_args: Vec::new(),
        }
    }
}

pub struct Mesh {
    // Field order is drop order: the proxy goes first, the folder last.
    pub agent: Proc,
    pub discovery: Discovery,
    /// reviews v1, reviews v2, ratings.
    pub upstreams: Vec<Upstream>,
    pub ports: Ports,
    /// When the agent process was started (for start-up benchmarks).
    pub agent_started: std::time::Instant,
    config_dir: PathBuf,
    work: tempfile::TempDir,
}

impl Mesh {
    /// Copies `source` (the example folder) to a temporary folder and starts
    /// everything on it; returns once Envoy routes a request to reviews.
    pub async fn start(source: &Path, plan: PortPlan) -> anyhow::Result<Mesh> {
        Self::start_with(source, plan, Xds::Delta).await
    }

    /// As [`Mesh::start`], with the sidecar speaking the given ADS flavour.
    pub async fn start_with(source: &Path, plan: PortPlan, xds: Xds) -> anyhow::Result<Mesh> {
        Self::start_opts(
            source,
            plan,
            MeshOptions {
                xds,
                ..MeshOptions::default()
            },
        )
        .await
    }

    /// As [`Mesh::start`], with the sidecar run as `opts` say.
    pub async fn start_opts(
        source: &Path,
        plan: PortPlan,
        opts: MeshOptions,
    ) -> anyhow::Result<Mesh> {
        let xds = opts.xds;
        let work = tempfile::Builder::new()
            .prefix("pilot-mesh-")
            .tempdir()
            .context("cannot create a temporary folder")?;
        // The upstreams are this process's own servers: each is bound as
        // its port is chosen, so no other process can take the port between.
        let (upstreams, ports) = match plan {
            PortPlan::AsWritten => {
                ensure_free(SERVICE_PORT, "the reviews/ratings service port")?;
                let upstreams = vec![
                    Upstream::start(REVIEWS_V1_PORT, "v1").await?,
                    Upstream::start(REVIEWS_V2_PORT, "v2").await?,
                    Upstream::start(RATINGS_PORT, "ratings").await?,
                ];
                let ports = Ports {
                    service: SERVICE_PORT,
                    reviews_v1: REVIEWS_V1_PORT,
                    reviews_v2: REVIEWS_V2_PORT,
                    ratings: RATINGS_PORT,
                    admin: free_port()?,
                    status: free_port()?,
                    stats: free_port()?,
                    readiness: free_port()?,
                };
                (upstreams, ports)
            }
            PortPlan::Free => {
                let upstreams = vec![
                    Upstream::start_free("127.0.0.1", "v1").await?,
                    Upstream::start_free("127.0.0.1", "v2").await?,
                    Upstream::start_free("127.0.0.1", "ratings").await?,
                ];
                let ports = Ports {
                    service: free_port()?,
                    reviews_v1: upstreams[0].addr.port(),
                    reviews_v2: upstreams[1].addr.port(),
                    ratings: upstreams[2].addr.port(),
                    admin: free_port()?,
                    status: free_port()?,
                    stats: free_port()?,
                    readiness: free_port()?,
                };
                (upstreams, ports)
            }
        };
        let config_dir = work.path().join("config");
        copy_config(source, &config_dir, &ports)?;

        let discovery = {
            let extra: Vec<&str> = opts.discovery_args.iter().map(String::as_str).collect();
            Discovery::start(&config_dir, &work.path().join("discovery.log"), &extra).await?
        };

        let envoy_binary = match &opts.envoy_binary {
            Some(b) => b.clone(),
            None => envoy()?,
        };
        let mut cmd = agent_command(
            discovery.grpc,
            xds,
            &envoy_binary,
            &work.path().join("proxy"),
            SidecarPorts {
                admin: ports.admin,
                status: ports.status,
                stats: ports.stats,
                readiness: ports.readiness,
            },
            "productpage-v1-0",
            "default",
        )?;
        if !opts
            .agent_args
            .iter()
            .any(|a| a == "--termination-drain-duration")
        {
            cmd.args(["--termination-drain-duration", "1s"]);
        }
        cmd.args(&opts.agent_args);
        let agent_started = std::time::Instant::now();
        let agent = Proc::spawn("pilot-agent", cmd, &work.path().join("agent.log"))?;

        let mut mesh = Mesh {
            agent,
            discovery,
            upstreams,
            ports,
            agent_started,
            config_dir,
            work,
        };
        mesh.wait_routing(REVIEWS_HOST, |body| body == "v1" || body == "v2", STARTUP)
            .await
            .context("the sidecar never routed a request to reviews")?;
        Ok(mesh)
    }

    /// The temporary copy of the config folder that discovery watches.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The mesh's temporary folder (logs, the proxy's config path `proxy/`).
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// The agent's status port, `GET path`.
    pub async fn status_get(&self, path: &str) -> anyhow::Result<http_client::Response> {
        crate::discovery::get_on(self.ports.status, path).await
    }

    /// Envoy's admin API, as the agent sees it.
    pub fn admin(&self) -> pilot_agent::admin::Admin {
        pilot_agent::admin::Admin::new(self.ports.admin, REQUEST_TIMEOUT)
    }

    /// The sidecar's outbound listener for the service port.
    pub fn listener(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.service))
    }

    /// Sends one request through the sidecar with the given Host header.
    pub async fn request(&self, host: &str) -> anyhow::Result<http_client::Response> {
        Ok(http_client::get(self.listener(), host, "/", REQUEST_TIMEOUT).await?)
    }

    /// Sends `n` requests and counts the answers by body.
    pub async fn split(&self, host: &str, n: usize) -> anyhow::Result<BTreeMap<String, usize>> {
        let mut counts = BTreeMap::new();
        for _ in 0..n {
            let r = self.request(host).await?;
            let key = if r.status == 200 {
                r.body.trim().to_string()
            } else {
                format!("HTTP {}", r.status)
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// Waits until `probe` consecutive requests all give a body `accept` takes.
    pub async fn wait_routing(
        &mut self,
        host: &str,
        accept: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        const PROBE: usize = 10;
        let accept = &accept;
        let listener = self.listener();
        let agent_running = &mut self.agent;
        wait::until(
            &format!("requests to {host} to be routed as expected"),
            timeout,
            || {
                let running = agent_running.check_running();
                async move {
                    running?;
                    for _ in 0..PROBE {
                        let r = http_client::get(listener, host, "/", REQUEST_TIMEOUT)
                            .await
                            .map_err(|e| e.to_string())?;
                        if r.status != 200 || !accept(r.body.trim()) {
                            return Err(format!("got HTTP {} {:?}", r.status, r.body.trim()));
                        }
                    }
                    Ok(Some(()))
                }
            },
        )
        .await
    }

    /// Envoy's admin `/config_dump`.
    pub async fn config_dump(&self) -> anyhow::Result<Value> {
        let admin = SocketAddr::from(([127, 0, 0, 1], self.ports.admin));
        let r = http_client::get(admin, "127.0.0.1", "/config_dump", REQUEST_TIMEOUT).await?;
        anyhow::ensure!(r.status == 200, "config_dump answered HTTP {}", r.status);
        serde_json::from_str(&r.body).context("config_dump is not JSON")
    }

    /// Envoy's server state from admin `/ready` (`LIVE` once serving).
    pub async fn envoy_state(&self) -> anyhow::Result<String> {
        let admin = SocketAddr::from(([127, 0, 0, 1], self.ports.admin));
        let r = http_client::get(admin, "127.0.0.1", "/ready", REQUEST_TIMEOUT).await?;
        Ok(r.body.trim().to_string())
    }
}

/// The dynamic entries of one section of a config dump, e.g.
/// `dynamic_active_clusters` of the clusters dump.
pub fn dump_section<'a>(dump: &'a Value, type_suffix: &str, field: &str) -> Vec<&'a Value> {
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with(type_suffix))
        })
        .flat_map(|c| c[field].as_array().into_iter().flatten())
        .collect()
}

/// Copies the config folder, rewriting its port numbers to the running ones.
fn copy_config(source: &Path, dest: &Path, ports: &Ports) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest)?;
    let map = [
        (SERVICE_PORT, ports.service),
        (REVIEWS_V1_PORT, ports.reviews_v1),
        (REVIEWS_V2_PORT, ports.reviews_v2),
        (RATINGS_PORT, ports.ratings),
    ];
    let number = regex::Regex::new(r"\b\d{4,5}\b")?;
    for entry in
        std::fs::read_dir(source).with_context(|| format!("cannot read {}", source.display()))?
    {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let rewritten = number.replace_all(&text, |c: &regex::Captures<'_>| {
            let n: u16 = c[0].parse().unwrap_or(0);
            let to = map
                .iter()
                .find(|(from, _)| *from == n)
                .map_or(n, |(_, to)| *to);
            to.to_string()
        });
        let name = path.file_name().context("file without a name")?;
        std::fs::write(dest.join(name), rewritten.as_bytes())?;
    }
    Ok(())
}

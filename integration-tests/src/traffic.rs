//! A mesh for traffic-management tests: pilot-discovery on a config folder
//! the test writes, echo servers as the workloads, and one sidecar (a real
//! Envoy under pilot-agent) whose outbound listeners the test calls.
//!
//! Every service gets its own port, so the sidecar's listener
//! `127.0.0.1:<port>` reaches exactly that service's routes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use pilot_agent::admin::Admin;
use serde_json::Value;

use crate::binaries::envoy;
use crate::client::{Call, Reply};
use crate::discovery::Discovery;
use crate::echo::EchoServer;
use crate::mesh::{dump_section, Xds};
use crate::process::Proc;
use crate::sidecar::{agent_command, proxy_command, SidecarPorts};
use crate::wait;

pub const NAMESPACE: &str = "default";
const CONVERGE: Duration = Duration::from_secs(30);

/// The fully qualified name of a test service.
pub fn host(name: &str) -> String {
    format!("{name}.{NAMESPACE}.svc.cluster.local")
}

/// A service `name` on `port` (protocol HTTP) whose endpoints are the given
/// echo servers, each a WorkloadEntry with `app: <name>` and its labels.
pub fn service(name: &str, port: u16, endpoints: &[(&EchoServer, &[(&str, &str)])]) -> String {
    let endpoints: Vec<(u16, &[(&str, &str)])> =
        endpoints.iter().map(|(s, l)| (s.port(), *l)).collect();
    service_on(name, port, "HTTP", &endpoints)
}

/// As [`service`], with the port's protocol and endpoints given as
/// (port, labels).
pub fn service_on(
    name: &str,
    port: u16,
    protocol: &str,
    endpoints: &[(u16, &[(&str, &str)])],
) -> String {
    let mut out = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: main, protocol: {protocol}}}]
  workloadSelector: {{labels: {{app: {name}}}}}
",
        host = host(name)
    );
    for (i, (endpoint_port, labels)) in endpoints.iter().enumerate() {
        let mut all = vec![format!("app: {name}")];
        all.extend(labels.iter().map(|(k, v)| format!("{k}: {v}")));
        out.push_str(&format!(
            "---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}-{i}, namespace: {NAMESPACE}}}
spec:
  address: 127.0.0.1
  ports: {{main: {endpoint_port}}}
  labels: {{{labels}}}
",
            labels = all.join(", ")
        ));
    }
    out
}

/// A VirtualService `name` for host `name`, with `http` as its rules
/// (YAML list items indented by two spaces).
pub fn virtual_service(name: &str, http: &str) -> String {
    virtual_service_with(name, "http", http)
}

/// As [`virtual_service`], with `tcp` rules.
pub fn tcp_virtual_service(name: &str, tcp: &str) -> String {
    virtual_service_with(name, "tcp", tcp)
}

fn virtual_service_with(name: &str, section: &str, rules: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  hosts: [{name}]
  {section}:
{rules}"
    )
}

/// A DestinationRule `name` for host `name`; `spec` holds the rest of the
/// spec, indented by two spaces.
pub fn destination_rule(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  host: {name}
{spec}"
    )
}

/// A `networking.istio.io` resource of `kind` named `name` in the test
/// namespace; `spec` holds the spec, indented by two spaces.
pub fn resource(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
{spec}"
    )
}

/// A Sidecar resource `name`; `spec` indented by two spaces.
pub fn sidecar(name: &str, spec: &str) -> String {
    resource("Sidecar", name, spec)
}

/// Envoy's admin `/config_dump` on `admin_port`.
pub async fn config_dump_at(admin_port: u16) -> anyhow::Result<Value> {
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let r = Call::get("127.0.0.1", "/config_dump").send(admin).await?;
    anyhow::ensure!(r.status == 200, "config_dump answered HTTP {}", r.status);
    serde_json::from_str(&r.body).context("config_dump is not JSON")
}

/// The names of the listeners in a config dump, sorted.
pub fn listener_names(dump: &Value) -> Vec<String> {
    sorted_names(dump, "ListenersConfigDump", "dynamic_listeners", "/name")
}

/// The names of the route configurations in a config dump, sorted.
pub fn route_config_names(dump: &Value) -> Vec<String> {
    sorted_names(
        dump,
        "RoutesConfigDump",
        "dynamic_route_configs",
        "/route_config/name",
    )
}

fn sorted_names(dump: &Value, suffix: &str, field: &str, pointer: &str) -> Vec<String> {
    let mut out: Vec<String> = dump_section(dump, suffix, field)
        .into_iter()
        .filter_map(|v| v.pointer(pointer)?.as_str().map(ToString::to_string))
        .collect();
    out.sort();
    out
}

/// Fails unless the Envoy with admin port `admin_port` took every config
/// it was sent (no `update_rejected` stat above zero).
pub async fn ensure_envoy_took_all(admin_port: u16) -> anyhow::Result<()> {
    let rejected = envoy_rejections(admin_port).await?;
    anyhow::ensure!(rejected.is_empty(), "Envoy rejected config: {rejected:?}");
    Ok(())
}

/// Every `update_rejected` stat above zero of the Envoy with admin port
/// `admin_port`, as `name = count`.
async fn envoy_rejections(admin_port: u16) -> anyhow::Result<Vec<String>> {
    let stats = Admin::new(admin_port, Duration::from_secs(5))
        .stats("update_rejected")
        .await?;
    Ok(stats
        .into_iter()
        .filter(|(k, v)| k.ends_with("update_rejected") && *v > 0)
        .map(|(k, v)| format!("{k} = {v}"))
        .collect())
}

/// Subsets `v1` and `v2` of `name`, by the `version` label.
pub fn version_subsets(name: &str) -> String {
    destination_rule(
        name,
        "  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
",
    )
}

/// Service `shop` on `port`, with `v1` and `v2` as its versions and the
/// DestinationRule naming them, then `more` files.
pub fn versioned_shop<const N: usize>(
    port: u16,
    v1: &EchoServer,
    v2: &EchoServer,
    more: [(&'static str, String); N],
) -> Vec<(&'static str, String)> {
    let mut files = vec![
        (
            "shop.yaml",
            service(
                "shop",
                port,
                &[(v1, &[("version", "v1")]), (v2, &[("version", "v2")])],
            ),
        ),
        ("shop-dr.yaml", version_subsets("shop")),
    ];
    files.extend(more);
    files
}

/// How many replies each echo server (or each error status) gave.
pub fn count(replies: &[Reply]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in replies {
        *out.entry(r.who()).or_insert(0) += 1;
    }
    out
}

pub struct TrafficMesh {
    // Field order is drop order: the proxy goes first, the folder last.
    pub agent: Proc,
    pub discovery: Discovery,
    pub ports: SidecarPorts,
    config_dir: PathBuf,
    discovery_restarts: usize,
    work: tempfile::TempDir,
}

impl TrafficMesh {
    /// Writes `files` (name, YAML) into a fresh config folder and starts
    /// discovery and the sidecar on it. Callers wait for the routing they
    /// need with [`TrafficMesh::wait_for`].
    pub async fn start(files: &[(&str, String)]) -> anyhow::Result<TrafficMesh> {
        let work = tempfile::Builder::new()
            .prefix("pilot-traffic-")
            .tempdir()
            .context("cannot create a temporary folder")?;
        let config_dir = work.path().join("config");
        std::fs::create_dir_all(&config_dir)?;
        for (name, text) in files {
            std::fs::write(config_dir.join(name), text)?;
        }
        let discovery =
            Discovery::start(&config_dir, &work.path().join("discovery.log"), &[]).await?;
        let ports = SidecarPorts::free()?;
        let mut cmd = agent_command(
            discovery.grpc,
            Xds::Delta,
            &envoy()?,
            &work.path().join("proxy"),
            ports,
            "traffic-0",
            NAMESPACE,
        )?;
        cmd.args(["--termination-drain-duration", "1s"]);
        let agent = Proc::spawn("pilot-agent", cmd, &work.path().join("agent.log"))?;
        Ok(TrafficMesh {
            agent,
            discovery,
            ports,
            config_dir,
            discovery_restarts: 0,
            work,
        })
    }

    /// Starts another sidecar on the same discovery, for pod `pod` at
    /// `instance_ip` with `labels` (a JSON object). It runs until the
    /// returned process is dropped.
    pub fn start_sidecar(
        &self,
        pod: &str,
        instance_ip: &str,
        labels: &str,
    ) -> anyhow::Result<(Proc, SidecarPorts)> {
        self.start_proxy("sidecar", pod, instance_ip, labels)
    }

    /// Starts a gateway proxy (`pilot-agent proxy router`) for pod `pod`
    /// with `labels` (a JSON object) on the same discovery.
    pub fn start_router(&self, pod: &str, labels: &str) -> anyhow::Result<(Proc, SidecarPorts)> {
        self.start_proxy("router", pod, "127.0.0.1", labels)
    }

    fn start_proxy(
        &self,
        kind: &str,
        pod: &str,
        instance_ip: &str,
        labels: &str,
    ) -> anyhow::Result<(Proc, SidecarPorts)> {
        let ports = SidecarPorts::free()?;
        let mut cmd = proxy_command(
            kind,
            self.discovery.grpc,
            Xds::Delta,
            &envoy()?,
            &self.work.path().join(pod),
            ports,
            pod,
            NAMESPACE,
        )?;
        cmd.args(["--termination-drain-duration", "1s"])
            .env("INSTANCE_IP", instance_ip)
            .env("ISTIO_METAJSON_LABELS", labels);
        let log = self.work.path().join(format!("{pod}.log"));
        Ok((Proc::spawn("pilot-agent", cmd, &log)?, ports))
    }

    /// Replaces (or adds) one file of the config folder, atomically, so
    /// discovery never reads half of it.
    pub fn write(&self, name: &str, text: &str) -> anyhow::Result<()> {
        let tmp = self.work.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.config_dir.join(name))
            .with_context(|| format!("cannot replace {name}"))
    }

    /// Kills discovery outright (SIGKILL: no goodbye to its streams) and
    /// waits until it is gone.
    pub fn kill_discovery(&mut self) -> anyhow::Result<()> {
        self.discovery
            .proc
            .signal(nix::sys::signal::Signal::SIGKILL);
        anyhow::ensure!(
            self.discovery.proc.wait_exit(CONVERGE).is_some(),
            "discovery outlived SIGKILL"
        );
        Ok(())
    }

    /// Starts discovery again on the same xDS port, reading the same folder;
    /// returns once it is ready.
    pub async fn restart_discovery(&mut self) -> anyhow::Result<()> {
        self.discovery_restarts += 1;
        let log = (self.work.path()).join(format!("discovery-{}.log", self.discovery_restarts));
        self.discovery =
            Discovery::start_on(self.discovery.grpc, &self.config_dir, &log, &[]).await?;
        Ok(())
    }

    /// Removes one file of the config folder.
    pub fn remove(&self, name: &str) -> anyhow::Result<()> {
        std::fs::remove_file(self.config_dir.join(name))
            .with_context(|| format!("cannot remove {name}"))
    }

    /// Waits until `/debug/configz` lists, under `section` (`errors`: inputs
    /// rejected alone; `problems`: found between resources), an entry whose
    /// `severity: error` text has every one of `parts`; returns that text.
    pub async fn wait_for_configz(&self, section: &str, parts: &[&str]) -> anyhow::Result<String> {
        wait::until(
            &format!("{parts:?} in /debug/configz"),
            CONVERGE,
            || async {
                let configz = self
                    .discovery
                    .json("/debug/configz")
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(configz[section]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let text = |k: &str| p[k].as_str().unwrap_or_default().to_string();
                        format!("{}: {}", text("severity"), text("error"))
                    })
                    .find(|text| parts.iter().all(|part| text.contains(part))))
            },
        )
        .await
    }

    /// Sends `call` to the sidecar's outbound listener on `port`.
    pub async fn call(&self, port: u16, call: &Call) -> anyhow::Result<Reply> {
        call.send(SocketAddr::from(([127, 0, 0, 1], port))).await
    }

    /// Sends `call` `n` times, one after the other.
    pub async fn calls(&self, port: u16, call: &Call, n: usize) -> anyhow::Result<Vec<Reply>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.call(port, call).await?);
        }
        Ok(out)
    }

    /// Sends `call` `n` times at once, each on its own connection.
    pub async fn concurrent_calls(
        &self,
        port: u16,
        call: &Call,
        n: usize,
    ) -> anyhow::Result<Vec<Reply>> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let call = call.clone();
                tokio::spawn(async move { call.send(addr).await })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for t in tasks {
            out.push(t.await??);
        }
        Ok(out)
    }

    /// Waits until `call` on `port` gets a reply `accept` takes, 3 times in
    /// a row (a config push reaches Envoy's workers one by one).
    pub async fn wait_for(
        &mut self,
        what: &str,
        port: u16,
        call: &Call,
        accept: impl Fn(&Reply) -> bool,
    ) -> anyhow::Result<()> {
        let accept = &accept;
        let agent = &mut self.agent;
        wait::until(what, CONVERGE, || {
            let running = agent.check_running();
            async move {
                running?;
                for _ in 0..3 {
                    let r = call
                        .send(SocketAddr::from(([127, 0, 0, 1], port)))
                        .await
                        .map_err(|e| format!("{e:#}"))?;
                    if !accept(&r) {
                        return Err(format!("got HTTP {} {}", r.status, r.body.trim()));
                    }
                }
                Ok(Some(()))
            }
        })
        .await
        .with_context(|| format!("discovery log:\n{}", self.discovery.proc.log()))
    }

    /// Waits until the sidecar refuses connections on `port`: its listener
    /// there is gone.
    pub async fn wait_refused(&mut self, what: &str, port: u16) -> anyhow::Result<()> {
        let agent = &mut self.agent;
        wait::until(what, CONVERGE, || {
            let running = agent.check_running();
            async move {
                running?;
                match tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await
                {
                    Ok(_) => Err(format!("127.0.0.1:{port} still accepts connections")),
                    Err(_) => Ok(Some(())),
                }
            }
        })
        .await
        .with_context(|| format!("discovery log:\n{}", self.discovery.proc.log()))
    }

    /// The names of the clusters Envoy holds from discovery.
    pub async fn cluster_names(&self) -> anyhow::Result<BTreeSet<String>> {
        let dump = self.config_dump().await?;
        Ok(
            dump_section(&dump, "ClustersConfigDump", "dynamic_active_clusters")
                .into_iter()
                .filter_map(|c| c["cluster"]["name"].as_str().map(ToString::to_string))
                .collect(),
        )
    }

    pub fn admin(&self) -> Admin {
        Admin::new(self.ports.admin, Duration::from_secs(5))
    }

    /// Envoy's admin `/config_dump`.
    pub async fn config_dump(&self) -> anyhow::Result<Value> {
        config_dump_at(self.ports.admin).await
    }

    /// Fails with the list of rejections unless Envoy took every config.
    pub async fn ensure_nothing_rejected(&self) -> anyhow::Result<()> {
        let rejected = self.rejections().await?;
        anyhow::ensure!(rejected.is_empty(), "Envoy rejected config: {rejected:?}");
        Ok(())
    }

    /// Every config Envoy rejected, by stat name; empty when it took all.
    /// Discovery's own count of NACKs must agree.
    pub async fn rejections(&self) -> anyhow::Result<Vec<String>> {
        let mut out = envoy_rejections(self.ports.admin).await?;
        let metrics = self.discovery.get("/metrics").await?.body;
        out.extend(
            metrics
                .lines()
                .filter(|l| l.starts_with("pilot_total_xds_rejects"))
                .filter(|l| !l.ends_with(" 0"))
                .map(ToString::to_string),
        );
        Ok(out)
    }
}

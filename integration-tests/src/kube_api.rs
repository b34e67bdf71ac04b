//! A real Kubernetes API server for tests: Debian's etcd and kube-apiserver
//! v1.20.2 (`make kube-tools` builds it) on free loopback ports, with its own
//! CA, a static admin token and RBAC on. Only the API server runs: tests
//! create every object themselves (no controllers, no kubelet).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope};
use kube::Client;
use pilot_agent::http_client;
use rcgen::KeyPair;

use crate::pki::TestPki;
use crate::ports::free_port;
use crate::process::Proc;
use crate::wait;

/// The address the tests' pods have: the API server refuses loopback
/// addresses in Endpoints, so `make kube-tools` puts this documentation
/// address (TEST-NET-1) on the loopback interface.
pub const POD_IP: &str = "192.0.2.10";

const STARTUP: Duration = Duration::from_secs(60);
const ADMIN_TOKEN: &str = "pilot-tests-admin";
/// The token of pilot-discovery's service account (manifests/rbac.yaml),
/// as a static token so tests need no token controller.
pub const PILOT_SA_TOKEN: &str = "pilot-tests-service-account";
pub const PILOT_SA_USER: &str = "system:serviceaccount:istio-system:pilot-discovery";

/// kube-apiserver: `$KUBE_APISERVER_BIN`, else the copy `make kube-tools` builds.
pub fn apiserver_binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("KUBE_APISERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/kube/bin/kube-apiserver");
    anyhow::ensure!(
        built.exists(),
        "kube-apiserver not found: run `make kube-tools`, or set KUBE_APISERVER_BIN"
    );
    Ok(built)
}

fn etcd_binary() -> PathBuf {
    std::env::var("ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("etcd"))
}

pub struct KubeApi {
    // Field order is drop order: the API servers stop before etcd.
    apiserver: Option<Proc>,
    _etcd: Proc,
    /// The API server's HTTPS port.
    pub port: u16,
    etcd_port: u16,
    /// A kubeconfig with the admin token.
    pub kubeconfig: PathBuf,
    starts: usize,
    work: tempfile::TempDir,
}

impl KubeApi {
    /// Starts etcd and the API server; returns once `/readyz` says ok.
    pub async fn start() -> anyhow::Result<KubeApi> {
        let work = tempfile::Builder::new()
            .prefix("pilot-kube-")
            .tempdir()
            .context("cannot create a temporary folder")?;
        write_pki(work.path())?;
        std::fs::write(
            work.path().join("tokens.csv"),
            format!(
                "{ADMIN_TOKEN},admin,admin,\"system:masters\"\n\
                 {PILOT_SA_TOKEN},{PILOT_SA_USER},pilot-sa,\"system:serviceaccounts,system:serviceaccounts:istio-system\"\n"
            ),
        )?;
        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let client_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new(etcd_binary());
        cmd.args(["--name", "test", "--data-dir"])
            .arg(work.path().join("etcd"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .args(["--log-level", "warn"]);
        let mut etcd = Proc::spawn("etcd", cmd, &work.path().join("etcd.log"))
            .context("cannot start etcd (run `make kube-tools`)")?;
        let health = std::net::SocketAddr::from(([127, 0, 0, 1], etcd_port));
        wait::until("etcd /health", STARTUP, || {
            let running = etcd.check_running();
            async move {
                running?;
                let r = http_client::get(health, "127.0.0.1", "/health", Duration::from_secs(2))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(r.body.contains("true").then_some(()))
            }
        })
        .await?;

        let port = free_port()?;
        // Written by start_apiserver.
        let kubeconfig = admin_kubeconfig(work.path(), port);
        let mut api = KubeApi {
            apiserver: None,
            _etcd: etcd,
            port,
            etcd_port,
            kubeconfig,
            starts: 0,
            work,
        };
        api.apiserver = Some(api.start_apiserver(port).await?);
        // The API server creates the `default` namespace and the
        // `kubernetes` Service shortly after it is ready; tests rely on both.
        let client = api.client().await?;
        wait::until(
            "the default namespace and kubernetes Service",
            STARTUP,
            || {
                let services: Api<Service> = Api::namespaced(client.clone(), "default");
                async move {
                    let found = services
                        .get_opt("kubernetes")
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(found.map(|_| ()))
                }
            },
        )
        .await?;
        Ok(api)
    }

    /// Starts an API server on `port` backed by this etcd; returns once it
    /// is ready. A second one on another port serves the same objects.
    pub async fn start_apiserver(&mut self, port: u16) -> anyhow::Result<Proc> {
        self.starts += 1;
        let dir = self.work.path();
        let mut cmd = Command::new(apiserver_binary()?);
        cmd.args([
            "--etcd-servers",
            &format!("http://127.0.0.1:{}", self.etcd_port),
        ])
        .args([
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
        ])
        .args(["--secure-port", &port.to_string(), "--insecure-port", "0"])
        .arg("--cert-dir")
        .arg(dir.join("apiserver-certs"))
        .arg("--tls-cert-file")
        .arg(dir.join("server-cert.pem"))
        .arg("--tls-private-key-file")
        .arg(dir.join("server-key.pem"))
        .arg("--client-ca-file")
        .arg(dir.join("ca.pem"))
        .arg("--token-auth-file")
        .arg(dir.join("tokens.csv"))
        .args(["--authorization-mode", "RBAC"])
        .args([
            "--service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
        ])
        .arg("--service-account-key-file")
        .arg(dir.join("sa.pub"))
        .arg("--service-account-signing-key-file")
        .arg(dir.join("sa-key.pem"))
        .args(["--service-cluster-ip-range", "10.96.0.0/16"])
        .args(["--endpoint-reconciler-type", "none"])
        .args(["--disable-admission-plugins", "ServiceAccount"])
        .args(["--v", "1"]);
        let log = dir.join(format!("apiserver-{}.log", self.starts));
        let mut proc = Proc::spawn("kube-apiserver", cmd, &log)?;
        write_kubeconfig(&admin_kubeconfig(dir, port), dir, port, ADMIN_TOKEN)?;
        let client = self.client_on(port).await?;
        wait::until("kube-apiserver /readyz", STARTUP, || {
            let running = proc.check_running();
            let client = client.clone();
            async move {
                running?;
                let req = http::Request::get("/readyz")
                    .body(Vec::new())
                    .map_err(|e| e.to_string())?;
                let text = client.request_text(req).await.map_err(|e| e.to_string())?;
                Ok((text.trim() == "ok").then_some(()))
            }
        })
        .await?;
        Ok(proc)
    }

    /// Stops the API server (etcd keeps the objects).
    pub fn stop_apiserver(&mut self) {
        if let Some(mut p) = self.apiserver.take() {
            p.stop();
        }
    }

    /// Starts the API server again on its port.
    pub async fn restart_apiserver(&mut self) -> anyhow::Result<()> {
        self.stop_apiserver();
        self.apiserver = Some(self.start_apiserver(self.port).await?);
        Ok(())
    }

    /// Compacts etcd's history up to now, so a watch resuming from an older
    /// resource version is told it is gone (410) and must list again.
    pub fn compact_etcd(&self) -> anyhow::Result<()> {
        let endpoint = format!("http://127.0.0.1:{}", self.etcd_port);
        let status = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &endpoint, "endpoint", "status", "-w", "json"])
            .output()
            .context("cannot run etcdctl")?;
        anyhow::ensure!(status.status.success(), "etcdctl endpoint status failed");
        let v: serde_json::Value = serde_json::from_slice(&status.stdout)?;
        let revision = v[0]["Status"]["header"]["revision"]
            .as_i64()
            .context("etcdctl printed no revision")?;
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &endpoint, "compact", &revision.to_string()])
            .output()
            .context("cannot run etcdctl")?;
        anyhow::ensure!(
            out.status.success(),
            "etcdctl compact failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// A client with the admin token.
    pub async fn client(&self) -> anyhow::Result<Client> {
        client_from(&self.kubeconfig).await
    }

    /// A client with the admin token for the API server started on `port`.
    pub async fn client_on(&self, port: u16) -> anyhow::Result<Client> {
        client_from(&admin_kubeconfig(self.work.path(), port)).await
    }

    /// The CA that signed the API server's certificate (PEM file).
    pub fn ca_file(&self) -> PathBuf {
        self.work.path().join("ca.pem")
    }

    /// A kubeconfig for this API server with `token`.
    pub fn kubeconfig_with_token(&self, name: &str, token: &str) -> anyhow::Result<PathBuf> {
        let path = self.work.path().join(format!("{name}.kubeconfig"));
        write_kubeconfig(&path, self.work.path(), self.port, token)?;
        Ok(path)
    }

    /// The logs of every API server started so far, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for i in 1..=self.starts {
            let p = self.work.path().join(format!("apiserver-{i}.log"));
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out.push_str(&format!("--- {}\n", p.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

fn admin_kubeconfig(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("admin-{port}.kubeconfig"))
}

async fn client_from(kubeconfig: &Path) -> anyhow::Result<Client> {
    let file = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

fn write_kubeconfig(path: &Path, dir: &Path, port: u16, token: &str) -> anyhow::Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {}\n\
         users:\n- name: user\n  user:\n    token: {token}\n\
         contexts:\n- name: test\n  context:\n    cluster: test\n    user: user\n\
         current-context: test\n",
        dir.join("ca.pem").display()
    );
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// A CA (`ca.pem`), the API server's certificate for 127.0.0.1
/// (`server-cert.pem`, `server-key.pem`), and the service account signing
/// key pair.
fn write_pki(dir: &Path) -> anyhow::Result<()> {
    TestPki::create(dir)?.server("server", &["127.0.0.1", "localhost"])?;
    let sa = KeyPair::generate()?;
    for (name, text) in [
        ("sa-key.pem", sa.serialize_pem()),
        ("sa.pub", sa.public_key_pem()),
    ] {
        std::fs::write(dir.join(name), text)
            .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
    }
    Ok(())
}

/// Creates every object in a multi-document YAML text, as `kubectl create -f`
/// would; custom resource definitions are waited on until they are served.
pub async fn create_yaml(client: &Client, text: &str) -> anyhow::Result<()> {
    let mut discovery = Discovery::new(client.clone()).run().await?;
    for value in mesh_model::yaml::documents(text)? {
        let obj: DynamicObject = serde_json::from_value(value)?;
        let types = obj
            .types
            .clone()
            .context("object without apiVersion/kind")?;
        let (group, version) = match types.api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), types.api_version.clone()),
        };
        let gvk = kube::core::GroupVersionKind::gvk(&group, &version, &types.kind);
        if discovery.resolve_gvk(&gvk).is_none() {
            // A kind whose definition was created a moment ago, by other means.
            discovery = served(client, &gvk).await?;
        }
        let (resource, caps) = discovery.resolve_gvk(&gvk).context("kind not served")?;
        let api: Api<DynamicObject> = match (caps.scope, obj.metadata.namespace.as_deref()) {
            (Scope::Namespaced, ns) => {
                Api::namespaced_with(client.clone(), ns.unwrap_or("default"), &resource)
            }
            (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        let name = obj.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &obj)
            .await
            .with_context(|| format!("cannot create {} {name}", types.kind))?;
        // The API server accepts a definition before it serves its kind; the
        // caller may read discovery next, as `kubectl wait` would let it.
        if let Some(defined) = defined_kind(&types.kind, &obj) {
            discovery = served(client, &defined).await?;
        }
    }
    Ok(())
}

/// The kind a CustomResourceDefinition defines, at its first served version.
fn defined_kind(kind: &str, obj: &DynamicObject) -> Option<kube::core::GroupVersionKind> {
    if kind != "CustomResourceDefinition" {
        return None;
    }
    let spec = &obj.data["spec"];
    let version = spec["versions"]
        .as_array()?
        .iter()
        .find(|v| v["served"].as_bool() == Some(true))?["name"]
        .as_str()?;
    Some(kube::core::GroupVersionKind::gvk(
        spec["group"].as_str()?,
        version,
        spec["names"]["kind"].as_str()?,
    ))
}

/// Discovery once `gvk` is served.
async fn served(client: &Client, gvk: &kube::core::GroupVersionKind) -> anyhow::Result<Discovery> {
    wait::until(&format!("{} to be served", gvk.kind), STARTUP, || {
        let client = client.clone();
        let gvk = gvk.clone();
        async move {
            let d = Discovery::new(client)
                .run()
                .await
                .map_err(|e| e.to_string())?;
            Ok(d.resolve_gvk(&gvk).is_some().then_some(d))
        }
    })
    .await
}

/// The repository's `manifests/` folder.
pub fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

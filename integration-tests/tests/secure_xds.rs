//! xDS over TLS on the secure port: a real sidecar fetching its config with
//! mutual TLS, and the port's checks of who the client is: a certificate
//! from an unknown CA or none at all (when required) is refused, and a
//! workload identity only gets config for its own namespace.

use std::path::Path;

use integration_tests::ads_client::pilot_discovery_types::type_url;
use integration_tests::ads_client::{node, Next, SotwStream};
use integration_tests::binaries::envoy;
use integration_tests::client::Call;
use integration_tests::discovery::Discovery;
use integration_tests::echo::EchoServer;
use integration_tests::mesh::Xds;
use integration_tests::pki::{secret_lines, CertFiles, TestPki, SERVER_NAME};
use integration_tests::ports::free_port;
use integration_tests::process::Proc;
use integration_tests::sidecar::{agent_command, SidecarPorts};
use integration_tests::traffic::{host, service};
use integration_tests::wait;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const CONVERGE: std::time::Duration = std::time::Duration::from_secs(30);

/// Discovery on a folder holding service `web`, serving xDS over TLS on
/// `secure` with `server`'s certificate and `pki`'s root for clients.
async fn secure_discovery(
    work: &Path,
    pki: &TestPki,
    server: &CertFiles,
    secure: u16,
    web: &EchoServer,
    web_port: u16,
    extra: &[&str],
) -> Discovery {
    let folder = work.join("config");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(
        folder.join("web.yaml"),
        service("web", web_port, &[(web, &[])]),
    )
    .expect("config");
    let addr = format!("127.0.0.1:{secure}");
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let (cert, key, ca) = (path(&server.cert), path(&server.key), path(&pki.ca_file));
    let mut args = vec![
        "--secure-grpc-addr",
        &addr,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--ca-cert-file",
        &ca,
    ];
    args.extend_from_slice(extra);
    Discovery::start(&folder, &work.join("discovery.log"), &args)
        .await
        .expect("discovery")
}

/// Discovery's server certificate, for the name proxies check and 127.0.0.1.
fn discovery_cert(pki: &TestPki) -> CertFiles {
    pki.server("discovery", &[SERVER_NAME, "127.0.0.1"])
        .expect("server cert")
}

/// A TLS channel to `port` trusting `pki`'s root, presenting `client`.
async fn tls_channel(
    pki: &TestPki,
    port: u16,
    client: Option<&CertFiles>,
) -> anyhow::Result<Channel> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&pki.ca_file)?))
        .domain_name(SERVER_NAME);
    if let Some(c) = client {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(&c.cert)?,
            std::fs::read(&c.key)?,
        ));
    }
    Ok(Endpoint::from_shared(format!("https://127.0.0.1:{port}"))?
        .tls_config(tls)?
        .connect()
        .await?)
}

/// Asks for clusters as sidecar `id` over a TLS channel presenting
/// `client`: the first response, or the status the server ended with.
async fn ask_as(
    pki: &TestPki,
    port: u16,
    client: Option<&CertFiles>,
    id: &str,
) -> Result<usize, tonic::Status> {
    let channel = tls_channel(pki, port, client)
        .await
        .map_err(|e| tonic::Status::unavailable(format!("{e:#}")))?;
    let mut s = SotwStream::over(channel).await?;
    s.subscribe_as(node(id), type_url::CLUSTER, &[])
        .await
        .map_err(|e| tonic::Status::unknown(format!("{e:#}")))?;
    match s.next().await {
        Ok(Next::Message(r)) => Ok(r.resources.len()),
        Ok(Next::Closed(status)) => Err(status),
        Err(e) => Err(tonic::Status::unknown(format!("{e:#}"))),
    }
}

/// Every file under `dir`, as text.
fn texts_under(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(texts_under(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((
                p.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    out
}

/// A sidecar whose agent points Envoy at the secure port, with the mesh
/// root and a client certificate for its identity, gets its config and
/// routes real requests. No key material shows up in either process's log
/// (discovery logging at debug) or in the files the agent writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_gets_its_config_over_mutual_tls_and_no_secret_is_logged() {
    let work = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::create(work.path()).expect("pki");
    let server = discovery_cert(&pki);
    let client = pki
        .client("sleep", Some("spiffe://cluster.local/ns/default/sa/sleep"))
        .expect("client cert");
    let web = EchoServer::plain("web").await.expect("echo");
    let (secure, web_port) = (free_port().expect("port"), free_port().expect("port"));
    let discovery = secure_discovery(
        work.path(),
        &pki,
        &server,
        secure,
        &web,
        web_port,
        &["--require-client-cert", "--log-level", "debug"],
    )
    .await;

    let proxy_dir = work.path().join("proxy");
    let mut cmd = agent_command(
        secure,
        Xds::Delta,
        &envoy().expect("envoy"),
        &proxy_dir,
        SidecarPorts::free().expect("ports"),
        "sleep",
        "default",
    )
    .expect("command");
    cmd.arg("--xds-root-cert")
        .arg(&pki.ca_file)
        .args(["--xds-server-name", SERVER_NAME])
        .arg("--xds-client-cert")
        .arg(&client.cert)
        .arg("--xds-client-key")
        .arg(&client.key);
    let agent_log = work.path().join("agent.log");
    let mut agent = Proc::spawn("pilot-agent", cmd, &agent_log).expect("agent");

    let call = Call::get(&host("web"), "/");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], web_port));
    wait::until("web to route over the TLS-fed sidecar", CONVERGE, || {
        let running = agent.check_running();
        let call = call.clone();
        async move {
            running?;
            let r = call.send(addr).await.map_err(|e| format!("{e:#}"))?;
            Ok((r.who() == "web").then_some(()))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", agent.log(), discovery.proc.log()));
    let syncz = discovery.json("/debug/syncz").await.expect("syncz");
    assert!(
        syncz.to_string().contains("sleep.default"),
        "the proxy is connected: {syncz}"
    );

    let secrets = secret_lines(&[&server.key, &client.key]).expect("keys");
    assert!(!secrets.is_empty());
    let mut places = texts_under(&proxy_dir);
    places.push(("discovery log".into(), discovery.proc.log()));
    places.push(("agent log".into(), agent.log()));
    for (place, text) in &places {
        assert!(!text.contains("PRIVATE KEY"), "{place} holds a key");
        for line in &secrets {
            assert!(!text.contains(line.as_str()), "{place} holds key material");
        }
    }
    assert!(
        places
            .iter()
            .any(|(p, t)| p.ends_with(".json") && t.contains(&client.key.display().to_string())),
        "the bootstrap names the key file: {:?}",
        places.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
}

/// The secure port's checks: a workload identity gets config only as a
/// proxy of its own namespace (PermissionDenied otherwise, and logged);
/// a certificate from another CA is refused; with `--require-client-cert`
/// so is a client with none, which is served when certificates are optional.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secure_port_checks_who_the_proxy_is() {
    let work = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::create(work.path()).expect("pki");
    let server = discovery_cert(&pki);
    let shop = pki
        .client("shop-web", Some("spiffe://cluster.local/ns/shop/sa/web"))
        .expect("client cert");
    let anonymous = pki.client("anonymous", None).expect("client cert");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let stranger = TestPki::create(elsewhere.path())
        .expect("another CA")
        .client("stranger", Some("spiffe://cluster.local/ns/shop/sa/web"))
        .expect("client cert");
    let web = EchoServer::plain("web").await.expect("echo");
    let secure = free_port().expect("port");
    let web_port = free_port().expect("port");
    let discovery = secure_discovery(
        work.path(),
        &pki,
        &server,
        secure,
        &web,
        web_port,
        &["--require-client-cert"],
    )
    .await;

    let as_shop = "sidecar~127.0.0.1~web-1.shop~shop.svc.cluster.local";
    let as_bank = "sidecar~127.0.0.1~web-1.bank~bank.svc.cluster.local";
    let clusters = ask_as(&pki, secure, Some(&shop), as_shop)
        .await
        .expect("shop's identity is served as shop");
    assert!(clusters > 0);
    let refused = ask_as(&pki, secure, Some(&shop), as_bank)
        .await
        .expect_err("shop's identity asking as bank");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
    assert!(refused.message().contains("ns/shop"), "{refused}");
    let log = discovery.proc.log();
    assert!(
        log.contains("refusing a proxy whose certificate names another namespace"),
        "{log}"
    );
    assert!(
        ask_as(&pki, secure, Some(&anonymous), as_bank)
            .await
            .is_ok(),
        "a certificate without a workload identity binds no namespace"
    );
    assert!(
        ask_as(&pki, secure, Some(&stranger), as_shop)
            .await
            .is_err(),
        "a certificate from another CA is refused"
    );
    assert!(
        ask_as(&pki, secure, None, as_shop).await.is_err(),
        "no certificate, and one is required"
    );
    drop(discovery);

    let optional = tempfile::tempdir().expect("tempdir");
    let secure = free_port().expect("port");
    let _discovery =
        secure_discovery(optional.path(), &pki, &server, secure, &web, web_port, &[]).await;
    assert!(
        ask_as(&pki, secure, None, as_shop).await.is_ok(),
        "without --require-client-cert a client with no certificate is served"
    );
    assert!(
        ask_as(&pki, secure, Some(&stranger), as_shop)
            .await
            .is_err(),
        "a certificate presented is still verified"
    );
}

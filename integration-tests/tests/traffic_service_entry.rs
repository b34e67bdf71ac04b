//! ServiceEntry and WorkloadEntry proven by real requests through a real
//! Envoy: STATIC entries with inline endpoints or selected WorkloadEntries,
//! DNS entries Envoy resolves itself, NONE entries that pass traffic to
//! where the client sent it, and one entry serving several ports and
//! protocols.

use std::net::SocketAddr;
use std::time::Duration;

use integration_tests::client::Call;
use integration_tests::echo::{tcp_name, EchoServer, TcpNameServer};
use integration_tests::ports::free_port;
use integration_tests::traffic::{resource, TrafficMesh, NAMESPACE};
use integration_tests::wait;

fn service_entry(name: &str, spec: &str) -> String {
    resource("ServiceEntry", name, spec)
}

fn workload_entry(name: &str, spec: &str) -> String {
    resource("WorkloadEntry", name, spec)
}

/// Envoy resolves a DNS entry's endpoint names itself (a STRICT_DNS
/// cluster). An entry without endpoints resolves its own host instead; no
/// such name resolves on every test machine, so a unit test covers that
/// (`snapshot::tests::build::dns_entries_resolve_their_endpoints_or_their_host`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_entries_are_resolved_by_envoy() {
    let api = EchoServer::plain("api").await.expect("echo server");
    let port = free_port().expect("port");
    let entry = service_entry(
        "internal",
        &format!(
            "  hosts: [api.internal.test]
  location: MESH_INTERNAL
  resolution: DNS
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  endpoints: [{{address: localhost, ports: {{http: {api_port}}}}}]
",
            api_port = api.port()
        ),
    );
    let mut mesh = TrafficMesh::start(&[("internal.yaml", entry)])
        .await
        .expect("mesh starts");
    let call = Call::get("api.internal.test", "/dns");
    mesh.wait_for("the DNS entry", port, &call, |r| r.who() == "api")
        .await
        .expect("localhost resolved to the echo server");
    let seen = mesh
        .call(port, &call)
        .await
        .expect("answer")
        .echo()
        .expect("echo");
    assert_eq!(seen.path, "/dns");

    let dump = mesh.config_dump().await.expect("config dump");
    let clusters = integration_tests::mesh::dump_section(
        &dump,
        "ClustersConfigDump",
        "dynamic_active_clusters",
    );
    let name = format!("outbound|{port}||api.internal.test");
    let cluster = clusters
        .iter()
        .find(|c| c["cluster"]["name"] == name.as_str())
        .expect("the entry's cluster");
    assert_eq!(cluster["cluster"]["type"], "STRICT_DNS");
    assert_eq!(cluster["cluster"]["dns_lookup_family"], "V4_ONLY");
    mesh.ensure_nothing_rejected().await.expect("no NACKs");
}

/// A NONE entry forwards to the address the client asked for (named in the
/// header, since a local-mode sidecar captures no original destination).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_entries_pass_traffic_to_the_original_destination() {
    let a = EchoServer::plain("a").await.expect("echo server");
    let b = EchoServer::plain("b").await.expect("echo server");
    let port = free_port().expect("port");
    let entry = service_entry(
        "legacy",
        &format!(
            "  hosts: [legacy.example.test]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
"
        ),
    );
    let mut mesh = TrafficMesh::start(&[("legacy.yaml", entry)])
        .await
        .expect("mesh starts");
    for server in [&a, &b] {
        let call = Call::get("legacy.example.test", "/")
            .header("x-envoy-original-dst-host", &server.addr.to_string());
        let name = server.name.clone();
        mesh.wait_for("passthrough", port, &call, |r| r.who() == name)
            .await
            .expect("the request goes where the client sent it");
    }
    let stats = mesh
        .admin()
        .stats("upstream_rq_total")
        .await
        .expect("stats");
    let cluster = format!("cluster.outbound|{port}||legacy.example.test.upstream_rq_total");
    assert!(
        stats.get(&cluster).is_some_and(|n| *n >= 6),
        "through the entry's own cluster: {stats:?}"
    );
    let r = mesh
        .call(port, &Call::get("legacy.example.test", "/"))
        .await
        .expect("answer");
    assert_eq!(r.status, 502, "no destination named: refused, not looped");
    mesh.ensure_nothing_rejected().await.expect("no NACKs");
}

/// One STATIC entry with HTTP, HTTP/2 and TCP ports whose endpoints are
/// WorkloadEntries picked by its selector, each listening on its own port
/// per service port; a WorkloadEntry added later joins, one that does not
/// match the selector does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_entry_serves_several_ports_and_protocols_from_workload_entries() {
    let web = EchoServer::plain("web").await.expect("echo server");
    let grpc = EchoServer::plain("grpc").await.expect("echo server");
    let db = TcpNameServer::start("db").await.expect("tcp server");
    let web2 = EchoServer::plain("web2").await.expect("echo server");
    let stranger = EchoServer::plain("stranger").await.expect("echo server");
    let ports = [
        free_port().expect("port"),
        free_port().expect("port"),
        free_port().expect("port"),
    ];
    let entry = service_entry(
        "multi",
        &format!(
            "  hosts: [multi.{NAMESPACE}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: {}, name: http-web, protocol: HTTP}}
  - {{number: {}, name: grpc-api, protocol: GRPC}}
  - {{number: {}, name: tcp-db, protocol: TCP}}
  workloadSelector: {{labels: {{app: multi}}}}
",
            ports[0], ports[1], ports[2]
        ),
    );
    let first = workload_entry(
        "multi-0",
        &format!(
            "  address: 127.0.0.1
  labels: {{app: multi}}
  ports: {{http-web: {}, grpc-api: {}, tcp-db: {}}}
",
            web.port(),
            grpc.port(),
            db.port()
        ),
    );
    let mut mesh = TrafficMesh::start(&[("multi.yaml", entry), ("we-0.yaml", first)])
        .await
        .expect("mesh starts");
    let host = format!("multi.{NAMESPACE}.svc.cluster.local");
    let call = Call::get(&host, "/");
    mesh.wait_for("HTTP port", ports[0], &call, |r| r.who() == "web")
        .await
        .expect("HTTP reaches its workload port");
    let seen = mesh
        .call(ports[0], &call)
        .await
        .expect("answer")
        .echo()
        .expect("echo");
    assert_eq!(seen.version, "HTTP/1.1");
    mesh.wait_for("gRPC port", ports[1], &call, |r| r.who() == "grpc")
        .await
        .expect("HTTP/2 port reaches its workload port");
    let seen = mesh
        .call(ports[1], &call)
        .await
        .expect("answer")
        .echo()
        .expect("echo");
    assert_eq!(
        seen.version, "HTTP/2.0",
        "a GRPC port speaks HTTP/2 upstream"
    );
    let tcp = SocketAddr::from(([127, 0, 0, 1], ports[2]));
    wait::until("TCP port", Duration::from_secs(30), || async {
        match tcp_name(tcp).await {
            Ok(n) if n == "db" => Ok(Some(())),
            Ok(n) => Err(format!("got {n:?}")),
            Err(e) => Err(format!("{e:#}")),
        }
    })
    .await
    .expect("TCP reaches its workload port");

    mesh.write(
        "we-1.yaml",
        &workload_entry(
            "multi-1",
            &format!(
                "  address: 127.0.0.1\n  labels: {{app: multi}}\n  ports: {{http-web: {}}}\n",
                web2.port()
            ),
        ),
    )
    .expect("write");
    mesh.write(
        "we-2.yaml",
        &workload_entry(
            "other",
            &format!(
                "  address: 127.0.0.1\n  labels: {{app: other}}\n  ports: {{http-web: {}}}\n",
                stranger.port()
            ),
        ),
    )
    .expect("write");
    mesh.wait_for("the new workload", ports[0], &call, |r| r.who() == "web2")
        .await
        .expect("a matching WorkloadEntry joins");
    let replies = mesh.calls(ports[0], &call, 40).await.expect("answers");
    assert!(
        replies
            .iter()
            .all(|r| r.who() == "web" || r.who() == "web2"),
        "{:?}",
        integration_tests::traffic::count(&replies)
    );
    assert_eq!(
        stranger.hits(),
        0,
        "a WorkloadEntry the selector does not pick"
    );
    mesh.ensure_nothing_rejected().await.expect("no NACKs");
}

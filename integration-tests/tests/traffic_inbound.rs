//! Inbound traffic for a local-mode sidecar, proven through two real
//! Envoys: a client sidecar sends to the server workload's instance IP, the
//! server's sidecar receives there and hands the request to its application
//! on 127.0.0.1.

use std::net::SocketAddr;
use std::time::Duration;

use integration_tests::client::Call;
use integration_tests::echo::{tcp_name, EchoServer, TcpNameServer};
use integration_tests::ports::free_port;
use integration_tests::traffic::{
    config_dump_at, ensure_envoy_took_all, host, listener_names, sidecar, TrafficMesh, NAMESPACE,
};
use integration_tests::wait;
use pilot_agent::admin::Admin;

/// The server workload's instance IP: loopback, but not the 127.0.0.1 its
/// application listens on.
const SERVER_IP: &str = "127.0.0.2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_mode_sidecar_receives_for_its_app_on_its_instance_ip() {
    let app = EchoServer::plain("app").await.expect("echo server");
    let db = TcpNameServer::start("db").await.expect("tcp server");
    let (http_port, tcp_port) = (free_port().expect("port"), free_port().expect("port"));
    let entry = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: server, namespace: {NAMESPACE}}}
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: {http_port}, name: http, protocol: HTTP, targetPort: {app_port}}}
  - {{number: {tcp_port}, name: db, protocol: TCP, targetPort: {db_port}}}
  endpoints: [{{address: {SERVER_IP}}}]
",
        host = host("server"),
        app_port = app.port(),
        db_port = db.port(),
    );
    // The server's sidecar imports nothing, so its outbound listeners do
    // not take the client's ports on 127.0.0.1.
    let server_scope = sidecar(
        "server",
        "  workloadSelector: {labels: {app: server}}\n  egress: [{hosts: [\"~/*\"]}]\n",
    );
    let mut mesh = TrafficMesh::start(&[("server.yaml", entry), ("scope.yaml", server_scope)])
        .await
        .expect("mesh starts");
    let call = Call::get(&host("server"), "/");

    // Nothing listens on the instance IP yet: the application binds
    // 127.0.0.1 only.
    mesh.wait_for("routes to the server", http_port, &call, |r| {
        r.status == 503
    })
    .await
    .expect("no inbound listener yet");
    assert_eq!(app.hits(), 0);

    let (mut server, server_ports) = mesh
        .start_sidecar("server-0", SERVER_IP, r#"{"app":"server"}"#)
        .expect("server sidecar starts");
    mesh.wait_for("the server's inbound listener", http_port, &call, |r| {
        r.who() == "app"
    })
    .await
    .expect("requests reach the app through the server's sidecar");
    let client = SocketAddr::from(([127, 0, 0, 1], tcp_port));
    let name = wait::until(
        "TCP through the inbound listener",
        Duration::from_secs(30),
        || async {
            match tcp_name(client).await {
                Ok(n) if n == "db" => Ok(Some(n)),
                Ok(n) => Err(format!("got {n:?}")),
                Err(e) => Err(format!("{e:#}")),
            }
        },
    )
    .await
    .expect("TCP reaches the app through the server's sidecar");
    assert_eq!(name, "db");
    server.check_running().expect("server sidecar runs");

    let admin = Admin::new(server_ports.admin, Duration::from_secs(5));
    let inbound = format!("cluster.inbound|{}||.upstream_rq_total", app.port());
    let stats = admin.stats("upstream_rq_total").await.expect("stats");
    assert!(
        stats.get(&inbound).is_some_and(|n| *n >= 3),
        "the requests went through {inbound}: {stats:?}"
    );
    let dump = config_dump_at(server_ports.admin)
        .await
        .expect("config dump");
    let listeners = listener_names(&dump);
    let mut expected = vec![
        format!("{SERVER_IP}_{}", app.port()),
        format!("{SERVER_IP}_{}", db.port()),
    ];
    expected.sort_unstable();
    assert_eq!(
        listeners, expected,
        "inbound only: the Sidecar imports nothing"
    );
    ensure_envoy_took_all(server_ports.admin)
        .await
        .expect("the server's Envoy took all");
    mesh.ensure_nothing_rejected().await.expect("no NACKs");
}

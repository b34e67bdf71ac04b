//! The Sidecar resource proven by real requests through a real Envoy: its
//! egress hosts hide what a proxy does not import, and its outbound traffic
//! policy passes (ALLOW_ANY) or blocks (REGISTRY_ONLY) hosts the mesh does
//! not know.

use integration_tests::client::Call;
use integration_tests::echo::EchoServer;
use integration_tests::ports::free_port;
use integration_tests::traffic::{host, service, sidecar, TrafficMesh};

/// A Sidecar importing only service `a` hides service `b`: its listener
/// and its cluster leave the proxy, and come back when the Sidecar goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_scope_hides_what_it_does_not_import() {
    let a = EchoServer::plain("a").await.expect("echo server");
    let b = EchoServer::plain("b").await.expect("echo server");
    let (port_a, port_b) = (free_port().expect("port"), free_port().expect("port"));
    let mut mesh = TrafficMesh::start(&[
        ("a.yaml", service("a", port_a, &[(&a, &[])])),
        ("b.yaml", service("b", port_b, &[(&b, &[])])),
    ])
    .await
    .expect("mesh starts");
    let call_a = Call::get(&host("a"), "/");
    let call_b = Call::get(&host("b"), "/");
    mesh.wait_for("a routes", port_a, &call_a, |r| r.who() == "a")
        .await
        .expect("a reachable");
    mesh.wait_for("b routes", port_b, &call_b, |r| r.who() == "b")
        .await
        .expect("b reachable before any Sidecar");

    let only_a = format!("  egress: [{{hosts: [\"./{}\"]}}]\n", host("a"));
    mesh.write("sidecar.yaml", &sidecar("default", &only_a))
        .expect("write");
    mesh.wait_refused("b's listener to go", port_b)
        .await
        .expect("b hidden");
    let clusters = mesh.cluster_names().await.expect("config dump");
    assert!(
        clusters.contains(&format!("outbound|{port_a}||{}", host("a"))),
        "{clusters:?}"
    );
    assert!(
        !clusters.iter().any(|c| c.ends_with(&host("b"))),
        "b's cluster is not imported: {clusters:?}"
    );
    let hits = a.hits();
    let r = mesh.call(port_a, &call_a).await.expect("a answers");
    assert_eq!(r.who(), "a", "the imported service still routes");
    assert_eq!(a.hits(), hits + 1);

    mesh.write("sidecar.yaml", "").expect("write");
    mesh.wait_for("b back", port_b, &call_b, |r| r.who() == "b")
        .await
        .expect("b reachable once the Sidecar is gone");
    mesh.ensure_nothing_rejected().await.expect("no NACKs");
}

/// ALLOW_ANY forwards a request for a host the mesh does not know to the
/// destination the client names; REGISTRY_ONLY answers 502 and the request
/// goes nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_traffic_policy_passes_or_blocks_unknown_hosts() {
    let known = EchoServer::plain("known").await.expect("echo server");
    let outside = EchoServer::plain("outside").await.expect("echo server");
    let port = free_port().expect("port");
    let mut mesh = TrafficMesh::start(&[("known.yaml", service("known", port, &[(&known, &[])]))])
        .await
        .expect("mesh starts");
    let destination = format!("127.0.0.1:{}", outside.port());
    let unknown =
        Call::get("api.unknown.example", "/").header("x-envoy-original-dst-host", &destination);
    mesh.wait_for("ALLOW_ANY (the default) to pass", port, &unknown, |r| {
        r.who() == "outside"
    })
    .await
    .expect("an unknown host passes through by default");

    // A local-mode sidecar cannot see where the client meant to go, so a
    // request without the header is refused rather than looped back.
    let bare = Call::get("api.unknown.example", "/");
    let r = mesh.call(port, &bare).await.expect("answer");
    assert_eq!(r.status, 502);
    assert!(r.body.contains("x-envoy-original-dst-host"), "{}", r.body);

    mesh.write(
        "sidecar.yaml",
        &sidecar(
            "default",
            "  egress: [{hosts: [\"./*\"]}]\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
        ),
    )
    .expect("write");
    mesh.wait_for("REGISTRY_ONLY to block", port, &unknown, |r| {
        r.status == 502
    })
    .await
    .expect("an unknown host is blocked");
    let before = outside.hits();
    let replies = mesh.calls(port, &unknown, 10).await.expect("answers");
    assert!(replies.iter().all(|r| r.status == 502), "{replies:?}");
    assert_eq!(outside.hits(), before, "a blocked request reaches nothing");
    let r = mesh
        .call(port, &Call::get(&host("known"), "/"))
        .await
        .expect("answer");
    assert_eq!(r.who(), "known", "services in the registry still route");
    mesh.ensure_nothing_rejected().await.expect("no NACKs");
}

//! The server around the protocol: readiness, slow and stuck clients, debug
//! pages, metrics, connection age and graceful shutdown. Real pilot-discovery
//! processes on loopback, driven by a raw ADS client.

use std::sync::Arc;
use std::time::Duration;

use integration_tests::ads_client::pilot_discovery_types::{type_url, DiscoveryRequest, RpcStatus};
use integration_tests::ads_client::{sidecar_id, sotw_names, Next, SotwStream};
use integration_tests::discovery::{configz_keys, get_on, json_on, metric_value};
use integration_tests::fixture::{service_entry, ConfigFixture};
use integration_tests::ports::free_port;
use integration_tests::procstat;

const DEADLINE: Duration = Duration::from_secs(30);

async fn fixture(extra_files: &[(&str, String)], flags: &[&str]) -> ConfigFixture {
    ConfigFixture::start(extra_files, flags)
        .await
        .expect("pilot-discovery starts")
}

/// Enough services that one CDS response is far larger than an HTTP/2
/// stream window (64 KiB): a client that stops reading blocks the sender.
fn many_services(n: u16) -> String {
    (0..n)
        .map(|i| service_entry(&format!("bulk-{i}"), 10_000 + i))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Subscribes to clusters as `pod` and returns the stream and first response.
async fn cds_client(
    addr: std::net::SocketAddr,
    pod: &str,
) -> (
    SotwStream,
    integration_tests::ads_client::pilot_discovery_types::DiscoveryResponse,
) {
    cds_client_with_window(addr, pod, None).await
}

async fn cds_client_with_window(
    addr: std::net::SocketAddr,
    pod: &str,
    window: Option<u32>,
) -> (
    SotwStream,
    integration_tests::ads_client::pilot_discovery_types::DiscoveryResponse,
) {
    let (s, r) = SotwStream::start_with_window(addr, window, pod, type_url::CLUSTER, &[])
        .await
        .expect("cds");
    s.ack(&r, &[]).await.expect("ack");
    (s, r)
}

/// Makes one full push and waits for the good client to receive and ACK it.
async fn push_and_receive(f: &ConfigFixture, good: &mut SotwStream, i: u16) -> String {
    f.write(
        "churn.yaml",
        &service_entry(&format!("churn-{i}"), 20_000 + i),
    )
    .expect("write config");
    let want = format!("outbound|{}||churn-{i}.example.com", 20_000 + i);
    loop {
        let r = good
            .recv_type(type_url::CLUSTER)
            .await
            .expect("push arrives");
        good.ack(&r, &[]).await.expect("ack");
        if sotw_names(&r).contains(&want) {
            return r.version_info;
        }
    }
}

fn version_sent(syncz: &serde_json::Value, pod: &str) -> u64 {
    syncz
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["proxy"] == sidecar_id(pod).as_str()))
        .and_then(|r| r["types"]["cds"]["versionSent"].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// HTTP/2 window of the client that stops reading: the default 64 KiB.
const STUCK_WINDOW: u32 = 65_535;

/// A client that stops reading never delays the others; once a response has
/// waited past the send timeout, its stream is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_client_delays_no_one_and_is_dropped() {
    let bulk = [("bulk.yaml", many_services(1500))];

    // Phase 1: a send timeout far longer than the test. The stuck client
    // blocks only its own stream: every push reaches the good client, while
    // the stuck one stays behind, still connected.
    let f = fixture(
        &bulk,
        &["--debounce-after", "10ms", "--xds-send-timeout", "10m"],
    )
    .await;
    let addr = f.discovery.grpc_addr();
    let (_stuck, first) = cds_client_with_window(addr, "stuck", Some(STUCK_WINDOW)).await;
    assert!(prost::Message::encoded_len(&first) > 2 * STUCK_WINDOW as usize); // never read again
    let (mut good, _) = cds_client(addr, "good").await;
    let mut last = String::new();
    for i in 0..10 {
        last = push_and_receive(&f, &mut good, i).await;
    }
    let syncz = f.discovery.json("/debug/syncz").await.expect("syncz");
    let good_version = version_sent(&syncz, "good");
    let stuck_version = version_sent(&syncz, "stuck");
    assert_eq!(good_version.to_string(), last);
    assert!(
        stuck_version < good_version,
        "the stuck client should lag (stuck {stuck_version}, good {good_version})"
    );
    let adsz = f.discovery.json("/debug/adsz").await.expect("adsz");
    assert_eq!(adsz["totalClients"], 2);
    drop(f);

    // Phase 2: a 1 s send timeout. The stuck stream is given up, counted as
    // a send error, and the good client keeps receiving pushes.
    let f = fixture(
        &bulk,
        &["--debounce-after", "10ms", "--xds-send-timeout", "1s"],
    )
    .await;
    let addr = f.discovery.grpc_addr();
    let (_stuck, first) = cds_client_with_window(addr, "stuck", Some(STUCK_WINDOW)).await;
    assert!(prost::Message::encoded_len(&first) > 2 * STUCK_WINDOW as usize);
    let (mut good, _) = cds_client(addr, "good").await;
    // Each round is one push the good client must receive; rounds go on
    // until the stuck stream is gone or the deadline passes.
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut round = 0;
    loop {
        round += 1;
        push_and_receive(&f, &mut good, round).await;
        let adsz = f.discovery.json("/debug/adsz").await.expect("adsz");
        if adsz["totalClients"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stuck client is still served after {DEADLINE:?}: {adsz}"
        );
    }
    let senderr = f
        .discovery
        .metric("pilot_xds_pushes{type=\"cds_senderr\"}")
        .await
        .expect("metrics");
    assert!(senderr >= 1.0, "send error counted");
    push_and_receive(&f, &mut good, 999).await;
    let log = f.discovery.log();
    assert!(log.contains("proxy stopped reading its stream"), "{log}");
}

/// Before the sources have loaded, `/ready` answers 503 and ADS answers
/// `Unavailable`; once the first snapshot is installed, both serve. Runs the
/// server's own ADS service and HTTP router in-process on real sockets, so
/// the not-yet-loaded state can be held open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_served_before_the_first_snapshot() {
    use pilot_discovery::debug::DebugState;
    use pilot_discovery::http::router;
    use pilot_discovery::metrics::Metrics;
    use pilot_discovery::readiness::Readiness;
    use pilot_discovery::xds::server::ads::AdsService;
    use pilot_discovery::xds::server::hub::{HubConfig, XdsHub};

    let hub = Arc::new(XdsHub::new(
        HubConfig {
            push_throttle: 4,
            send_timeout: Duration::from_secs(5),
            part_bytes: pilot_discovery::xds::protocol::state::PART_BYTES,
        },
        Metrics::new().expect("metrics"),
    ));
    let readiness = Readiness::default();
    let loading = readiness.register("test sources");
    let (_writer, reader) = pilot_discovery::sources::channel();
    let sources = pilot_discovery::sources::SourceSet::default();
    sources.add(reader);
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let grpc_port = free_port().expect("port");
    let http_port = free_port().expect("port");
    let grpc = tokio::net::TcpListener::bind(("127.0.0.1", grpc_port))
        .await
        .expect("bind");
    let http = tokio::net::TcpListener::bind(("127.0.0.1", http_port))
        .await
        .expect("bind");
    let service = AdsService::new(hub.clone(), stop_rx);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(grpc)),
    );
    let app = router(
        readiness.clone(),
        DebugState {
            hub: hub.clone(),
            sources,
            problems: tokio::sync::watch::channel(Arc::new(Vec::new())).1,
        },
        pilot_discovery::debug_access::DebugAccess::loopback_only(),
    )
    .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(http, app).await });
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], grpc_port));

    let r = get_on(http_port, "/ready").await.expect("ready");
    assert_eq!(r.status, 503);
    match SotwStream::try_open(addr).await {
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status}"),
        Ok(_) => panic!("a stream was accepted before the first snapshot"),
    }

    hub.install_first(Arc::new(mesh_model::MeshSnapshot {
        version: 1,
        domain: "cluster.local".into(),
        ..Default::default()
    }));
    drop(loading);
    assert_eq!(
        get_on(http_port, "/ready").await.expect("ready").status,
        200
    );
    let (_s, cds) = cds_client(addr, "late").await;
    assert!(sotw_names(&cds).contains(&"BlackHoleCluster".to_string()));
}

/// Every debug page answers JSON on both the monitoring and the http
/// address, with what the server actually holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_pages_show_proxies_config_and_pushes() {
    let bad = ("broken.yaml", "kind: [not yaml".to_string());
    let f = fixture(&[bad], &[]).await;
    let id = sidecar_id("debugged");
    let (mut s, cds) =
        SotwStream::start(f.discovery.grpc_addr(), "debugged", type_url::CLUSTER, &[])
            .await
            .expect("cds");
    s.ack(&cds, &[]).await.expect("ack");
    let reviews = "outbound|9080||reviews.default.svc.cluster.local";
    s.request(type_url::ENDPOINT, &[reviews], "")
        .await
        .expect("send");
    let eds = s.recv_type(type_url::ENDPOINT).await.expect("eds");
    s.ack(&eds, &[reviews]).await.expect("ack");
    // The ACK is processed before this LDS request is answered.
    s.request(type_url::LISTENER, &[], "").await.expect("send");
    s.recv_type(type_url::LISTENER).await.expect("lds");

    for port in [f.discovery.monitoring, f.discovery.http] {
        let syncz = json_on(port, "/debug/syncz").await.expect("syncz");
        assert_eq!(syncz[0]["proxy"], id.as_str());
        assert_eq!(syncz[0]["types"]["cds"]["nonceSent"], cds.nonce.as_str());
        assert_eq!(syncz[0]["types"]["cds"]["nonceAcked"], cds.nonce.as_str());
        assert_eq!(syncz[0]["types"]["eds"]["nonceAcked"], eds.nonce.as_str());

        let adsz = json_on(port, "/debug/adsz").await.expect("adsz");
        assert_eq!(adsz["totalClients"], 1);
        assert_eq!(adsz["clients"][0]["flavour"], "sotw");
        assert_eq!(
            adsz["clients"][0]["watches"]["eds"]["names"],
            serde_json::json!([reviews])
        );
        assert_eq!(adsz["clients"][0]["watches"]["cds"]["wildcard"], true);

        let configz = json_on(port, "/debug/configz").await.expect("configz");
        let kinds = configz_keys(&configz);
        assert!(
            kinds.contains(&"VirtualService default/reviews".to_string()),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&"EndpointSlice default/ratings-1".to_string()),
            "{kinds:?}"
        );
        let errors = configz["errors"].to_string();
        assert!(errors.contains("broken.yaml"), "{errors}");

        let registryz = json_on(port, "/debug/registryz").await.expect("registryz");
        let hosts = registryz["services"].to_string();
        assert!(
            hosts.contains("reviews.default.svc.cluster.local"),
            "{hosts}"
        );
        assert!(
            hosts.contains("ratings.default.svc.cluster.local"),
            "{hosts}"
        );

        let endpointz = json_on(port, "/debug/endpointz").await.expect("endpointz");
        let reviews_eps = endpointz["endpoints"]["reviews.default.svc.cluster.local"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(reviews_eps, 2);

        let dump = json_on(port, &format!("/debug/config_dump?proxyID={id}"))
            .await
            .expect("config_dump");
        let clusters: Vec<&str> = dump["resources"]["cds"]
            .as_array()
            .expect("cds")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert!(clusters.contains(&reviews), "{clusters:?}");
        assert!(dump["resources"]["cds"][0]["config"]
            .as_str()
            .is_some_and(|c| c.starts_with("Cluster {")));
        assert_eq!(dump["resources"]["eds"][0]["name"], reviews);

        let status = json_on(port, "/debug/push_status")
            .await
            .expect("push_status");
        assert_eq!(status["status"]["version"], 1);
        assert_eq!(status["status"]["pushes"], 0);
    }
    let missing = get_on(f.discovery.monitoring, "/debug/config_dump?proxyID=nobody")
        .await
        .expect("answer");
    assert_eq!(missing.status, 404);
    let no_id = get_on(f.discovery.monitoring, "/debug/config_dump")
        .await
        .expect("answer");
    assert_eq!(no_id.status, 400);
}

/// `/metrics` on the monitoring address carries Istio's metric names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_use_istio_names() {
    let f = fixture(&[], &["--debounce-after", "10ms"]).await;
    let (mut s, cds) = cds_client(f.discovery.grpc_addr(), "metered").await;
    // A NACK, then a change that pushes.
    s.send(DiscoveryRequest {
        type_url: type_url::CLUSTER.into(),
        response_nonce: cds.nonce.clone(),
        error_detail: Some(RpcStatus {
            message: "rejected".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("nack");
    f.write("extra.yaml", &service_entry("extra", 8001))
        .expect("write config");
    let pushed = s.recv_type(type_url::CLUSTER).await.expect("push");
    s.ack(&pushed, &[]).await.expect("ack");

    let text = f.discovery.get("/metrics").await.expect("metrics").body;
    for (series, at_least) in [
        ("pilot_xds", 1.0),
        ("pilot_xds_pushes{type=\"cds\"}", 2.0),
        ("pilot_xds_push_time_count{type=\"cds\"}", 2.0),
        ("pilot_proxy_convergence_time_count", 1.0),
        ("pilot_total_xds_rejects{type=\"cds\"}", 1.0),
        ("pilot_debounce_time_count", 1.0),
        ("pilot_inbound_updates{type=\"svc\"}", 1.0),
        ("pilot_services", 3.0),
        ("pilot_xds_config_size_bytes_count{type=\"cds\"}", 2.0),
    ] {
        let v = metric_value(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
        assert!(
            v >= at_least,
            "{series} = {v}, expected at least {at_least}"
        );
    }
}

/// The server runs with transparent huge pages off, whatever the host's
/// setting, so what a connect storm frees goes back in 4 KiB pages
/// (`pilot_discovery::memory`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_without_transparent_huge_pages() {
    let f = fixture(&[], &[]).await;
    let status = procstat::status(f.discovery.pid()).expect("the server's /proc status");
    let thp = procstat::status_field(&status, "THP_enabled:")
        .expect("the kernel reports THP_enabled (Linux 5.0 or later)");
    assert_eq!(thp, "0");
}

/// Connections older than the maximum age are closed, and the proxy can
/// reconnect (to this or another replica).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_connections_are_closed_so_proxies_rebalance() {
    let f = fixture(
        &[],
        &[
            "--keepalive-max-server-connection-age",
            "1s",
            "--keepalive-max-server-connection-age-grace",
            "1s",
        ],
    )
    .await;
    let (mut s, _) = cds_client(f.discovery.grpc_addr(), "aged").await;
    match s
        .next()
        .await
        .expect("the stream ends before the wait does")
    {
        Next::Closed(_) => {}
        Next::Message(m) => panic!("unexpected {} response", m.type_url),
    }
    let (_s, cds) = cds_client(f.discovery.grpc_addr(), "aged").await;
    assert!(!cds.resources.is_empty());
}

/// SIGTERM closes streams with `Unavailable` and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_streams_and_exits_cleanly() {
    let mut f = fixture(&[], &[]).await;
    let (mut s, _) = cds_client(f.discovery.grpc_addr(), "leaving").await;
    let status = f
        .discovery
        .terminate()
        .expect("exits within the grace period");
    assert!(status.success(), "exit status {status}");
    match s.next().await.expect("the stream ends") {
        Next::Closed(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status}"),
        Next::Message(m) => panic!("unexpected {} response", m.type_url),
    }
    let log = f.discovery.log();
    assert!(log.contains("pilot-discovery stopped"), "{log}");
}

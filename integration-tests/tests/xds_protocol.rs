//! The xDS protocol rules, checked against the real pilot-discovery binary
//! with a raw ADS client: one test per rule, in both flavours where the rule
//! applies to both.
//!
//! "No response" is never checked by waiting: after the request that must go
//! unanswered, the test sends one that must be answered, and the next message
//! on the stream has to be that answer (the server handles a stream's
//! requests in order).

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::ads_client::pilot_discovery_types::{type_url, RpcStatus};
use integration_tests::ads_client::{
    delta_names, node, sidecar_id, sotw_names, DeltaStream, Next, SotwStream,
};
use integration_tests::fixture::{service_entry, ConfigFixture};
use integration_tests::wait;

const DEADLINE: Duration = Duration::from_secs(20);
const REVIEWS_V1: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
const REVIEWS_V2: &str = "outbound|9080|v2|reviews.default.svc.cluster.local";
const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";
const RATINGS: &str = "outbound|9080||ratings.default.svc.cluster.local";

/// One more endpoint for reviews v1: changes the endpoints of `REVIEWS_V1`.
const REVIEWS_V1_MORE: &str = "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1-b, namespace: default}
spec:
  address: 127.0.0.2
  ports: {http: 19081}
  labels: {app: reviews, version: v1}
";

/// One more endpoint for ratings: changes the endpoints of `RATINGS`.
const RATINGS_MORE: &str = "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ratings-2
  namespace: default
  labels: {kubernetes.io/service-name: ratings}
addressType: IPv4
endpoints:
- addresses: [127.0.0.2]
  conditions: {ready: true}
ports:
- {name: http, port: 19083}
";

async fn fixture(flags: &[&str]) -> ConfigFixture {
    ConfigFixture::start(&[], flags)
        .await
        .expect("pilot-discovery starts")
}

/// One more EndpointSlice for ratings: an endpoint-only change.
fn ratings_slice(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}
  namespace: default
  labels: {{kubernetes.io/service-name: ratings}}
addressType: IPv4
endpoints:
- addresses: [{ip}]
ports:
- {{name: http, port: 19083}}
"
    )
}

// ---------------------------------------------------------------- SotW

/// Every response carries a version and a nonce, and nonces never repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_every_response_has_a_version_and_a_fresh_nonce() {
    let f = fixture(&[]).await;
    let (mut s, cds) = SotwStream::start(f.discovery.grpc_addr(), "a", type_url::CLUSTER, &[])
        .await
        .expect("cds");
    s.request(type_url::LISTENER, &[], "").await.expect("send");
    let lds = s.recv_type(type_url::LISTENER).await.expect("lds");
    s.request(type_url::ENDPOINT, &[REVIEWS], "")
        .await
        .expect("send");
    let eds = s.recv_type(type_url::ENDPOINT).await.expect("eds");
    s.request(type_url::ROUTE, &["9080"], "")
        .await
        .expect("send");
    let rds = s.recv_type(type_url::ROUTE).await.expect("rds");
    let all = [&cds, &lds, &eds, &rds];
    for r in all {
        assert!(!r.version_info.is_empty(), "{} without version", r.type_url);
        assert!(!r.nonce.is_empty(), "{} without nonce", r.type_url);
    }
    let nonces: std::collections::BTreeSet<&str> = all.iter().map(|r| r.nonce.as_str()).collect();
    assert_eq!(nonces.len(), 4, "nonces repeat");
}

/// An ACK is not answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_ack_gets_no_response() {
    let f = fixture(&[]).await;
    let (mut s, cds) = SotwStream::start(f.discovery.grpc_addr(), "a", type_url::CLUSTER, &[])
        .await
        .expect("cds");
    s.ack(&cds, &[]).await.expect("ack");
    s.request(type_url::LISTENER, &[], "").await.expect("send");
    s.recv_type(type_url::LISTENER)
        .await
        .expect("the next message answers the LDS request, not the ACK");
    let syncz = f.discovery.json("/debug/syncz").await.expect("syncz");
    assert_eq!(syncz[0]["types"]["cds"]["nonceAcked"], cds.nonce.as_str());
}

/// A request answering a superseded response (stale nonce) is ignored, even
/// when it names different resources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_stale_nonce_is_ignored() {
    let f = fixture(&["--debounce-after", "10ms"]).await;
    let (mut s, first) = SotwStream::start(
        f.discovery.grpc_addr(),
        "a",
        type_url::ENDPOINT,
        &[REVIEWS_V1],
    )
    .await
    .expect("eds");
    s.ack(&first, &[REVIEWS_V1]).await.expect("ack");
    // A push of new endpoints for reviews v1 supersedes `first`.
    f.write("extra.yaml", REVIEWS_V1_MORE)
        .expect("write config");
    let pushed = s.recv_type(type_url::ENDPOINT).await.expect("pushed eds");
    assert_ne!(pushed.nonce, first.nonce);
    // Answering the old response with new names: stale, so no EDS answer.
    s.request(type_url::ENDPOINT, &[REVIEWS_V1, REVIEWS_V2], &first.nonce)
        .await
        .expect("send");
    s.request(type_url::LISTENER, &[], "").await.expect("send");
    s.recv_type(type_url::LISTENER)
        .await
        .expect("the stale request went unanswered");
}

/// A NACK is recorded with its message and counted, and the same config is
/// not sent again: the next CDS the proxy sees is a new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_nack_is_recorded_counted_and_not_resent() {
    let f = fixture(&["--debounce-after", "10ms"]).await;
    let id = sidecar_id("nacker");
    let (mut s, cds) = SotwStream::start(f.discovery.grpc_addr(), "nacker", type_url::CLUSTER, &[])
        .await
        .expect("cds");
    let mut nack = integration_tests::ads_client::pilot_discovery_types::DiscoveryRequest {
        type_url: type_url::CLUSTER.into(),
        response_nonce: cds.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: "cluster rejected by test".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    nack.version_info = String::new();
    s.send(nack).await.expect("nack");
    s.request(type_url::LISTENER, &[], "").await.expect("send");
    s.recv_type(type_url::LISTENER)
        .await
        .expect("the NACK was not answered with the same clusters");

    let syncz = f.discovery.json("/debug/syncz").await.expect("syncz");
    let row = syncz
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["proxy"] == id.as_str()))
        .expect("proxy in syncz");
    assert_eq!(row["types"]["cds"]["lastNack"], "cluster rejected by test");
    let status = f
        .discovery
        .json("/debug/push_status")
        .await
        .expect("status");
    assert_eq!(status["nacks"][0]["error"], "cluster rejected by test");
    let rejects = f
        .discovery
        .metric("pilot_total_xds_rejects{type=\"cds\"}")
        .await
        .expect("metrics");
    assert_eq!(rejects, 1.0);

    // The next CDS comes with a change, as a new version.
    f.write("extra.yaml", &service_entry("extra", 8001))
        .expect("write config");
    let next = s
        .recv_type(type_url::CLUSTER)
        .await
        .expect("cds after change");
    assert_ne!(next.version_info, cds.version_info);
    assert!(sotw_names(&next).contains(&"outbound|8001||extra.example.com".to_string()));
}

/// CDS and LDS are wildcard: names in the request do not narrow them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_clusters_and_listeners_are_wildcard() {
    let f = fixture(&[]).await;
    let mut s = SotwStream::open(f.discovery.grpc_addr())
        .await
        .expect("open");
    s.subscribe_as(
        node(&sidecar_id("a")),
        type_url::CLUSTER,
        &["no-such-cluster"],
    )
    .await
    .expect("send");
    let names = sotw_names(&s.recv_type(type_url::CLUSTER).await.expect("cds"));
    for c in [REVIEWS, REVIEWS_V1, REVIEWS_V2, RATINGS, "BlackHoleCluster"] {
        assert!(names.contains(&c.to_string()), "{c} missing from {names:?}");
    }
    s.request(type_url::LISTENER, &["no-such-listener"], "")
        .await
        .expect("send");
    let names = sotw_names(&s.recv_type(type_url::LISTENER).await.expect("lds"));
    assert_eq!(names, vec!["127.0.0.1_9080".to_string()]);
}

/// EDS and RDS send only what was asked for, answer added names, and drop
/// removed ones from later pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_endpoints_and_routes_follow_the_subscription() {
    let f = fixture(&["--debounce-after", "10ms"]).await;
    let (mut s, r) = SotwStream::start(
        f.discovery.grpc_addr(),
        "a",
        type_url::ENDPOINT,
        &[REVIEWS_V1],
    )
    .await
    .expect("eds");
    assert_eq!(sotw_names(&r), vec![REVIEWS_V1]);
    s.ack(&r, &[REVIEWS_V1, RATINGS])
        .await
        .expect("add ratings");
    let r = s
        .recv_type(type_url::ENDPOINT)
        .await
        .expect("eds with ratings");
    assert_eq!(sotw_names(&r), vec![REVIEWS_V1, RATINGS]);
    s.ack(&r, &[RATINGS]).await.expect("drop v1");
    let r = s
        .recv_type(type_url::ENDPOINT)
        .await
        .expect("eds without v1");
    assert_eq!(sotw_names(&r), vec![RATINGS]);
    s.ack(&r, &[RATINGS]).await.expect("ack");
    // A full push (a new service) that also changes every subscribed
    // cluster's endpoints carries only the remaining subscription.
    f.write(
        "extra.yaml",
        &format!(
            "{}---\n{RATINGS_MORE}---\n{REVIEWS_V1_MORE}",
            service_entry("extra", 8001)
        ),
    )
    .expect("write config");
    let r = s.recv_type(type_url::ENDPOINT).await.expect("pushed eds");
    assert_eq!(sotw_names(&r), vec![RATINGS]);

    s.request(type_url::ROUTE, &["9080"], "")
        .await
        .expect("send");
    let r = s.recv_type(type_url::ROUTE).await.expect("rds");
    assert_eq!(sotw_names(&r), vec!["9080"]);
}

/// After a CDS push the endpoints are pushed too, so clusters Envoy
/// re-creates finish warming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_endpoints_follow_a_cluster_push() {
    let f = fixture(&["--debounce-after", "10ms"]).await;
    let (mut s, cds) = SotwStream::start(f.discovery.grpc_addr(), "a", type_url::CLUSTER, &[])
        .await
        .expect("cds");
    s.ack(&cds, &[]).await.expect("ack");
    s.request(type_url::ENDPOINT, &[REVIEWS], "")
        .await
        .expect("send");
    let eds = s.recv_type(type_url::ENDPOINT).await.expect("eds");
    s.ack(&eds, &[REVIEWS]).await.expect("ack");

    f.write("extra.yaml", &service_entry("extra", 8001))
        .expect("write config");
    let cds2 = s.recv_type(type_url::CLUSTER).await.expect("cds push");
    let eds2 = s
        .recv_type(type_url::ENDPOINT)
        .await
        .expect("eds right after cds");
    assert_eq!(cds2.version_info, eds2.version_info);
    assert_eq!(sotw_names(&eds2), vec![REVIEWS]);
}

/// The first request must identify the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_request_without_node_id_is_invalid_argument() {
    let f = fixture(&[]).await;
    let mut s = SotwStream::open(f.discovery.grpc_addr())
        .await
        .expect("open");
    s.request(type_url::CLUSTER, &[], "").await.expect("send");
    match s.next().await.expect("an answer") {
        Next::Closed(status) => assert_eq!(status.code(), tonic::Code::InvalidArgument),
        Next::Message(m) => panic!("expected InvalidArgument, got a {} response", m.type_url),
    }
    let mut d = DeltaStream::open(f.discovery.grpc_addr())
        .await
        .expect("open");
    d.request(type_url::CLUSTER, &[], &[], "")
        .await
        .expect("send");
    match d.next().await.expect("an answer") {
        Next::Closed(status) => assert_eq!(status.code(), tonic::Code::InvalidArgument),
        Next::Message(m) => panic!("expected InvalidArgument, got a {} response", m.type_url),
    }
}

// ---------------------------------------------------------------- Delta

/// Delta: every resource carries a version, every response a nonce; an ACK
/// is not answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_versions_nonces_and_acks() {
    let f = fixture(&[]).await;
    let mut d = DeltaStream::open(f.discovery.grpc_addr())
        .await
        .expect("open");
    d.subscribe_as(
        node(&sidecar_id("d")),
        type_url::CLUSTER,
        &[],
        &BTreeMap::new(),
    )
    .await
    .expect("send");
    let cds = d.recv_type(type_url::CLUSTER).await.expect("cds");
    assert!(!cds.nonce.is_empty());
    assert!(!cds.system_version_info.is_empty());
    assert!(cds.resources.iter().all(|r| !r.version.is_empty()));
    assert!(delta_names(&cds).contains(&RATINGS.to_string()));
    d.ack(&cds).await.expect("ack");
    d.request(type_url::LISTENER, &[], &[], "")
        .await
        .expect("send");
    d.recv_type(type_url::LISTENER)
        .await
        .expect("the next message answers LDS, not the ACK");
    let adsz = f.discovery.json("/debug/adsz").await.expect("adsz");
    assert_eq!(adsz["clients"][0]["flavour"], "delta");
}

/// Delta: a reconnecting proxy's `initial_resource_versions` are honoured:
/// what it holds is not re-sent, what changed is, what is gone is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_honours_initial_resource_versions() {
    let f = fixture(&[]).await;
    let mut d = DeltaStream::open(f.discovery.grpc_addr())
        .await
        .expect("open");
    d.subscribe_as(
        node(&sidecar_id("d")),
        type_url::CLUSTER,
        &[],
        &BTreeMap::new(),
    )
    .await
    .expect("send");
    let cds = d.recv_type(type_url::CLUSTER).await.expect("cds");
    let mut held: BTreeMap<String, String> = cds
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    drop(d);

    held.insert(RATINGS.into(), "stale-version".into());
    held.insert("outbound|1||gone.example.com".into(), "1".into());
    let mut d = DeltaStream::open(f.discovery.grpc_addr())
        .await
        .expect("reopen");
    d.subscribe_as(node(&sidecar_id("d")), type_url::CLUSTER, &[], &held)
        .await
        .expect("send");
    let r = d.recv_type(type_url::CLUSTER).await.expect("cds");
    assert_eq!(
        delta_names(&r),
        vec![RATINGS.to_string()],
        "only the changed one"
    );
    assert_eq!(r.removed_resources, vec!["outbound|1||gone.example.com"]);
}

/// Delta: deleting a service sends its cluster in `removed_resources`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_sends_removed_resources_on_deletion() {
    let f = fixture(&["--debounce-after", "10ms"]).await;
    let mut d = DeltaStream::open(f.discovery.grpc_addr())
        .await
        .expect("open");
    d.subscribe_as(
        node(&sidecar_id("d")),
        type_url::CLUSTER,
        &[],
        &BTreeMap::new(),
    )
    .await
    .expect("send");
    let cds = d.recv_type(type_url::CLUSTER).await.expect("cds");
    d.ack(&cds).await.expect("ack");
    f.remove("ratings.yaml").expect("remove config");
    let r = d.recv_type(type_url::CLUSTER).await.expect("cds push");
    assert_eq!(r.removed_resources, vec![RATINGS]);
    assert!(
        r.resources.is_empty(),
        "nothing else changed: {:?}",
        delta_names(&r)
    );
}

/// Delta: subscribing answers just the new names; unsubscribing is silent
/// and applies even under a stale nonce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_subscriptions_add_and_drop_names() {
    let f = fixture(&[]).await;
    let mut d = DeltaStream::open(f.discovery.grpc_addr())
        .await
        .expect("open");
    d.subscribe_as(
        node(&sidecar_id("d")),
        type_url::ENDPOINT,
        &[REVIEWS_V1],
        &BTreeMap::new(),
    )
    .await
    .expect("send");
    let r1 = d.recv_type(type_url::ENDPOINT).await.expect("eds");
    assert_eq!(delta_names(&r1), vec![REVIEWS_V1]);
    d.request(type_url::ENDPOINT, &[RATINGS], &[], &r1.nonce)
        .await
        .expect("subscribe");
    let r2 = d.recv_type(type_url::ENDPOINT).await.expect("eds");
    assert_eq!(delta_names(&r2), vec![RATINGS]);
    d.request(type_url::ENDPOINT, &[], &[REVIEWS_V1], &r1.nonce)
        .await
        .expect("unsubscribe with a stale nonce");
    d.request(type_url::LISTENER, &[], &[], "")
        .await
        .expect("send");
    d.recv_type(type_url::LISTENER)
        .await
        .expect("unsubscribing was not answered");
    let adsz = f.discovery.json("/debug/adsz").await.expect("adsz");
    assert_eq!(
        adsz["clients"][0]["watches"]["eds"]["names"],
        serde_json::json!([RATINGS])
    );
}

// ---------------------------------------------------------------- pushes

/// An endpoint-only change pushes only EDS, and only the clusters whose
/// endpoints changed; counted per type by `pilot_xds_pushes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_change_pushes_only_the_changed_clusters() {
    let f = fixture(&["--debounce-after", "10ms"]).await;
    let (mut s, cds) = SotwStream::start(f.discovery.grpc_addr(), "a", type_url::CLUSTER, &[])
        .await
        .expect("cds");
    s.ack(&cds, &[]).await.expect("ack");
    let all = [REVIEWS, REVIEWS_V1, REVIEWS_V2, RATINGS];
    s.request(type_url::ENDPOINT, &all, "").await.expect("send");
    let eds = s.recv_type(type_url::ENDPOINT).await.expect("eds");
    s.ack(&eds, &all).await.expect("ack");
    s.request(type_url::LISTENER, &[], "").await.expect("send");
    let lds = s.recv_type(type_url::LISTENER).await.expect("lds");
    s.ack(&lds, &[]).await.expect("ack");

    let count = |t: &'static str| {
        let d = &f.discovery;
        async move {
            d.metric(&format!("pilot_xds_pushes{{type=\"{t}\"}}"))
                .await
                .expect("metrics")
        }
    };
    let (cds0, eds0, lds0) = (count("cds").await, count("eds").await, count("lds").await);

    f.write("ratings-2.yaml", &ratings_slice("ratings-2", "127.0.0.2"))
        .expect("write config");
    let pushed = s
        .recv_type(type_url::ENDPOINT)
        .await
        .expect("the first message after the change is EDS");
    assert_eq!(sotw_names(&pushed), vec![RATINGS], "only ratings changed");
    s.ack(&pushed, &all).await.expect("ack");
    assert_eq!(count("eds").await, eds0 + 1.0);
    assert_eq!(count("cds").await, cds0);
    assert_eq!(count("lds").await, lds0);
    let status = f
        .discovery
        .json("/debug/push_status")
        .await
        .expect("status");
    assert_eq!(status["status"]["last"]["full"], false);
    assert_eq!(
        status["status"]["last"]["edsServices"],
        serde_json::json!(["ratings.default.svc.cluster.local"])
    );
}

/// Changes that arrive within the debounce window become one push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_is_merged_into_one_push() {
    // Each file is written well after the folder's own 100 ms quiet period,
    // so each is a separate event; all fall inside one 5 s debounce window.
    // Endpoint-only bursts are otherwise cut at 100 ms, which a busy machine
    // spreads four writes past.
    let f = fixture(&["--debounce-after", "5s", "--eds-debounce-max", "5s"]).await;
    let (mut s, eds) =
        SotwStream::start(f.discovery.grpc_addr(), "a", type_url::ENDPOINT, &[RATINGS])
            .await
            .expect("eds");
    s.ack(&eds, &[RATINGS]).await.expect("ack");
    let pushes0 = f
        .discovery
        .metric("pilot_xds_pushes{type=\"eds\"}")
        .await
        .expect("metrics");

    for i in 2..=5 {
        f.write(
            &format!("ratings-{i}.yaml"),
            &ratings_slice(&format!("ratings-{i}"), &format!("127.0.0.{i}")),
        )
        .expect("write config");
        // Let the folder watcher see this write on its own.
        let d = &f.discovery;
        let want = f64::from(i - 1);
        wait::until("the folder change to be read", DEADLINE, || async move {
            let n = d
                .metric("pilot_inbound_updates{type=\"eds\"}")
                .await
                .map_err(|e| e.to_string())?;
            Ok((n >= want).then_some(()))
        })
        .await
        .expect("event counted");
    }
    let pushed = s.recv_type(type_url::ENDPOINT).await.expect("one push");
    s.ack(&pushed, &[RATINGS]).await.expect("ack");
    let pushes = f
        .discovery
        .metric("pilot_xds_pushes{type=\"eds\"}")
        .await
        .expect("metrics");
    let status = f
        .discovery
        .json("/debug/push_status")
        .await
        .expect("status");
    let events = status["status"]["last"]["events"]["eds"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(pushes, pushes0 + 1.0, "one push for the whole burst");
    assert_eq!(status["status"]["pushes"], 1);
    assert!(events >= 2, "the push merged {events} events: {status}");
}

//! Real Envoy in both ADS flavours: it reaches LIVE with every type ACKed and
//! nothing rejected, routes traffic, and follows an endpoint-only change that
//! the server sends as incremental EDS.

use std::path::PathBuf;
use std::time::Duration;

use integration_tests::mesh::{dump_section, Mesh, MeshOptions, PortPlan, Xds};

const DEADLINE: Duration = Duration::from_secs(20);

async fn live_and_routing(xds: Xds) {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/mesh");
    let mut mesh = Mesh::start_with(&examples, PortPlan::Free, xds)
        .await
        .expect("the example mesh starts");
    assert_eq!(mesh.envoy_state().await.expect("admin"), "LIVE");

    let adsz = mesh.discovery.json("/debug/adsz").await.expect("adsz");
    assert_eq!(adsz["clients"][0]["flavour"], xds.flag());
    let syncz = mesh.discovery.json("/debug/syncz").await.expect("syncz");
    for t in ["cds", "eds", "lds", "rds"] {
        let w = &syncz[0]["types"][t];
        assert!(
            w["nonceSent"].as_str().is_some_and(|n| !n.is_empty()),
            "{t}: {w}"
        );
        assert_eq!(w["nonceSent"], w["nonceAcked"], "{t} not ACKed: {w}");
        assert!(w["lastNack"].is_null(), "{t} rejected: {w}");
    }
    let r = mesh.request("ratings").await.expect("request");
    assert_eq!((r.status, r.body.trim()), (200, "ratings"));

    // Point ratings' EndpointSlice at the reviews-v1 upstream: an
    // endpoint-only change, pushed as EDS alone.
    let cds_before = mesh
        .discovery
        .metric("pilot_xds_pushes{type=\"cds\"}")
        .await
        .expect("metrics");
    let file = mesh.config_dir().join("ratings.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    let slice_port = format!("\n  port: {}", mesh.ports.ratings);
    assert!(text.contains(&slice_port), "{text}");
    let edited = text.replace(&slice_port, &format!("\n  port: {}", mesh.ports.reviews_v1));
    std::fs::write(&file, edited).expect("write");
    mesh.wait_routing("ratings", |body| body == "v1", DEADLINE)
        .await
        .expect("ratings now answered by the v1 upstream");
    let cds_after = mesh
        .discovery
        .metric("pilot_xds_pushes{type=\"cds\"}")
        .await
        .expect("metrics");
    assert_eq!(
        cds_before, cds_after,
        "an endpoint change must not push clusters"
    );
    let status = mesh
        .discovery
        .json("/debug/push_status")
        .await
        .expect("status");
    assert_eq!(status["status"]["last"]["full"], false, "{status}");
    assert_eq!(status["nacks"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_on_state_of_the_world_ads() {
    live_and_routing(Xds::Sotw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_on_delta_ads() {
    live_and_routing(Xds::Delta).await;
}

/// A change too big for one delta response arrives in parts (each at most
/// `--xds-response-part-bytes` of resources, each with its own nonce): Envoy
/// applies every part, ACKs them all, rejects none, and routes to the last
/// service of the change. The part size is set small so that a few hundred
/// services take several parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_change_sent_in_parts_reaches_envoy_whole() {
    const SERVICES: usize = 400;
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/mesh");
    let opts = MeshOptions {
        xds: Xds::Delta,
        discovery_args: vec!["--xds-response-part-bytes=65536".into()],
        ..MeshOptions::default()
    };
    let mut mesh = Mesh::start_opts(&examples, PortPlan::Free, opts)
        .await
        .expect("the example mesh starts");
    let admin = mesh.admin();
    let cds_updates = |stats: &std::collections::BTreeMap<String, u64>| {
        stats
            .get("cluster_manager.cds.update_success")
            .copied()
            .unwrap_or(0)
    };
    let before = cds_updates(&admin.stats("cluster_manager.cds").await.expect("stats"));

    // Every service is answered by the ratings upstream.
    let many: String = (0..SERVICES)
        .map(|i| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
                 metadata: {{name: s{i:03}, namespace: default}}\n\
                 spec:\n  hosts: [s{i:03}.default.svc.cluster.local]\n  location: MESH_INTERNAL\n\
                 \x20 resolution: STATIC\n  ports: [{{number: {}, name: http, protocol: HTTP}}]\n\
                 \x20 endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n---\n",
                mesh.ports.service, mesh.ports.ratings
            )
        })
        .collect();
    std::fs::write(mesh.config_dir().join("many.yaml"), many).expect("write");
    let last = format!("s{:03}.default.svc.cluster.local", SERVICES - 1);
    mesh.wait_routing(&last, |body| body == "ratings", DEADLINE)
        .await
        .expect("the last service of the change routes");

    let after = cds_updates(&admin.stats("cluster_manager.cds").await.expect("stats"));
    assert!(
        after >= before + 2,
        "the clusters came in one response ({before} → {after} CDS updates)"
    );
    let syncz = mesh.discovery.json("/debug/syncz").await.expect("syncz");
    for t in ["cds", "eds", "lds", "rds"] {
        let w = &syncz[0]["types"][t];
        assert_eq!(w["nonceSent"], w["nonceAcked"], "{t} not ACKed: {w}");
        assert!(w["lastNack"].is_null(), "{t} rejected: {w}");
    }
    let dump = mesh.config_dump().await.expect("config dump");
    let clusters = dump_section(&dump, "ClustersConfigDump", "dynamic_active_clusters");
    assert!(
        clusters.len() > SERVICES,
        "Envoy holds {} clusters",
        clusters.len()
    );
}

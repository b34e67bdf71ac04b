//! The bad-input catalogue of the README, each entry against a running
//! pilot-discovery through its real ports: every bad file or request gets
//! an error naming what is wrong, and nothing else is lost.

use std::time::Duration;

use integration_tests::ads_client::pilot_discovery_types::{type_url, DiscoveryRequest, RpcStatus};
use integration_tests::ads_client::{node, sidecar_id, sotw_names, Next, SotwStream};
use integration_tests::fixture::{service_entry, ConfigFixture};
use integration_tests::wait;
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(30);

/// A VirtualService for `reviews` whose first HTTP rule is `http`.
fn vs(name: &str, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  hosts: [reviews]\n  http:\n  - {http}\n"
    )
}

/// The errors `/debug/configz` lists, each starting with its file.
async fn config_errors(f: &ConfigFixture) -> Result<Vec<String>, String> {
    let configz = f
        .discovery
        .json("/debug/configz")
        .await
        .map_err(|e| e.to_string())?;
    Ok(configz["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| match &e["error"] {
            Value::String(error) => error.clone(),
            _ => e.to_string(),
        })
        .collect())
}

/// Each kind of bad file in the config folder is rejected with an error that
/// names the file (and the resource and field where there is one), while the
/// rest of the folder keeps serving: after all of them, the good service is
/// still every proxy's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_rejected_alone_and_named() {
    let f = ConfigFixture::start(&[("good.yaml", service_entry("good", 8001))], &[])
        .await
        .expect("discovery");
    let huge = "# padding\n".repeat(2 * 1024 * 1024);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("malformed.yaml", b"kind: [unclosed\n".to_vec(), "not valid YAML"),
        (
            "unknown-kind.yaml",
            b"apiVersion: networking.istio.io/v1\nkind: Telemetry\nmetadata: {name: t}\nspec: {}\n"
                .to_vec(),
            "kind: unsupported kind \"Telemetry\"",
        ),
        (
            "wrong-type.yaml",
            vs("typed", "route: [{destination: {host: reviews}, weight: \"x\"}]").into_bytes(),
            "VirtualService default/typed: spec.http[0].route[0].weight: invalid type",
        ),
        (
            "regex.yaml",
            vs(
                "regex",
                "match: [{uri: {regex: \"([\"}}]\n    route: [{destination: {host: reviews}}]",
            )
            .into_bytes(),
            "VirtualService default/regex: spec.http[0].match[0].uri: invalid regex \"([\"",
        ),
        (
            "weights.yaml",
            vs(
                "weights",
                "route: [{destination: {host: reviews}, weight: 60}, {destination: {host: ratings}, weight: 70}]",
            )
            .into_bytes(),
            "must add up to 100, they add up to 130",
        ),
        (
            "zz-duplicate.yaml",
            service_entry("good", 8002).into_bytes(),
            "ServiceEntry default/good: metadata.name: duplicate resource",
        ),
        ("binary.yaml", vec![0xff, 0xfe, 0x00, 0x01], "not UTF-8"),
        (
            "huge.yaml",
            huge.into_bytes(),
            "larger than the 16777216-byte limit",
        ),
    ];
    for (file, bytes, expected) in &cases {
        std::fs::write(f.config.join(file), bytes).expect("write");
        let error = wait::until(&format!("{file} to be rejected"), CONVERGE, || async {
            let errors = config_errors(&f).await?;
            Ok(errors.into_iter().find(|e| e.contains(file)))
        })
        .await
        .expect("rejected");
        assert!(error.contains(expected), "{file}: {error}");
    }
    assert_eq!(
        config_errors(&f).await.expect("configz").len(),
        cases.len(),
        "one error per bad file, nothing else"
    );
    let (_s, cds) = SotwStream::start(f.discovery.grpc_addr(), "after", type_url::CLUSTER, &[])
        .await
        .expect("cds");
    assert!(
        sotw_names(&cds).contains(&"outbound|8001||good.example.com".to_string()),
        "the good service, first file's version, still serves"
    );
    f.discovery.get("/ready").await.expect("still answering");
}

/// Bad requests on the xDS port end their own stream with a status that
/// says why, and no other: an oversized message, an unknown node type, and a
/// proxy NACKing every response a hundred times (never answered with the
/// same config again, each NACK counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_end_their_own_stream_only() {
    let f = ConfigFixture::start(&[], &[]).await.expect("discovery");
    let addr = f.discovery.grpc_addr();
    let (bystander, _) = SotwStream::start(addr, "bystander", type_url::CLUSTER, &[])
        .await
        .expect("a well-behaved proxy");

    // 5 MiB of resource names: over the 4 MiB request limit.
    let mut big = SotwStream::open(addr).await.expect("stream");
    let names: Vec<String> = (0..5 * 1024).map(|i| format!("{i:01024}")).collect();
    big.send(DiscoveryRequest {
        node: Some(node(&sidecar_id("big"))),
        type_url: type_url::ENDPOINT.into(),
        resource_names: names,
        ..Default::default()
    })
    .await
    .expect("send");
    match big.next().await.expect("an answer") {
        Next::Closed(status) => {
            assert_eq!(status.code(), tonic::Code::OutOfRange, "{status}");
            assert!(status.message().contains("too large"), "{status}");
        }
        Next::Message(m) => panic!("an oversized request was answered: {}", m.type_url),
    }

    let mut odd = SotwStream::open(addr).await.expect("stream");
    odd.subscribe_as(
        node("gateway~127.0.0.1~gw.default~default.svc.cluster.local"),
        type_url::CLUSTER,
        &[],
    )
    .await
    .expect("send");
    match odd.next().await.expect("an answer") {
        Next::Closed(status) => {
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
            assert!(status.message().contains("gateway"), "{status}");
        }
        Next::Message(m) => panic!("an unknown node type was served: {}", m.type_url),
    }

    let (mut nacker, cds) = SotwStream::start(addr, "nacker", type_url::CLUSTER, &[])
        .await
        .expect("cds");
    for i in 0..100 {
        nacker
            .send(DiscoveryRequest {
                type_url: type_url::CLUSTER.into(),
                response_nonce: cds.nonce.clone(),
                error_detail: Some(RpcStatus {
                    code: 3,
                    message: format!("rejected #{i}"),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("nack");
    }
    // The next response is the one asked for after the storm: no NACK was
    // answered with the clusters again.
    nacker
        .request(type_url::LISTENER, &[], "")
        .await
        .expect("send");
    nacker
        .recv_type(type_url::LISTENER)
        .await
        .expect("served after the storm");
    let rejects = f
        .discovery
        .metric("pilot_total_xds_rejects{type=\"cds\"}")
        .await
        .expect("metrics");
    assert_eq!(rejects, 100.0);

    // The bystander is still served: a config change reaches it.
    let mut bystander = bystander;
    f.write("extra.yaml", &service_entry("extra", 8009))
        .expect("write");
    let next = bystander
        .recv_type(type_url::CLUSTER)
        .await
        .expect("bystander still served");
    assert!(sotw_names(&next).contains(&"outbound|8009||extra.example.com".to_string()));
}

//! The layout of a captured sidecar (the Kubernetes default, fed by
//! iptables): `virtualOutbound` on 15001 hands connections to per-port
//! listeners that do not bind, `virtualInbound` on 15006 has a filter chain
//! per inbound port, under Istio's names.
//!
//! This machine has no iptables, and the virtual listeners bind 0.0.0.0 on
//! fixed ports, which tests must not take; so real traffic is not sent.
//! Instead the resources discovery serves to a captured proxy are checked
//! for shape, then handed to the real Envoy as a static bootstrap in
//! `--mode validate`, which accepts or rejects them exactly as a live
//! Envoy's config load would, without binding anything.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;

use integration_tests::ads_client::pilot_discovery_types::{type_url, Node};
use integration_tests::ads_client::{port_of, SotwStream};
use integration_tests::binaries::envoy;
use integration_tests::discovery::Discovery;
use prost::Message;
use xds_proto::pb::envoy::config::bootstrap::v3::{
    bootstrap::{DynamicResources, StaticResources},
    Bootstrap,
};
use xds_proto::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType},
    Cluster,
};
use xds_proto::pb::envoy::config::core::v3::{
    address, api_config_source::ApiType, grpc_service, socket_address::PortSpecifier, Address,
    ApiConfigSource, ApiVersion, GrpcService, Http2ProtocolOptions,
};
use xds_proto::pb::envoy::config::listener::v3::Listener;
use xds_proto::pb::envoy::config::route::v3::RouteConfiguration;
use xds_proto::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
    },
    HttpProtocolOptions,
};
use xds_proto::protobuf::Any;

/// The captured workload's pod IP.
const POD_IP: &str = "10.1.0.5";

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  - {number: 5432, name: tcp-db, protocol: TCP, targetPort: 15432}
  endpoints: [{address: 10.1.0.5}, {address: 10.1.0.6}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.1.0.9}]
"#;

fn decoded<T: Message + Default>(resources: &[Any]) -> Vec<T> {
    resources
        .iter()
        .map(|a| T::decode(a.value.as_slice()).expect("decodes"))
        .collect()
}

async fn fetch(addr: SocketAddr, t: &str, names: &[&str]) -> Vec<Any> {
    let mut s = SotwStream::open(addr).await.expect("stream");
    // No INTERCEPTION_MODE: a captured (REDIRECT) proxy.
    let node = Node {
        id: format!("sidecar~{POD_IP}~reviews-v1.default~default.svc.cluster.local"),
        ..Default::default()
    };
    s.subscribe_as(node, t, names).await.expect("subscribe");
    s.recv_type(t).await.expect("response").resources
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_sidecar_gets_istios_layout_and_envoy_accepts_it() {
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(config.join("mesh.yaml"), MESH).expect("write");
    let discovery = Discovery::start(&config, &work.path().join("discovery.log"), &[])
        .await
        .expect("discovery starts");
    let addr = SocketAddr::from(([127, 0, 0, 1], discovery.grpc));

    let listeners: Vec<Listener> = decoded(&fetch(addr, type_url::LISTENER, &[]).await);
    let by_name: BTreeMap<&str, &Listener> =
        listeners.iter().map(|l| (l.name.as_str(), l)).collect();
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>(),
        [
            "0.0.0.0_5432",
            "0.0.0.0_8080",
            "0.0.0.0_9080",
            "virtualInbound",
            "virtualOutbound"
        ]
    );
    for port in ["0.0.0.0_5432", "0.0.0.0_8080", "0.0.0.0_9080"] {
        assert_eq!(
            by_name[port].bind_to_port.as_ref().map(|b| b.value),
            Some(false),
            "{port} is reached through virtualOutbound, never bound"
        );
    }
    let outbound = by_name["virtualOutbound"];
    assert_eq!(
        outbound.use_original_dst.as_ref().map(|b| b.value),
        Some(true)
    );
    assert_eq!(port_of(outbound.address.as_ref()), Some(15001));
    assert_eq!(
        outbound
            .default_filter_chain
            .as_ref()
            .map(|c| c.name.as_str()),
        Some("PassthroughFilterChain")
    );
    let inbound = by_name["virtualInbound"];
    assert_eq!(port_of(inbound.address.as_ref()), Some(15006));
    let chains: Vec<(&str, Option<u32>)> = inbound
        .filter_chains
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.filter_chain_match
                    .as_ref()
                    .and_then(|m| m.destination_port.as_ref())
                    .map(|p| p.value),
            )
        })
        .collect();
    assert_eq!(
        chains,
        [("0.0.0.0_9080", Some(9080)), ("0.0.0.0_15432", Some(15432))],
        "a chain per port the pod serves: 10.1.0.5 is a reviews endpoint, not a ratings one"
    );

    let clusters: Vec<Cluster> = decoded(&fetch(addr, type_url::CLUSTER, &[]).await);
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    for expected in [
        "outbound|9080||reviews.default.svc.cluster.local",
        "outbound|5432||reviews.default.svc.cluster.local",
        "outbound|8080||ratings.default.svc.cluster.local",
        "BlackHoleCluster",
        "PassthroughCluster",
        "InboundPassthroughCluster",
        "inbound|9080||",
        "inbound|15432||",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let routes: Vec<RouteConfiguration> =
        decoded(&fetch(addr, type_url::ROUTE, &["9080", "8080"]).await);
    let route_names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        route_names,
        ["8080", "9080"],
        "routes named by port, as Istio's"
    );

    // Envoy loads all of it.
    let boot = work.path().join("captured.pb");
    std::fs::write(
        &boot,
        bootstrap(listeners.clone(), clusters.clone(), discovery.grpc),
    )
    .expect("write bootstrap");
    let (ok, log) = validate(&boot);
    assert!(ok, "Envoy rejected the captured layout:\n{log}");

    // The check can fail: two inbound chains matching the same port are
    // refused.
    let mut broken = listeners.clone();
    for l in broken.iter_mut().filter(|l| l.name == "virtualInbound") {
        let first = l.filter_chains[0].clone();
        l.filter_chains.push(first);
    }
    let bad = work.path().join("bad.pb");
    std::fs::write(&bad, bootstrap(broken, clusters, discovery.grpc)).expect("write bootstrap");
    let (ok, log) = validate(&bad);
    assert!(!ok, "two chains for one port must be rejected:\n{log}");
}

/// A bootstrap holding `listeners` and `clusters` as static resources, with
/// ADS (for the EDS and RDS they name) pointing at discovery.
fn bootstrap(listeners: Vec<Listener>, mut clusters: Vec<Cluster>, grpc: u16) -> Vec<u8> {
    let http2 = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };
    let mut xds = Cluster {
        name: "xds-grpc".to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(static_assignment(grpc)),
        ..Default::default()
    };
    xds.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
        xds_proto::pack(&http2),
    );
    clusters.push(xds);
    Bootstrap {
        node: Some(Node {
            id: format!("sidecar~{POD_IP}~reviews-v1.default~default.svc.cluster.local"),
            cluster: "reviews.default".to_string(),
            ..Default::default()
        }),
        static_resources: Some(StaticResources {
            listeners,
            clusters,
            ..Default::default()
        }),
        dynamic_resources: Some(DynamicResources {
            ads_config: Some(ApiConfigSource {
                api_type: ApiType::Grpc as i32,
                transport_api_version: ApiVersion::V3 as i32,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                        grpc_service::EnvoyGrpc {
                            cluster_name: "xds-grpc".to_string(),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Discovery's address, for the bootstrap's xDS cluster.
fn static_assignment(
    port: u16,
) -> xds_proto::pb::envoy::config::endpoint::v3::ClusterLoadAssignment {
    use xds_proto::pb::envoy::config::core::v3::SocketAddress;
    use xds_proto::pb::envoy::config::endpoint::v3::{
        lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint,
        LocalityLbEndpoints,
    };
    ClusterLoadAssignment {
        cluster_name: "xds-grpc".to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                    address: Some(Address {
                        address: Some(address::Address::SocketAddress(SocketAddress {
                            address: "127.0.0.1".to_string(),
                            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
                            ..Default::default()
                        })),
                    }),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Runs `envoy --mode validate` on `bootstrap`: whether Envoy accepted it,
/// and what it printed.
fn validate(bootstrap: &std::path::Path) -> (bool, String) {
    let out = Command::new(envoy().expect("envoy binary"))
        .args(["--mode", "validate", "--log-level", "warn", "-c"])
        .arg(bootstrap)
        .output()
        .expect("envoy runs");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), log)
}

//! Tests of `delta.rs`.

use super::*;
use crate::xds::protocol::state::PART_BYTES;

/// What the hub hands a stream: the snapshot and what the push touches.
type Pushed = (Arc<PushContext>, Arc<PushScope>);

fn push_to(state: &mut ConnState, (snapshot, scope): &Pushed) -> Vec<DeltaResponse> {
    on_push(state, snapshot, scope)
}
use crate::xds::generate::proxy::tests::local_node;
use crate::xds::protocol::encode::Encode;
use mesh_model::Hostname;
use prost::Message;
use std::sync::Arc;
use xds_proto::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse;
use xds_proto::pb::google::rpc::Status as RpcStatus;
use xds_proto::type_url;

const NODE: &str = "sidecar~127.0.0.1~app.default~default.svc.cluster.local";

use crate::xds::context::tests::empty as snap;

fn req(t: &str, sub: &[&str], unsub: &[&str], nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: t.into(),
        resource_names_subscribe: sub.iter().map(ToString::to_string).collect(),
        resource_names_unsubscribe: unsub.iter().map(ToString::to_string).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn first(t: &str, initial: &[(&str, &str)]) -> DeltaDiscoveryRequest {
    let mut r = req(t, &[], &[], "");
    r.node = Some(local_node(NODE));
    r.initial_resource_versions = initial
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    r
}

/// The responses to `r`, as the proxy decodes them.
fn send(c: &mut ConnState, r: &DeltaDiscoveryRequest) -> Vec<DeltaDiscoveryResponse> {
    on_request(c, r, &snap(1))
        .expect("request accepted")
        .iter()
        .map(|out| {
            let mut buf = Vec::new();
            out.encode_to(&mut buf);
            DeltaDiscoveryResponse::decode(buf.as_slice()).expect("decodes")
        })
        .collect()
}

fn names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    r.resources.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn wildcard_clusters_then_ack() {
    let mut c = ConnState::default();
    let r = send(&mut c, &first(type_url::CLUSTER, &[])).remove(0);
    assert!(names(&r).contains(&"BlackHoleCluster"));
    assert!(r.resources.iter().all(|r| !r.version.is_empty()));
    assert!(!r.nonce.is_empty());
    assert!(send(&mut c, &req(type_url::CLUSTER, &[], &[], &r.nonce)).is_empty());
    assert_eq!(c.watches[type_url::CLUSTER].nonce_acked, r.nonce);
}

#[test]
fn initial_versions_skip_what_the_proxy_has_and_remove_the_rest() {
    let mut c = ConnState::default();
    let all = send(&mut c, &first(type_url::CLUSTER, &[])).remove(0);
    let bh = all
        .resources
        .iter()
        .find(|r| r.name == "BlackHoleCluster")
        .expect("blackhole");

    let mut c = ConnState::default();
    let r = send(
        &mut c,
        &first(
            type_url::CLUSTER,
            &[
                ("BlackHoleCluster", &bh.version),
                ("PassthroughCluster", "v7 from another server"),
                ("gone", "1"),
            ],
        ),
    )
    .remove(0);
    assert!(!names(&r).contains(&"BlackHoleCluster"), "already held");
    assert!(
        names(&r).contains(&"PassthroughCluster"),
        "held at another version"
    );
    assert_eq!(r.removed_resources, vec!["gone".to_string()]);
}

#[test]
fn subscriptions_add_and_drop_names_even_with_a_stale_nonce() {
    let mut c = ConnState::default();
    send(&mut c, &first(type_url::CLUSTER, &[]));
    let r = send(&mut c, &req(type_url::ENDPOINT, &["a"], &[], "")).remove(0);
    assert_eq!(names(&r), vec!["a"]);
    let r2 = send(&mut c, &req(type_url::ENDPOINT, &["b"], &[], &r.nonce)).remove(0);
    assert_eq!(names(&r2), vec!["b"], "only the new name is sent");
    // Unsubscribing is never answered, even under an old nonce.
    assert!(send(&mut c, &req(type_url::ENDPOINT, &[], &["a"], &r.nonce)).is_empty());
    assert_eq!(
        *c.watches[type_url::ENDPOINT].names,
        BTreeSet::from([Arc::from("b")])
    );
}

#[test]
fn nack_is_recorded_and_not_answered() {
    let mut c = ConnState::default();
    let r = send(&mut c, &first(type_url::CLUSTER, &[])).remove(0);
    let mut nack = req(type_url::CLUSTER, &[], &[], &r.nonce);
    nack.error_detail = Some(RpcStatus {
        message: "no".into(),
        ..Default::default()
    });
    assert!(send(&mut c, &nack).is_empty());
    assert_eq!(
        c.watches[type_url::CLUSTER].last_nack.as_deref(),
        Some("no")
    );
}

#[test]
fn pushes_send_only_what_changed() {
    let mut c = ConnState::default();
    send(&mut c, &first(type_url::CLUSTER, &[]));
    let a = "outbound|80||a.default.svc.cluster.local";
    send(&mut c, &req(type_url::ENDPOINT, &[a], &[], ""));
    let push = |version, scope| (Arc::new(snap(version)), Arc::new(scope));
    // Nothing differs in a full push of an equal snapshot.
    assert!(push_to(&mut c, &push(2, PushScope::Full)).is_empty());
    // A service gains an endpoint-free definition: its cluster is new.
    let mut s = mesh_model::MeshSnapshot {
        version: 3,
        domain: "cluster.local".into(),
        ..Default::default()
    };
    let host = Hostname::new("a.default.svc.cluster.local");
    s.services.insert(
        host.clone(),
        Arc::new(mesh_model::Service {
            hostname: host.clone(),
            namespace: "default".into(),
            ports: vec![mesh_model::ServicePort {
                name: "http".into(),
                port: 80,
                protocol: mesh_model::Protocol::Http,
            }],
            resolution: mesh_model::Resolution::ClientSideLb,
            mesh_external: false,
            addresses: Vec::new(),
            origin: mesh_model::ConfigKey {
                kind: mesh_model::ConfigKind::ServiceEntry,
                namespace: "default".into(),
                name: "a".into(),
            },
        }),
    );
    let out = push_to(
        &mut c,
        &(
            Arc::new(PushContext::new(Arc::new(s))),
            Arc::new(PushScope::Full),
        ),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].type_url, type_url::CLUSTER);
    // The service goes away again: its cluster is removed.
    let out = push_to(&mut c, &push(4, PushScope::Full));
    assert_eq!(out[0].removed_resources.len(), 1);
    assert!(out[0].resources.is_empty());
}

#[test]
fn a_full_push_after_an_endpoint_push_compares_what_the_proxy_really_holds() {
    let ctx = |version: u64, port: u16| {
        let mut snap = crate::snapshot::testing::one_service(&format!(
            "{{address: 10.0.0.1, ports: {{http: {port}}}}}"
        ));
        snap.version = version;
        Arc::new(PushContext::new(Arc::new(snap)))
    };
    let push = |snapshot, scope| (snapshot, Arc::new(scope));
    let a = "outbound|80||a.default.svc.cluster.local";
    let host = Hostname::new("a.default.svc.cluster.local");
    let mut c = ConnState::default();
    send(&mut c, &first(type_url::CLUSTER, &[]));
    send(&mut c, &req(type_url::ENDPOINT, &[a], &[], ""));

    let eds = |out: &[DeltaResponse]| {
        out.iter()
            .filter(|r| r.type_url == type_url::ENDPOINT)
            .flat_map(|r| r.resources.iter().map(|r| r.version()))
            .collect::<Vec<_>>()
    };
    let first_push = push_to(&mut c, &push(ctx(2, 8001), PushScope::Full));
    let v8001 = eds(&first_push);
    assert_eq!(v8001.len(), 1);
    assert!(
        push_to(&mut c, &push(ctx(3, 8001), PushScope::Full)).is_empty(),
        "an unchanged set is skipped"
    );
    let moved = push_to(
        &mut c,
        &push(ctx(4, 8002), PushScope::Endpoints([host].into())),
    );
    assert_eq!(eds(&moved).len(), 1);
    // Back to the first set: the proxy holds 8002's version, not the set
    // the last full push gave, so the endpoint must be sent again.
    let back = push_to(&mut c, &push(ctx(5, 8001), PushScope::Full));
    assert_eq!(eds(&back), v8001);
}

fn resource(name: &str, bytes: usize) -> Arc<Named> {
    Arc::new(Named::new(
        name,
        xds_proto::protobuf::Any {
            type_url: String::new(),
            value: vec![0; bytes],
        },
    ))
}

#[test]
fn big_responses_split_in_order_with_removals_last() {
    let third = PART_BYTES / 3;
    let rs: Vec<Arc<Named>> = (0..7).map(|i| resource(&format!("r{i}"), third)).collect();
    let parts = split(rs, vec!["gone".into()], PART_BYTES);
    let names: Vec<Vec<&str>> = parts
        .iter()
        .map(|(rs, _)| rs.iter().map(|r| &*r.name).collect())
        .collect();
    assert_eq!(
        names,
        [
            vec!["r0", "r1"],
            vec!["r2", "r3"],
            vec!["r4", "r5"],
            vec!["r6"]
        ]
    );
    assert!(parts[..3].iter().all(|(_, removed)| removed.is_empty()));
    assert_eq!(parts[3].1, ["gone"]);
    // A resource bigger than a part goes alone; nothing still gives one part.
    let parts = split(
        vec![resource("huge", 2 * PART_BYTES), resource("small", 1)],
        vec![],
        PART_BYTES,
    );
    assert_eq!(parts.len(), 2);
    assert_eq!(split(vec![], vec!["x".into()], PART_BYTES).len(), 1);
}

/// Enough services that their clusters take several parts.
fn many_services() -> PushContext {
    let yaml: String = (0..400)
        .map(|i| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
                     metadata: {{name: s{i}, namespace: default}}\n\
                     spec:\n  hosts: [s{i}.default.svc.cluster.local]\n  resolution: STATIC\n\
                     \x20 ports: [{{number: 80, name: http, protocol: HTTP}}]\n\
                     \x20 endpoints: [{{address: 10.0.{}.{}}}]\n---\n",
                i / 250,
                i % 250 + 1
            )
        })
        .collect();
    PushContext::new(Arc::new(crate::snapshot::testing::snapshot_of(&yaml)))
}

#[test]
fn a_settled_endpoint_subscription_is_shared_and_held_as_one_list() {
    let ctx = Arc::new(many_services());
    let names: Vec<String> = (0..400)
        .map(|i| format!("outbound|80||s{i}.default.svc.cluster.local"))
        .collect();
    let (first_half, second_half): (Vec<&str>, Vec<&str>) = (
        names[..200].iter().map(String::as_str).collect(),
        names[200..].iter().map(String::as_str).collect(),
    );
    let connect = |c: &mut ConnState| {
        on_request(c, &first(type_url::CLUSTER, &[]), &ctx).expect("accepted");
        // Subscribed in two steps, as a proxy does while clusters arrive.
        let r1 =
            on_request(c, &req(type_url::ENDPOINT, &first_half, &[], ""), &ctx).expect("accepted");
        let n1 = r1.last().expect("a response").nonce.clone();
        let r2 = on_request(c, &req(type_url::ENDPOINT, &second_half, &[], &n1), &ctx)
            .expect("accepted");
        r2.last().expect("a response").nonce.clone()
    };
    let mut c = ConnState::default();
    let n2 = connect(&mut c);
    let w = &c.watches[type_url::ENDPOINT];
    assert!(!w.names.is_shared(), "not settled while subscribing");
    assert!(w.client_has.changes() >= 200);

    // The ACK that changes nothing settles it.
    let out = on_request(&mut c, &req(type_url::ENDPOINT, &[], &[], &n2), &ctx);
    assert!(out.expect("accepted").is_empty());
    let w = &c.watches[type_url::ENDPOINT];
    assert!(w.names.is_shared());
    assert_eq!(w.client_has.changes(), 0, "held as the shared list");
    assert_eq!(w.client_has.len(), 400);

    // A second proxy subscribed alike shares the set.
    let mut other = ConnState::default();
    let n = connect(&mut other);
    on_request(&mut other, &req(type_url::ENDPOINT, &[], &[], &n), &ctx).expect("accepted");
    assert!(other.watches[type_url::ENDPOINT].names.is(&w.names));

    // Holding exactly what a full push would send, the proxy is sent
    // nothing.
    let push = (ctx.clone(), Arc::new(PushScope::Full));
    let out = push_to(&mut c, &push);
    assert!(
        out.iter().all(|r| r.type_url != type_url::ENDPOINT),
        "nothing new for endpoints"
    );
}

#[test]
fn a_response_in_parts_is_acked_by_its_last_part_and_nacked_by_any() {
    let ctx = many_services();
    let whole = on_request(
        &mut ConnState::default(),
        &first(type_url::CLUSTER, &[]),
        &ctx,
    )
    .expect("accepted");
    assert_eq!(whole.len(), 1, "under the default part size, one response");
    let mut c = ConnState::with_part_bytes(16 * 1024);
    let parts = on_request(&mut c, &first(type_url::CLUSTER, &[]), &ctx).expect("accepted");
    assert!(parts.len() >= 2, "{} parts", parts.len());
    let sent: usize = parts.iter().map(|p| p.resources.len()).sum();
    assert!(sent > 400, "every cluster is sent: {sent}");
    let nonces: BTreeSet<&str> = parts.iter().map(|p| p.nonce.as_str()).collect();
    assert_eq!(nonces.len(), parts.len(), "each part has its own nonce");
    let last = parts.last().expect("parts");
    let w = &c.watches[type_url::CLUSTER];
    assert_eq!(w.nonce_sent, last.nonce);
    assert_eq!(w.client_has.len(), sent);

    // An earlier part's ACK is not the whole response's.
    let out = on_request(
        &mut c,
        &req(type_url::CLUSTER, &[], &[], &parts[0].nonce),
        &ctx,
    );
    assert!(out.expect("accepted").is_empty());
    assert_eq!(c.watches[type_url::CLUSTER].nonce_acked, "");
    // A NACK of an earlier part counts.
    let mut nack = req(type_url::CLUSTER, &[], &[], &parts[0].nonce);
    nack.error_detail = Some(RpcStatus {
        message: "bad cluster".into(),
        ..Default::default()
    });
    assert!(on_request(&mut c, &nack, &ctx)
        .expect("accepted")
        .is_empty());
    assert_eq!(
        c.watches[type_url::CLUSTER].last_nack.as_deref(),
        Some("bad cluster")
    );
    // The last part's ACK acknowledges it all.
    let out = on_request(&mut c, &req(type_url::CLUSTER, &[], &[], &last.nonce), &ctx);
    assert!(out.expect("accepted").is_empty());
    assert_eq!(c.watches[type_url::CLUSTER].nonce_acked, last.nonce);
    assert_eq!(c.watches[type_url::CLUSTER].last_nack, None);
}

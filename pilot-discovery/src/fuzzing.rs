//! Fuzz entry points: each takes raw bytes and drives one input surface as
//! discovery drives it, panicking only when a promise the server makes is
//! broken. Three surfaces take input from outside: config files, objects
//! from the API server, and xDS requests.
//!
//! The libFuzzer targets in `fuzz/` call these (`make fuzz`). The unit tests
//! below run the committed seeds in `fuzz/seeds/` and a few thousand
//! mutations of them on every `make test`.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use mesh_model::kinds::{Decode, KINDS};
use mesh_model::{ConfigKind, Hostname, MeshSnapshot, SpiffeId};
use serde::de::DeserializeOwned;
use tonic::Code;
use xds_proto::pb::envoy::config::core::v3::Node as XdsNode;
use xds_proto::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use xds_proto::pb::google::rpc::Status as RpcStatus;
use xds_proto::protobuf::{value::Kind, Struct, Value as PbValue};
use xds_proto::type_url;

use crate::configdir::parse_file;
use crate::kubernetes::convert;
use crate::objects::ConfigError;
use crate::push::PushScope;
use crate::resource::{Resource, ResourceMap};
use crate::snapshot::build_snapshot;
use crate::xds::context::PushContext;
use crate::xds::generate::generators::generator;
use crate::xds::generate::names;
use crate::xds::generate::proxy::Proxy;
use crate::xds::protocol::state::ConnState;
use crate::xds::protocol::{delta, sotw};

const DOMAIN: &str = "cluster.local";

/// The mesh every input is added to, so that a fuzzed resource meets
/// services, endpoints, rules, pods and gateways to refer to.
const BASE_MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: shop}
spec:
  hosts: [a.shop.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 9000, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}, {address: 10.0.0.2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a, namespace: shop}
spec:
  host: a.shop.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: shop}
spec:
  hosts: [a.shop.svc.cluster.local, shop.example.com]
  gateways: [mesh, istio-system/public]
  http:
  - match: [{headers: {x-canary: {exact: "1"}}}]
    route: [{destination: {host: a.shop.svc.cluster.local, subset: v2}}]
  - route:
    - {destination: {host: a.shop.svc.cluster.local, subset: v1}, weight: 90}
    - {destination: {host: a.shop.svc.cluster.local, subset: v2}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: bank}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
  selector: {app: b}
---
apiVersion: v1
kind: Endpoints
metadata: {name: b, namespace: bank}
subsets:
- addresses: [{ip: 10.1.0.1, targetRef: {kind: Pod, name: b-1, namespace: bank}}]
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: b-1, namespace: bank, labels: {app: b}}
spec: {nodeName: n1, containers: [{name: b}]}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {topology.kubernetes.io/region: r1, topology.kubernetes.io/zone: z1}}
"#;

/// The base mesh's resources, parsed once.
fn base() -> &'static ResourceMap {
    static BASE: OnceLock<ResourceMap> = OnceLock::new();
    BASE.get_or_init(|| {
        let parsed = parse_file(Path::new("base.yaml"), BASE_MESH).unwrap_or_default();
        assert!(parsed.errors.is_empty(), "base mesh: {:?}", parsed.errors);
        keyed(parsed.resources)
    })
}

fn keyed(resources: Vec<Resource>) -> ResourceMap {
    let mut map = ResourceMap::new();
    for r in resources {
        map.entry(r.key()).or_insert(r);
    }
    map
}

/// One config file, as the config folder reads it: the first byte picks
/// YAML or JSON, the rest is the file. Whatever it holds, every error names
/// the file (and, in a multi-document file, the document), and whatever is
/// accepted can be built into a snapshot and served to every kind of proxy.
/// Returns how many resources were accepted.
pub fn config_file(data: &[u8]) -> usize {
    let Some((&mode, rest)) = data.split_first() else {
        return 0;
    };
    let path = Path::new(if mode & 1 == 0 {
        "fuzz.yaml"
    } else {
        "fuzz.json"
    });
    // The folder turns away a file that is not UTF-8 before parsing it.
    let Ok(text) = std::str::from_utf8(rest) else {
        return 0;
    };
    match parse_file(path, text) {
        Err(e) => {
            assert_names_its_origin(&e, path);
            0
        }
        Ok(parsed) => {
            for e in &parsed.errors {
                assert_names_its_origin(e, path);
                assert!(e.document.is_some(), "no document in {e}");
            }
            let accepted = keyed(parsed.resources);
            serve_everything(&accepted);
            accepted.len()
        }
    }
}

/// One object as a watch delivers it: the first byte picks its kind (its
/// row in the kind table, modulo the rows), the rest is its JSON. Whatever
/// converts is served; whatever is refused names the cluster it came from. Returns whether the object was accepted.
pub fn kube_object(data: &[u8]) -> bool {
    let Some((&pick, json)) = data.split_first() else {
        return false;
    };
    let origin = convert::origin("fuzz");
    let row = &KINDS[usize::from(pick) % KINDS.len()];
    let converted = match (row.decode, row.kind) {
        (Decode::Istio(_), kind) => {
            let api = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(row.group, row.versions[0], kind.as_str()),
                row.plural,
            );
            decoded::<DynamicObject>(json)
                .map(|o| convert::custom_resource(o, &api, origin.clone()))
        }
        (Decode::Platform, ConfigKind::Service) => decoded::<Service>(json).map(convert::service),
        (Decode::Platform, ConfigKind::Endpoints) => {
            decoded::<Endpoints>(json).map(convert::endpoints)
        }
        (Decode::Platform, ConfigKind::EndpointSlice) => {
            decoded::<EndpointSlice>(json).map(convert::endpoint_slice)
        }
        (Decode::Platform, ConfigKind::Pod) => {
            decoded::<Pod>(json).map(|p| convert::pod(p, origin.clone()))
        }
        (Decode::Platform, ConfigKind::Node) => {
            decoded::<Node>(json).map(|n| convert::node(n, origin.clone()))
        }
        (Decode::Platform, ConfigKind::Namespace) => {
            decoded::<Namespace>(json).map(|n| convert::namespace(n, origin.clone()))
        }
        (Decode::Platform, kind) => panic!("the Kubernetes adapter watches no {kind}"),
    };
    match converted {
        None => false,
        Some(Err(e)) => {
            assert_names_its_origin(&e, &origin);
            false
        }
        Some(Ok(r)) => {
            serve_everything(&ResourceMap::unit(r.key(), r));
            true
        }
    }
}

/// What the watch's own decoding accepts; the rest never reaches us.
fn decoded<T: DeserializeOwned>(json: &[u8]) -> Option<T> {
    serde_json::from_slice(json).ok()
}

fn assert_names_its_origin(e: &ConfigError, origin: &Path) {
    assert_eq!(e.file, origin, "error without its origin: {e}");
    assert!(
        e.to_string().contains(&*origin.to_string_lossy()),
        "message does not name {}: {e}",
        origin.display()
    );
}

/// Builds the accepted resources with the base mesh into a snapshot, then
/// rebuilds it over that one (the path every later change takes), and
/// generates every resource type for a sidecar, a local-mode sidecar of
/// another namespace and a gateway.
fn serve_everything(extra: &ResourceMap) {
    let first = build_snapshot(1, DOMAIN, &[extra, base()], None);
    let second = build_snapshot(2, DOMAIN, &[extra, base()], Some(&first));
    let change = second.changes_since(&first);
    assert!(
        !change.config && change.endpoints.is_empty() && change.pods.is_empty(),
        "the same resources built twice differ: {change:?}"
    );
    let ctx = PushContext::new(Arc::new(second));
    for node in [sidecar_node(false), local_node_of("bank"), gateway_node()] {
        let proxy = Proxy::from_node(&node).unwrap_or_else(|e| panic!("test node: {e}"));
        let none = BTreeSet::<String>::new();
        let clusters = ctx.resources(&proxy, type_url::CLUSTER, &none);
        let cluster_names = clusters.iter().map(|c| c.name.to_string()).collect();
        ctx.resources(&proxy, type_url::ENDPOINT, &cluster_names);
        ctx.resources(&proxy, type_url::LISTENER, &none);
        ctx.resources(&proxy, type_url::ROUTE, &route_names(ctx.snapshot()));
    }
}

/// Every route configuration name a proxy of this mesh could ask for.
fn route_names(snap: &MeshSnapshot) -> BTreeSet<String> {
    let service_ports = snap
        .services
        .values()
        .flat_map(|s| &s.ports)
        .map(|p| p.port);
    let gateway_ports = snap
        .gateways
        .iter()
        .flat_map(|g| &g.spec.servers)
        .map(|s| s.port.number);
    service_ports
        .flat_map(|p| [names::route_config_name(p), format!("http.{p}")])
        .chain(gateway_ports.map(|p| format!("http.{p}")))
        .collect()
}

fn string(s: &str) -> PbValue {
    PbValue {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn node(id: &str, fields: Vec<(&str, PbValue)>) -> XdsNode {
    XdsNode {
        id: id.into(),
        metadata: Some(Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }),
        ..Default::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> PbValue {
    PbValue {
        kind: Some(Kind::StructValue(Struct {
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), string(v)))
                .collect(),
        })),
    }
}

/// A captured sidecar of shop, optionally claiming namespace bank in its
/// metadata.
fn sidecar_node(claims_bank: bool) -> XdsNode {
    let mut fields = vec![("LABELS", labels(&[("app", "a"), ("version", "v1")]))];
    if claims_bank {
        fields.push(("NAMESPACE", string("bank")));
    }
    node("sidecar~10.0.0.1~a-1.shop~shop.svc.cluster.local", fields)
}

fn local_node_of(ns: &str) -> XdsNode {
    node(
        &format!("sidecar~127.0.0.1~c.{ns}~{ns}.svc.cluster.local"),
        vec![("INTERCEPTION_MODE", string("NONE"))],
    )
}

fn gateway_node() -> XdsNode {
    node(
        "router~10.0.0.9~gw.istio-system~istio-system.svc.cluster.local",
        vec![("LABELS", labels(&[("istio", "ingressgateway")]))],
    )
}

/// The nodes a fuzzed stream may present: good ones, a mismatched claim,
/// and ids discovery must refuse.
fn stream_node(pick: u8) -> Option<XdsNode> {
    Some(match pick % 8 {
        0 => return None,
        1 => sidecar_node(true),
        2 => local_node_of("bank"),
        3 => gateway_node(),
        4 => node("sidecar~~~", Vec::new()),
        5 => node("", Vec::new()),
        6 => node("proxyless~1.2.3.4~x.y~y.svc.cluster.local", Vec::new()),
        _ => sidecar_node(false),
    })
}

const TYPES: [&str; 5] = [
    type_url::CLUSTER,
    type_url::ENDPOINT,
    type_url::LISTENER,
    type_url::ROUTE,
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
];

const NAMES: [&str; 8] = [
    "outbound|80||a.shop.svc.cluster.local",
    "outbound|80|v2|a.shop.svc.cluster.local",
    "outbound|80||b.bank.svc.cluster.local",
    "80",
    "http.8080",
    "*",
    "",
    "outbound|1||nowhere.svc.cluster.local",
];

/// Two versions of the mesh to push between: the second moves an endpoint.
fn contexts() -> &'static [Arc<MeshSnapshot>; 2] {
    static CONTEXTS: OnceLock<[Arc<MeshSnapshot>; 2]> = OnceLock::new();
    CONTEXTS.get_or_init(|| {
        let first = build_snapshot(1, DOMAIN, &[base()], None);
        let mut second = first.clone();
        second.version = 2;
        // Derived indexes must be rebuilt from the changed endpoints.
        second.endpoints_by_address = OnceLock::new();
        if let Some(eps) = second
            .endpoints
            .get_mut(&Hostname::from("a.shop.svc.cluster.local"))
        {
            Arc::make_mut(eps).truncate(1);
        }
        [Arc::new(first), Arc::new(second)]
    })
}

/// Reads one byte of the op stream, or ends it.
struct Bytes<'a>(std::slice::Iter<'a, u8>);

impl Bytes<'_> {
    fn next(&mut self) -> Option<u8> {
        self.0.next().copied()
    }
}

/// One ADS stream driven by the bytes: requests with any mix of type,
/// names, nonce, NACK and node, pushes of each scope, and snapshot changes,
/// through the state-of-the-world or the delta state machine. Checks the
/// rules the protocol depends on at every step. Returns how many responses
/// the stream sent.
pub fn xds_stream(data: &[u8]) -> usize {
    let mut bytes = Bytes(data.iter());
    let Some(setup) = bytes.next() else {
        return 0;
    };
    let is_delta = setup & 1 == 1;
    let mut state = ConnState::default();
    if setup & 2 == 2 {
        state.peer_identity = Some(SpiffeId {
            trust_domain: DOMAIN.into(),
            namespace: "shop".into(),
            service_account: "default".into(),
        });
    }
    let mut stream = Stream {
        is_delta,
        state,
        ctx: Arc::new(PushContext::new(contexts()[0].clone())),
        nonces: HashSet::new(),
        last_nonce: String::new(),
    };
    for _ in 0..64 {
        let Some(op) = bytes.next() else { break };
        let step = match op % 4 {
            0 | 1 => stream.request(op, &mut bytes),
            2 => {
                stream.push(op);
                Ok(())
            }
            _ => {
                let snap = contexts()[usize::from(op & 4 != 0)].clone();
                stream.ctx = Arc::new(PushContext::new(snap));
                Ok(())
            }
        };
        if step.is_err() {
            break; // the server ends the stream
        }
    }
    stream.nonces.len()
}

struct Stream {
    is_delta: bool,
    state: ConnState,
    ctx: Arc<PushContext>,
    /// Every nonce sent on the stream: none may repeat.
    nonces: HashSet<String>,
    last_nonce: String,
}

impl Stream {
    fn request(&mut self, op: u8, bytes: &mut Bytes<'_>) -> Result<(), Code> {
        let (Some(a), Some(b), Some(c)) = (bytes.next(), bytes.next(), bytes.next()) else {
            return Err(Code::Cancelled);
        };
        // The low three bits pick the type, the high five the node.
        let t = TYPES[usize::from(a & 7) % TYPES.len()];
        let names: Vec<String> = (0..8)
            .filter(|i| b & (1 << i) != 0)
            .map(|i| NAMES[i].to_string())
            .collect();
        let sent = self
            .state
            .watches
            .get(t)
            .map(|w| w.nonce_sent.clone())
            .unwrap_or_default();
        let nonce = match c % 4 {
            0 => String::new(),
            1 => sent.clone(),
            2 => self.last_nonce.clone(),
            _ => "0-0".to_string(),
        };
        let nack = c & 4 != 0;
        let first = self.state.proxy.is_none();
        let node = if first || c & 8 != 0 {
            stream_node(a >> 3)
        } else {
            None
        };
        let error_detail = nack.then(|| RpcStatus {
            code: 3,
            message: "rejected by the fuzzer".into(),
            ..Default::default()
        });
        let had_watch = self.state.watches.contains_key(t);
        let out = if self.is_delta {
            let unsubscribe = op & 0x10 != 0;
            let req = DeltaDiscoveryRequest {
                node,
                type_url: t.into(),
                resource_names_subscribe: if unsubscribe {
                    Vec::new()
                } else {
                    names.clone()
                },
                resource_names_unsubscribe: if unsubscribe {
                    names.clone()
                } else {
                    Vec::new()
                },
                response_nonce: nonce.clone(),
                error_detail,
                ..Default::default()
            };
            delta::on_request(&mut self.state, &req, &self.ctx).map(|rs| {
                rs.into_iter()
                    .map(|r| {
                        let removed: HashSet<&str> =
                            r.removed_resources.iter().map(String::as_str).collect();
                        assert!(
                            r.resources.iter().all(|x| !removed.contains(&*x.name)),
                            "a resource both sent and removed"
                        );
                        (r.type_url, r.nonce)
                    })
                    .collect::<Vec<_>>()
            })
        } else {
            let req = DiscoveryRequest {
                node,
                type_url: t.into(),
                resource_names: names.clone(),
                response_nonce: nonce.clone(),
                error_detail,
                ..Default::default()
            };
            sotw::on_request(&mut self.state, &req, &self.ctx).map(|rs| {
                rs.into_iter()
                    .map(|r| {
                        assert!(!r.version_info.is_empty(), "a response without a version");
                        (r.type_url, r.nonce)
                    })
                    .collect::<Vec<_>>()
            })
        };
        let out = match out {
            Ok(out) => out,
            Err(status) => {
                assert!(first, "a stream ended after its proxy was known: {status}");
                assert!(
                    matches!(
                        status.code(),
                        Code::InvalidArgument | Code::PermissionDenied
                    ),
                    "unexpected end: {status}"
                );
                return Err(status.code());
            }
        };
        if let (Some(id), Some(proxy)) = (&self.state.peer_identity, &self.state.proxy) {
            assert_eq!(proxy.namespace(), id.namespace, "identity not enforced");
            assert_eq!(proxy.id.namespace(), id.namespace, "identity not enforced");
        }
        // A request that only acknowledges or rejects what was sent, or
        // answers an older response, is never answered.
        let quiet = if self.is_delta {
            had_watch && names.is_empty() && !nonce.is_empty() && (nack || nonce != sent)
        } else {
            had_watch && !nonce.is_empty() && (nack || nonce != sent)
        };
        if quiet {
            assert!(out.is_empty(), "answered a NACK or a stale nonce: {out:?}");
        }
        self.record(t, out);
        Ok(())
    }

    fn push(&mut self, op: u8) {
        let snapshot = self.ctx.snapshot().clone();
        let a = Hostname::from("a.shop.svc.cluster.local");
        let scope = match (op >> 2) % 3 {
            0 => PushScope::Full,
            1 => PushScope::Endpoints(BTreeSet::from([a])),
            _ => PushScope::Pods {
                pods: BTreeSet::from(["a-1.shop".to_string()]),
                endpoints: BTreeSet::from([a]),
            },
        };
        let ctx = PushContext::new(snapshot);
        let scope = Arc::new(scope);
        let out: Vec<(String, String)> = if self.is_delta {
            delta::on_push(&mut self.state, &ctx, &scope)
                .into_iter()
                .map(|r| (r.type_url, r.nonce))
                .collect()
        } else {
            sotw::on_push(&mut self.state, &ctx, &scope)
                .into_iter()
                .map(|r| (r.type_url, r.nonce))
                .collect()
        };
        let order: Vec<usize> = out
            .iter()
            .filter_map(|(t, _)| generator(t).map(|(i, _)| i))
            .collect();
        assert_eq!(order.len(), out.len(), "pushed an unknown type: {out:?}");
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "push out of order: {out:?}"
        );
        for (t, nonce) in out {
            self.record(&t, vec![(t.clone(), nonce)]);
        }
    }

    /// Every response is of the type asked for and carries a fresh nonce.
    fn record(&mut self, t: &str, out: Vec<(String, String)>) {
        for (response_type, nonce) in out {
            assert_eq!(response_type, t, "answered with another type");
            assert!(
                self.nonces.insert(nonce.clone()),
                "nonce {nonce} sent twice"
            );
            self.last_nonce = nonce;
        }
    }
}

/// Where the committed seeds of `target` live.
pub fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator: the same mutations on every run.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// One of the mutations libFuzzer also makes: flip, set, insert or
    /// remove bytes, truncate, or splice in part of another seed.
    fn mutate(rng: &mut XorShift, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(out.len() + 1);
            match rng.below(6) {
                0 if at < out.len() => out[at] ^= 1 << rng.below(8),
                1 if at < out.len() => out[at] = rng.next() as u8,
                2 => out.insert(at, b"{}[]:-,\"'\n #&*!|>0\\"[rng.below(19)]),
                3 if at < out.len() => {
                    out.remove(at);
                }
                4 => out.truncate(at),
                _ => {
                    let from = rng.below(other.len());
                    let len = rng.below(other.len() - from.min(other.len()) + 1).min(64);
                    let end = (from + len).min(other.len());
                    out.splice(at..at, other[from..end].iter().copied());
                }
            }
        }
        out
    }

    /// The seeds of `target`, by file name.
    fn named_seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = seeds_dir(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("seed entry").path())
            .collect();
        files.sort();
        let seeds: Vec<_> = files
            .iter()
            .map(|f| {
                let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                (
                    f.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    bytes,
                )
            })
            .collect();
        assert!(seeds.len() >= 3, "{target} has too few seeds");
        seeds
    }

    fn seeds(target: &str) -> Vec<Vec<u8>> {
        named_seeds(target).into_iter().map(|(_, s)| s).collect()
    }

    /// Every seed, then `runs` mutations of random seeds.
    fn run<T>(target: &str, f: fn(&[u8]) -> T, runs: usize) {
        let seeds = seeds(target);
        for s in &seeds {
            f(s);
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..runs {
            let input = &seeds[rng.below(seeds.len())];
            let other = &seeds[rng.below(seeds.len())];
            f(&mutate(&mut rng, input, other));
        }
    }

    #[test]
    fn config_files_fuzz_clean() {
        run("config_file", config_file, 3000);
    }

    #[test]
    fn kube_objects_fuzz_clean() {
        run("kube_object", kube_object, 3000);
    }

    #[test]
    fn xds_streams_fuzz_clean() {
        run("xds_stream", xds_stream, 10_000);
    }

    /// Seeds are worth committing only if they get where they aim: past
    /// the parsers into the generators (a config seed yields resources, an
    /// object seed converts, a stream seed gets answers), or, for the
    /// `bad-*` seeds, into a refusal.
    #[test]
    fn the_seeds_reach_the_generators() {
        for target in ["config_file", "kube_object", "xds_stream"] {
            for (name, s) in named_seeds(target) {
                let reached = match target {
                    "config_file" => config_file(&s) > 0,
                    "kube_object" => kube_object(&s),
                    _ => xds_stream(&s) > 0,
                };
                let refused = name.starts_with("bad-");
                assert_eq!(reached, !refused, "{target} seed {name}");
            }
        }
        let handshake = std::fs::read(seeds_dir("xds_stream").join("sotw-handshake.bin"))
            .expect("handshake seed");
        let answered = xds_stream(&handshake);
        assert!(
            answered >= 5,
            "a handshake gets every type and a push: {answered}"
        );
    }

    /// The checks in the targets can fire: a file error that forgets its
    /// file is caught.
    #[test]
    #[should_panic(expected = "error without its origin")]
    fn an_error_without_its_file_is_caught() {
        assert_names_its_origin(
            &ConfigError::file(Path::new("other.yaml"), "x"),
            Path::new("fuzz.yaml"),
        );
    }

    #[test]
    fn the_base_mesh_serves_every_type() {
        let ctx = PushContext::new(contexts()[0].clone());
        let proxy = Proxy::from_node(&sidecar_node(false)).expect("node");
        let none = BTreeSet::<String>::new();
        assert!(!ctx.resources(&proxy, type_url::CLUSTER, &none).is_empty());
        assert!(!ctx.resources(&proxy, type_url::LISTENER, &none).is_empty());
        assert!(
            ctx.snapshot().problems.is_empty(),
            "{:?}",
            ctx.snapshot().problems
        );
        assert!(route_names(ctx.snapshot()).contains("http.8080"));
    }
}
